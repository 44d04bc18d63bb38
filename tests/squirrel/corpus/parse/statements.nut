local x = 0, items = [3, 1, 2], table = { a = 1, b = 2 };

if (x == 0) x = 1;
else if (x == 1) x = 2;
else {
    x = 3;
}

while (x < 10) {
    x++;
    if (x == 5) continue;
    if (x == 8) break;
}

do {
    x--;
} while (x > 0)

for (local i = 0, j = 10; i < j; i++, j--) {
    x += i;
}
for (;;) break;

foreach (i, v in items) x += i * v;
foreach (v in items) x -= v;
foreach (k, v in table) x += v;
foreach (c in "text") x += c;

switch (x) {
    case 1:
    case 2:
        x = 10;
        break;
    case "three":
        x = 30;
        // falls through
    default:
        x = -1;
}

try {
    throw { code = 42, text = "boom" };
} catch (e) {
    x = e.code;
}
try { throw "plain"; } catch (e) x = 0;

enum Colour { Red, Green = 5, Blue }
const LIMIT = 100;
const NAME = "agent";
const NEGATIVE = -1;

function generator() {
    yield 1;
    yield 2;
    return 3;
}
local gen = generator();
local first = resume gen;
{
    local scoped = 1;
    ;
}
