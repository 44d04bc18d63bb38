function add(x, y = 1) {
    return x + y;
}
// A local function is not visible in its own body in Squirrel 3.0.5: recursion goes through a
// root-table function instead.
function fact(n) {
    return n <= 1 ? 1 : n * fact(n - 1);
}
local function twice(n) {
    return n * 2;
}
function sum(...) {
    local total = 0;
    foreach (v in vargv) total += v;
    return total;
}
local square = @(x) x * x;
local compose = @(f, g) @(x) f(g(x));
local counter = function() {
    local count = 0;
    return function() {
        count += 1;  // assigns the outer local
        return count;
    };
}();
local t = {
    name = "t",
    function greet(who) { return "hello " + who + " from " + name; },
    "json-key": 1,
    [1 + 1] = "two",
    nested = { deeper = [1, 2, { x = 3 }] }
};
local bound = t.greet.bindenv(t);
local result = add.call(this, 1, 2) + add.pcall(this, 1) + sum.acall([this, 1, 2, 3]);
function t::extra() { return 1; }
