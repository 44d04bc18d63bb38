// A small library in the style of imp's: a promise-like deferred, a queue with retries,
// static constants, metamethods and callbacks bound to instances.
class Deferred {
    static VERSION = "1.0.0";
    static PENDING = 0;
    static RESOLVED = 1;
    static REJECTED = 2;

    _state = null;
    _value = null;
    _handlers = null;

    constructor() {
        _state = PENDING;
        _handlers = [];
    }

    static function resolved(value) {
        local d = Deferred();
        d.resolve(value);
        return d;
    }

    function then(onResolved, onRejected = null) {
        local next = Deferred();
        local handler = {
            resolved = onResolved,
            rejected = onRejected,
            next = next
        };
        if (_state == PENDING) _handlers.push(handler);
        else _run(handler);
        return next;
    }

    function resolve(value) { _settle(RESOLVED, value); }
    function reject(reason) { _settle(REJECTED, reason); }

    function _settle(state, value) {
        if (_state != PENDING) return;
        _state = state;
        _value = value;
        foreach (h in _handlers) _run(h);
        _handlers = null;
    }

    function _run(h) {
        local callback = _state == RESOLVED ? h.resolved : h.rejected;
        if (callback == null) {
            if (_state == RESOLVED) h.next.resolve(_value); else h.next.reject(_value);
            return;
        }
        try {
            h.next.resolve(callback(_value));
        } catch (err) {
            h.next.reject(err);
        }
    }

    function _typeof() { return "Deferred"; }
    function _tostring() { return "Deferred(" + _state + ")"; }
}

class RetryQueue {
    _items = null;
    _maxRetries = 0;
    _log = null;

    constructor(maxRetries) {
        _items = [];
        _maxRetries = maxRetries;
        _log = [];
    }

    function add(name, attemptsNeeded) {
        _items.push({ name = name, needed = attemptsNeeded, attempts = 0 });
        return this;
    }

    function drain() {
        while (_items.len() > 0) {
            local item = _items.remove(0);
            item.attempts++;
            if (item.attempts >= item.needed) {
                _log.push(item.name + " ok after " + item.attempts);
            } else if (item.attempts > _maxRetries) {
                _log.push(item.name + " dropped");
            } else {
                _items.push(item);
            }
        }
        return _log;
    }
}

local d = Deferred();
local seen = [];
d.then(function(v) { seen.push("a" + v); return v * 2; })
 .then(function(v) { seen.push("b" + v); throw "boom"; })
 .then(null, function(e) { seen.push("caught " + e); return "recovered"; })
 .then(function(v) { seen.push(v); });
print(typeof d + " " + d);
d.resolve(21);
print("" + d);
foreach (s in seen) print(s);
Deferred.resolved(5).then(@(v) print("late " + v));
print(Deferred.VERSION + " " + Deferred.PENDING);

local q = RetryQueue(2).add("x", 1).add("y", 3).add("z", 2);
foreach (line in q.drain()) print(line);

local counts = {};
foreach (word in split("a b a c b a", " ")) {
    if (word in counts) counts[word]++;
    else counts[word] <- 1;
}
local keys = [];
foreach (k, v in counts) keys.push(k);
keys.sort();
foreach (k in keys) print(k + "=" + counts[k]);
local hex = "";
foreach (b in [0, 15, 255, 16]) hex += format("%02x", b);
print(hex);
