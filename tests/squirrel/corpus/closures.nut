local counter = 0;
local function increment() { counter++; return counter; }
increment(); increment();
print(counter);
function makeCounter() {
    local n = 0;
    return { inc = function() { n += 1; return n; }, get = @() n };
}
local c1 = makeCounter();
c1.inc(); c1.inc();
print(c1.get());
local c2 = makeCounter();
print(c2.inc());
local fs = [];
for (local i = 0; i < 3; i++) {
    local j = i;
    fs.push(function() { return j; });
}
print(fs[0]() + " " + fs[1]() + " " + fs[2]());
local gs = [];
for (local i = 0; i < 3; i++) gs.push(function() { return i; });
print(gs[0]());
local hs = [];
local k = 0;
while (k < 2) {
    local v = k;
    hs.push(function() { v += 10; return v; });
    v = 100 + k;
    k++;
}
print(hs[0]() + " " + hs[0]() + " " + hs[1]());
local outer = 1;
{
    local outer = 2;
    print(outer);
}
print(outer);
