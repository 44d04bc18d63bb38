class Point { x = 1; y = 2; function sum() { return x + y; } }
local p = Point();
try { foreach (k, v in p) print(k); } catch (e) { print(e); }
class Range {
    n = 0;
    constructor(n) { this.n = n; }
    function _nexti(prev) { local next = prev == null ? 0 : prev + 1; return next < n ? next : null; }
    function _get(i) { return i * i; }
}
foreach (i, sq in Range(4)) print(i + ":" + sq);
local b = blob(3);
b[0] = 65; b[1] = 66; b[2] = 67;
foreach (i, byte in b) print(i + ":" + byte);
foreach (c in "hi") print(c);
local t = { one = 1 };
foreach (k, v in t) print(k + "->" + v);
local grow = [1, 2];
local seen = 0;
foreach (v in grow) { seen++; if (grow.len() < 4) grow.push(v * 10); }
print(seen + " " + grow.len());
foreach (i, v in []) print("never");
local total = 0;
foreach (row in [[1, 2], [3]]) foreach (v in row) total += v;
print(total);
