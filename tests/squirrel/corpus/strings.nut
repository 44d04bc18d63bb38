local s = "Hello, World";
print(s.len()); print(s.tolower()); print(s.toupper());
print(s.slice(7)); print(s.slice(0, 5)); print(s.slice(-5)); print(s.slice(1, -1));
print(s.find("World")); print(s.find("x")); print(s.find("o", 5));
print(s[0]); print(typeof s[0]);
print("42".tointeger() + 1); print("3.5".tofloat() * 2); print("  17".tointeger());
local five = 5; print(five.tostring() + "!"); print(typeof five.tostring());
foreach (i, c in "ab") print(i + ":" + c);
local parts = split("a,b,,c", ",");
print(parts.len()); print(parts[2]);
print(strip("  x  ") + "|" + lstrip("  y  ") + "|" + rstrip("  z  ") + "|");
print(format("%d items at %s", 3, "home"));
print(format("%5.2f|%-4d|%04d|%x|%X|%%", 3.14159, 7, 42, 255, 255));
print(format("%s", "str") + format("%c", 65));
try { print("abc".slice(5)); } catch (e) { print(e); }
try { print("abc".tointeger()); } catch (e) { print(e); }
print("a" < "b");
