local t = { a = 1, b = "two", ["c"] = 3, "d": 4 };
print(t.a); print(t["b"]); print(t.c); print(t.d);
t.e <- 5;
print(t.e);
t.a = 10;
print(t.a);
print("a" in t); print("zz" in t);
try { print(t.missing); } catch (e) { print(e); }
try { t.missing = 1; } catch (e) { print(e); }
print(t.len());
print(delete t.a);
print("a" in t);
local u = t;
u.b = "changed";
print(t.b);
local k = "dyn";
t[k] <- 42;
print(t.dyn);
print(t.rawget("dyn")); print(t.rawin("dyn"));
local keys = [];
foreach (key, value in {x = 1}) { print(key + "=" + value); }
local c = clone t;
c.b = "cloned";
print(t.b + " " + c.b);
local nested = { inner = { deep = [1, 2, { z = "zz" }] } };
print(nested.inner.deep[2].z);
print(typeof t);
