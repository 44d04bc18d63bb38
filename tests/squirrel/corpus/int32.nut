local max = 2147483647;
print(max + 1);
print(-max - 2);
print(max * 2);
print(65536 * 65536);
print(7 / 2); print(-7 / 2); print(7 / -2);
print(7 % 3); print(-7 % 3); print(7 % -3);
print(1 << 31); print(1 << 32); print(-8 >> 1); print(-8 >>> 1); print(-1 >>> 28);
print(5 & 3); print(5 | 3); print(5 ^ 3); print(~5);
local z = 0;
try { print(1 / z); } catch (e) { print("caught " + e); }
local i = max; i++; print(i);
local j = -2147483648; j--; print(j);
print(-(-2147483648));
