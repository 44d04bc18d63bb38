local values = [0, 0.0, null, false, "", [], {}, 1, -1, 0.5, "0", true];
foreach (v in values) {
    if (v) print("true"); else print("false");
}
print(!0); print(!""); print(!null);
print(1 && 2); print(0 && 2); print(null || "x"); print(false || 0);
print(0 == false); print(1 == true); print(null == false); print(1 == 1.0); print("1" == 1);
local n = null;
print(n == null); print(n != null);
print(5 <=> 3); print(3 <=> 5); print(4 <=> 4); print("a" <=> "b");
print("abc" < "abd"); print(2 < 2.5); print(3 >= 3);
