local a = [3, 1, 2];
a.push(4); a.append(5);
print(a.len()); print(a.top()); print(a.pop()); print(a.len());
a.insert(0, 9); print(a[0]);
print(a.remove(0)); print(a[0]);
a.sort(); print(a[0] + "," + a[1] + "," + a[2] + "," + a[3]);
a.sort(@(x, y) y <=> x); print(a[0]);
a.reverse(); print(a[0]);
print(a.slice(1, 3).len()); print(a.slice(-2)[0]);
print(a.find(3)); print(a.find(99));
local m = a.map(@(v) v * 10); print(m[0]);
local f = a.filter(@(i, v) v % 2 == 0); print(f.len());
print(a.reduce(@(p, c) p + c));
a.apply(@(v) v + 1); print(a[0]);
a.extend([7, 8]); print(a.len());
a.resize(10, 0); print(a.len() + " " + a[9]);
a.resize(2); print(a.len());
try { print(a[5]); } catch (e) { print(e); }
try { print(a[-1]); } catch (e) { print(e); }
local b = a; b.push(100); print(a.len());
local arr = array(3, "x"); print(arr[2]);
a.clear(); print(a.len());
foreach (i, v in ["p", "q"]) print(i + v);
print(typeof a);
local grid = [[1, 2], [3, 4]]; grid[1][0] = 30; print(grid[1][0]);
