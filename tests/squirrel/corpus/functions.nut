function greet(name, greeting = "Hello") {
    return greeting + ", " + name;
}
print(greet("imp"));
print(greet("imp", "Hi"));
function sum(...) {
    local total = 0;
    foreach (v in vargv) total += v;
    return total;
}
print(sum(1, 2, 3));
print(sum());
local function fact(n) { return n <= 1 ? 1 : n * fact(n - 1); }
try { print(fact(1)); print(fact(10)); } catch (e) { print(e); }
function rfact(n) { return n <= 1 ? 1 : n * rfact(n - 1); }
print(rfact(10));
local square = @(x) x * x;
print(square(7));
local apply = function(f, v) { return f(v); };
print(apply(@(x) x + 1, 41));
local add = function(a, b) { return a + b; };
print(add.call(this, 1, 2));
print(add.acall([this, 3, 4]));
print(add.pcall(this, 5, 6));
print(typeof add);
local noreturn = function() {};
print(noreturn());
local function twice(f) { return function(x) { return f(f(x)); }; }
print(twice(@(x) x * 3)(2));
