class Client {
    _id = null;
    _events = null;
    _count = 0;
    constructor(id) { _id = id; _events = []; }
    function start(source) {
        source.subscribe(_onEvent.bindenv(this));
        source.subscribe(function(e) { _count += 100; }.bindenv(this));
    }
    function _onEvent(e) { _events.push(e); _count++; }
    function report() { return _id + ": " + _events.len() + " events, count " + _count; }
}
::source <- {
    handlers = [],
    subscribe = function(h) { source.handlers.push(h); },
    fire = function(e) { foreach (h in source.handlers) h(e); }
};
local c = Client("c1");
c.start(source);
source.fire("a");
source.fire("b");
print(c.report());
class Outer {
    Inner = class { v = 1; function get() { return v; } };
}
local inner = Outer.Inner();
print(inner.get());
Outer.Other <- class { function hello() { return "hello"; } };
print(Outer.Other().hello());
