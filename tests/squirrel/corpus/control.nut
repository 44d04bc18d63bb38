local i = 0;
while (i < 3) { print("while " + i); i++; }
do { print("do " + i); i--; } while (i > 1);
for (local j = 0; j < 5; j++) {
    if (j == 1) continue;
    if (j == 3) break;
    print("for " + j);
}
for (local a = 0, b = 10; a < 3; a++, b--) print(a + b);
local n = 0;
do {
    n++;
    if (n < 3) continue;
    print("do-continue " + n);
} while (n < 4);
foreach (v in [1, 2, 3]) { if (v == 2) continue; print("foreach " + v); }
local x = 5;
if (x > 10) print("big"); else if (x > 3) print("medium"); else print("small");
print(x > 3 ? "yes" : "no");
local k = 0;
for (;;) { k++; if (k > 4) break; }
print(k);
local r = (1, 2, 3);
print(r);
