function classify(v) {
    switch (v) {
        case 1:
            return "one";
        case 2:
        case 3:
            return "two or three";
        case "s":
            return "string";
        default:
            return "other";
    }
}
print(classify(1)); print(classify(3)); print(classify("s")); print(classify(9));
function fall(v) {
    local out = "";
    switch (v) {
        case 1: out += "a";
        case 2: out += "b"; break;
        case 3: out += "c";
        default: out += "d";
    }
    return out;
}
print(fall(1)); print(fall(2)); print(fall(3)); print(fall(4));
local hits = 0;
foreach (e in ["CONNECTION_OPEN", "SESSION_OPEN", "X"]) {
    switch (e) {
        case "CONNECTION_OPEN":
            hits += 1;
            break;
        case "SESSION_OPEN":
            hits += 10;
            break;
    }
}
print(hits);
switch (5) { default: print("only default"); }
