local i = 0;
local a = [10, 20, 30];
print(a[i++]); print(i); print(a[++i]); print(i);
local t = { n = 5 };
print(t.n++); print(t.n); print(--t.n);
print(a[0]++); print(a[0]);
local x;
local y = (x = 7) + 1;
print(x + " " + y);
local s = 0;
while ((s += 3) < 10) print("s=" + s);
local count = 0;
function bump() { return ++count; }
bump(); print(bump());
class C {
    v = 0;
    function next() { return v++; }
    function up() { v += 10; return v; }
}
local c = C();
c.next(); print(c.next()); print(c.up()); print(c.v);
local k = 2147483647; print(k++); print(k);
local f = 1.5; f++; print(f);
local list = [];
local j = 0;
while (j < 3) list.push(j++);
print(list.len() + " " + list[2]);
