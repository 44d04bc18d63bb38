counter <- {
    count = 0,
    step = 2,
    inc = function() { count += step; return this.count; },
    reset = function() { this.count = 0; }
};
counter.inc(); print(counter.inc());
counter.reset(); print(counter.count);
local obj = { name = "o", hello = function() { return "hi " + name; }, plain = @(x) x + 1 };
print(obj.hello() + " " + obj.plain(1));
