local t = {a = 1};
print("it's " + t["a"] + " \"q\" {x} \\ é\t|");
print("say \"" + t.a + "\"");
print("" + 'a' + "b");
