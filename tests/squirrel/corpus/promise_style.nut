// A promise library shaped like Electric Imp's Promise (constructor taking an action,
// handlers bound with bindenv, static helpers, deferred calls through imp.wakeup).
// `imp` is a stand-in here so the program runs the same on the VM and translated.
pending <- [];
// bindenv keeps a weak reference in Squirrel 3: every promise is kept here so no bound
// handler outlives its environment (the translation keeps a strong one; see docs/porting.md)
keep <- [];
imp <- { wakeup = function(seconds, callback) { ::pending.push(callback); } };

class Promise {
    static VERSION = "4.0.0-style";
    static STATE_PENDING = 0;
    static STATE_RESOLVED = 1;
    static STATE_REJECTED = 2;

    _state = null;
    _value = null;
    _handlers = null;

    constructor(action) {
        ::keep.push(this);
        _state = STATE_PENDING;
        _handlers = { onFulfilled = [], onRejected = [] };
        try {
            action(_resolve.bindenv(this), _reject.bindenv(this));
        } catch (e) {
            _reject(e);
        }
    }

    function _isPromise(value) {
        return typeof value == "instance" && value instanceof Promise;
    }

    function _resolve(value = null) {
        if (STATE_PENDING != _state) return;
        if (_isPromise(value)) {
            value.then(_resolve.bindenv(this), _reject.bindenv(this));
            return;
        }
        _state = STATE_RESOLVED;
        _value = value;
        _callHandlers();
    }

    function _reject(reason = null) {
        if (STATE_PENDING != _state) return;
        _state = STATE_REJECTED;
        _value = reason;
        _callHandlers();
    }

    function _callHandlers() {
        local list = _state == STATE_RESOLVED ? _handlers.onFulfilled : _handlers.onRejected;
        local value = _value;
        imp.wakeup(0, function() {
            foreach (handler in list) handler(value);
            _handlers = { onFulfilled = [], onRejected = [] };
        }.bindenv(this));
    }

    function then(onFulfilled = null, onRejected = null) {
        return Promise(function(resolve, reject) {
            local fulfilled = function(value) {
                if (typeof onFulfilled != "function") { resolve(value); return; }
                try { resolve(onFulfilled(value)); } catch (err) { reject(err); }
            };
            local rejected = function(reason) {
                if (typeof onRejected != "function") { reject(reason); return; }
                try { resolve(onRejected(reason)); } catch (err) { reject(err); }
            };
            if (_state == STATE_PENDING) {
                _handlers.onFulfilled.push(fulfilled);
                _handlers.onRejected.push(rejected);
            } else if (_state == STATE_RESOLVED) {
                local value = _value;
                imp.wakeup(0, function() { fulfilled(value); });
            } else {
                local reason = _value;
                imp.wakeup(0, function() { rejected(reason); });
            }
        }.bindenv(this));
    }

    function fail(onRejected) { return then(null, onRejected); }

    static function resolve(value) {
        return Promise(function(ok, ko) { ok(value); });
    }

    static function all(promises) {
        return Promise(function(resolve, reject) {
            local results = array(promises.len());
            local left = promises.len();
            foreach (i, p in promises) {
                p.then(function(value) {
                    results[i] = value;
                    left--;
                    if (left == 0) resolve(results);
                }, reject);
            }
        });
    }
}

local log = [];
Promise(function(ok, ko) { imp.wakeup(1, function() { ok(20); }); })
    .then(function(v) { log.push("got " + v); return Promise.resolve(v + 1); })
    .then(function(v) { log.push("chained " + v); throw "bad " + v; })
    .fail(function(e) { log.push("failed: " + e); return "fine"; })
    .then(function(v) { log.push("after " + v); });

Promise.all([Promise.resolve(1), Promise.resolve(2), Promise(function(ok, ko) { ok(3); })])
    .then(function(values) { log.push("all " + values.len() + " " + values[0] + values[1] + values[2]); });

local turns = 0;
while (::pending.len() > 0 && turns < 100) {
    local callback = ::pending.remove(0);
    callback();
    turns++;
}
foreach (line in log) print(line);
print(Promise.VERSION + " after " + turns + " turns");
