local a = 7, b = 3, c = null, t = { k = 1 }, arr = [1, 2, 3];
local r;
r = a + b - a * b / a % b;
r = a << 2 >> 1 >>> 3;
r = a & b | a ^ ~b;
r = a < b || a <= b && a > b || a >= b;
r = a == b != (a <=> b);
r = "k" in t && !("z" in t);
r = t instanceof Table;
r = typeof a + typeof t;
r = a ? b : c ? 1 : 2;
r = (a, b, a + b);
a += 1; a -= 2; a *= 3; a /= 2; a %= 5;
a++; a--; ++a; --a;
r = a++ + ++b - b-- - --a;
t.x <- 5;
::globalValue <- r;
r = ::globalValue;
r = delete t.x;
r = clone arr;
r = -a + -(-b) + -1.5;
r = arr[0] + arr[arr.len() - 1];
r = t.k
r = t["k"]
