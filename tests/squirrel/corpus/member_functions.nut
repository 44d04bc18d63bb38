class Counter {
    count = 0;
    static created = [];
    constructor() { created.push(this); }
    function add(n = 1) { count += n; return this; }
    static function make(n) { local c = Counter(); c.add(n); return c; }
}
function Counter::double() { count *= 2; return count; }
Counter.triple <- function() { count *= 3; return count; };
local c = Counter.make(5);
print(c.count);
print(c.double());
print(c.triple());
print(Counter.created.len());
local d = Counter();
print(d.add().add(2).count);
print(Counter.created.len());
local fn = c.add;
local t = { value = 0, bump = function(n) { return n + 1; } };
print(t.bump(41));
print(typeof fn);
function varargs(first, ...) {
    local s = "" + first;
    for (local i = 0; i < vargv.len(); i++) s += "," + vargv[i];
    return s + " (" + vargv.len() + ")";
}
print(varargs(1)); print(varargs(1, 2, 3));
local lambdas = [@(x) x + 1, @(x) x * 2, @(x, y = 10) x + y];
print(lambdas[0](1) + " " + lambdas[1](4) + " " + lambdas[2](5));
