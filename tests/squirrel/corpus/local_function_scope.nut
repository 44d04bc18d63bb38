function outer() {
    local function fact(n) { return n <= 1 ? 1 : n * fact(n - 1); }
    return fact(5);
}
try { print(outer()); } catch (e) { print(e); }
function fact(n) { return 99; }
print(outer());
