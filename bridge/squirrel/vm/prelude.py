"""The Squirrel side of the binding: the imp globals as Squirrel objects over natives.

Every native (one bound function, ``__b(name, args...)``: each bound function costs the
binding some 4.6 KiB per VM) returns a plain value or a *marker string* starting with the
byte 0x01 (the binding turns any genuine result starting with it into a literal, so the marker is
unambiguous): ``\\x01E`` an error to throw here (so a Squirrel ``try``/``catch`` sees it: a
Python exception must never unwind through the VM), ``\\x01B<hex>`` bytes to turn into a blob,
``\\x01S<source>`` a Squirrel literal (tables, arrays, real bools) to evaluate. Going the other
way, a blob handed to a native is passed as ``\\x01B<hex>``. The wrappers give the objects
imp's ``typeof`` names (``amqpconnection`` ...). Squirrel's ``\\x`` escape reads up to four hex
digits, hence ``\\x0001``.
"""

PRELUDE_NAME = "bridge-prelude"

PRELUDE = r"""
local HEX = array(256, 0);
foreach (i, c in "0123456789abcdef") HEX[c] = i;
foreach (i, c in "ABCDEF") HEX[c] = i + 10;
local DIGITS = "0123456789abcdef";
local LIT = {};
local LITCOUNT = 0;

function __hexblob(s, from) {
    local n = (s.len() - from) / 2;
    local b = blob(n);
    for (local i = from; i < s.len(); i += 2) b.writen(HEX[s[i]] * 16 + HEX[s[i + 1]], 'b');
    b.seek(0);
    return b;
}

function __lit(src) {
    local fn = src in LIT ? LIT[src] : null;
    if (fn == null) {
        fn = compilestring("return " + src.slice(2), "bridge-value");
        if (LITCOUNT++ > 256) { LIT.clear(); LITCOUNT = 0; }
        LIT[src] <- fn;
    }
    return fn();
}

// Natives take any number of arguments cheaply, an array slowly (per-item proxies): spread an
// argument list (args[0] is left for the count) over a call of fixed arity, padded with null.
local __c8 = function(op, a) {
    return __b(op,
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    );
};
local __c16 = function(op, a) {
    return __b(op,
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9],
        a[10], a[11], a[12], a[13], a[14], a[15]
    );
};
local __c32 = function(op, a) {
    return __b(op,
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9],
        a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19],
        a[20], a[21], a[22], a[23], a[24], a[25], a[26], a[27], a[28], a[29],
        a[30], a[31]
    );
};
function __callv(op, args) {
    local n = args.len();
    args[0] = n - 1;
    if (n <= 8) { args.resize(8); return __c8(op, args); }
    if (n <= 16) { args.resize(16); return __c16(op, args); }
    if (n <= 32) { args.resize(32); return __c32(op, args); }
    args[0] = -1;
    return __b(op, -1, args);
}

// anything but printable ASCII other than " and \ (the regexp library takes no raw control
// characters in a pattern): such strings are escaped byte by byte
local JSON_SPECIAL = regexp("[^ !#-\\[\\]-~]");
local JSON_ESCAPES = {[34] = "\\\"", [92] = "\\\\", [10] = "\\n", [13] = "\\r", [9] = "\\t",
                      [8] = "\\b", [12] = "\\f"};

function __jsonstring(s) {
    if (::format("%s", s).len() != s.len()) return null;  // a NUL: the bridge's encoder
    if (JSON_SPECIAL.search(s) == null) return "\"" + s + "\"";
    local out = "\"";
    foreach (c in s) {
        if (c in JSON_ESCAPES) out += JSON_ESCAPES[c];
        else if (c >= 0 && c < 32) out += ::format("\\u%04x", c);
        else out += ::format("%c", c);
    }
    return out + "\"";
}

function __json(v, colon, comma, pad) {
    switch (typeof v) {
        case "string": return __jsonstring(v);
        case "integer": return v.tostring();
        case "bool": return v ? "true" : "false";
        case "null": return "null";
        case "float":
            if (v != v || v - v != 0.0) return null;  // NaN, infinities
            return v.tostring();
        case "table":
            if (!v.len()) return "{}";
            local out = "";
            foreach (k, x in v) {
                if (typeof k != "string") return null;
                local key = __jsonstring(k), item = __json(x, colon, comma, pad);
                if (key == null || item == null) return null;
                out += (out == "" ? "" : comma) + key + colon + item;
            }
            return "{" + pad + out + pad + "}";
        case "array":
            if (!v.len()) return "[]";
            local out = "";
            foreach (i, x in v) {
                local item = __json(x, colon, comma, pad);
                if (item == null) return null;
                out += (i ? comma : "") + item;
            }
            return "[" + pad + out + pad + "]";
    }
    return null;
}

// a value as a run of call arguments (one native call, no table proxies): containers as a
// marker and their length, then their items; a string that could pass for a marker is escaped
function __flat(v, out) {
    switch (typeof v) {
        case "table":
            out.append("\x0001T"); out.append(v.len());
            foreach (k, x in v) { __flat(k, out); __flat(x, out); }
            break;
        case "array":
            out.append("\x0001A"); out.append(v.len());
            foreach (x in v) __flat(x, out);
            break;
        case "string":
            out.append(v.len() && v[0] == 1 ? "\x0001S" + v : __bin(v));
            break;
        case "blob": out.append(__bin(v)); break;
        case "integer": case "float": case "bool": case "null": out.append(v); break;
        default: out.append("\x0001X" + typeof v);
    }
}

function __r(r) {
    if (typeof r == "string" && r.len() > 1 && r[0] == 1) {
        local kind = r[1];
        if (kind == 'E') throw __b("lasterror");
        if (kind == 'B') return __hexblob(r, 2);
        if (kind == 'S') return __lit(r);
    }
    return r;
}

// a blob, or a string with a NUL (the binding would cut it there), as the hex marker
function __bin(v) {
    local kind = typeof v;
    // (format's %s stops at a NUL as the binding does: a shorter result means there is one)
    if (kind != "blob" && (kind != "string" || ::format("%s", v).len() == v.len())) return v;
    local parts = [];
    local chunk = "\x0001B";
    foreach (c in v) {
        c = c & 0xFF;
        chunk += DIGITS.slice(c >> 4, (c >> 4) + 1) + DIGITS.slice(c & 15, (c & 15) + 1);
        if (chunk.len() >= 512) { parts.append(chunk); chunk = ""; }
    }
    local out = "";
    foreach (p in parts) out += p;
    return out + chunk;
}

// imp's blob has tostring(); Squirrel 3.0's does not
blob.tostring <- function() {
    local out = "";
    local saved = this.tell();
    this.seek(0);
    local chunk = "";
    while (!this.eos()) {
        chunk += ::format("%c", this.readn('b'));
        if (chunk.len() >= 256) { out += chunk; chunk = ""; }
    }
    this.seek(saved);
    return out + chunk;
}
blob._tostring <- blob.tostring;

// A message made here stays a Squirrel object until it is sent (handing Python objects to the
// VM is what costs most in the binding); a received one wraps the bridge's message (_h).
local function normprops(props) {
    local out = {};
    if (props == null) return out;
    if (typeof props != "table") throw "properties must be a table, got " + typeof props;
    foreach (k, v in props) {
        if (typeof k != "string")
            throw "properties keys must be strings, got " + typeof k + " key " + k;
        local kind = typeof v;
        out[k] <- (kind == "integer" || kind == "float" || kind == "bool" || kind == "string"
                   || kind == "null") ? v : v.tostring();
    }
    return out;
}

class AmqpMessage {
    _kind = null;
    _body = null;
    _props = null;
    _h = null;
    constructor(kind, body, props, h = null) { _kind = kind; _body = body; _props = props; _h = h; }
    function body() { return _h != null ? __r(__b("body", _h)) : _body; }
    function properties() {
        if (_h != null) return __r(__b("properties", _h));
        local copy = {};
        foreach (k, v in _props) copy[k] <- v;
        return copy;
    }
    function _typeof() { return "amqpmessage"; }
}

class AmqpDelivery {
    _h = null;
    _m = null;
    constructor(h) { _h = h; }
    function message() {
        if (_m == null) _m = AmqpMessage(null, null, null, __r(__b("message", _h)));
        return _m;
    }
    function accept() { __r(__b("accept", _h)); }
    function reject() { __r(__b("reject", _h)); }
    function release() { __r(__b("release", _h)); }
    function _typeof() { return "amqpdelivery"; }
}

__transfers <- 0;

class AmqpTransfer {
    _sender = null;
    _message = null;
    _id = null;
    _cancelled = false;
    constructor(sender, message) { _sender = sender; _message = message; }
    function sendasync(callback = null) {
        if (_cancelled)
            throw "this transfer was already sent or cancelled; create a new one "
                  + "with createtransfer";
        local m = _message;
        _id = ++__transfers;  // numbered here: a native returning an integer is slow
        local args = [0, _id, _sender, m._h != null ? m._h : m._kind, __bin(m._body), callback];
        if (m._props != null) foreach (k, v in m._props) { args.append(k); args.append(v); }
        __r(__callv("send", args));
        _cancelled = true;  // sent: a second sendasync is an error, as for the bridge's own
    }
    function cancel() {
        if (_id != null) __r(__b("cancel", _id));
        _cancelled = true;
    }
    function _typeof() { return "amqptransfer"; }
}

class AmqpNode {
    _h = null;
    constructor(h) { _h = h; }
    // (a native returning anything but null costs several µs in the binding: null is "open")
    function isopen() { return __b("isopen", _h) == null; }
    function close() { __r(__b("close", _h)); }
}

class AmqpSender extends AmqpNode {
    function createtransfer(message) {
        if (!(message instanceof AmqpMessage))
            throw "createtransfer: message must be an amqpmessage";
        __r(__b("usable", _h));
        return AmqpTransfer(_h, message);
    }
    function _typeof() { return "amqpsender"; }
}

class AmqpReceiver extends AmqpNode {
    function _typeof() { return "amqpreceiver"; }
}

class AmqpSession extends AmqpNode {
    function opensender(path, callback = null) {
        return AmqpSender(__r(__b("opensender", _h, path, callback)));
    }
    function openreceiver(path, eventCallback = null, messageCallback = null) {
        return AmqpReceiver(__r(__b("openreceiver", _h, path, eventCallback, messageCallback)));
    }
    function _typeof() { return "amqpsession"; }
}

class AmqpConnection extends AmqpNode {
    function opensession(callback = null) {
        return AmqpSession(__r(__b("opensession", _h, callback)));
    }
    function _typeof() { return "amqpconnection"; }
}

function __deliver(callback, handles, n) {
    local deliveries = array(n);
    for (local i = 0; i < n; i++) deliveries[i] = AmqpDelivery(handles[i]);
    callback(deliveries);
}

amqp <- {
    openconnection = function(url, callback) {
        return AmqpConnection(__r(__b("openconnection", url, callback)));
    },
    createmessage = function(body, properties = null) {
        if (typeof body != "string")
            throw "body must be a string, got " + typeof body + " (blobs: createbinarymessage)";
        return AmqpMessage("value", body, normprops(properties));
    },
    createbinarymessage = function(body, properties = null) {
        if (typeof body != "string" && typeof body != "blob")
            throw "body must be a string or blob, got " + typeof body;
        return AmqpMessage("data", body, normprops(properties));
    },
};

imp <- {
    configparams = __r(__b("configparams")),
    wakeup = function(seconds, callback) { return __r(__b("wakeup", seconds, callback)); },
    cancelwakeup = function(handle) { __r(__b("cancelwakeup", handle)); },
    getmacaddress = function() { return "000000000000"; },
    environment = function() { return 2; },
};

server <- {
    log = function(message) { __b("log", message); },
    error = function(message) { __b("error", message); },
    save = function(table) { return __r(__b("save", table)); },
    load = function() { return __r(__b("load")); },
};

print <- function(message) { __b("log", message); };

// The C library's time() reads a coarse clock that lags a few ms behind at each second
// boundary: two calls a millisecond apart can give different seconds (SAS tokens made back to
// back then differ). The agent's clock is the bridge's.
time <- function() { return __b("time"); };

class HttpRequest {
    _h = null;
    constructor(h) { _h = h; }
    function sendasync(callback, streamCallback = null, timeout = 600) {
        __r(__b("http_sendasync", _h, callback, timeout));
        return this;
    }
    function sendsync() { return __r(__b("http_sendsync", _h)); }
    function cancel() { __r(__b("http_cancel", _h)); }
    function _typeof() { return "httprequest"; }
}

local function digest(name) {
    return function(data) { return __r(__b("digest", name, __bin(data))); };
}
local function hmac(name) {
    return function(data, key) { return __r(__b("hmac", name, __bin(data), __bin(key))); };
}
local hash = {
    sha256 = digest("sha256"), sha1 = digest("sha1"), sha512 = digest("sha512"),
    md5 = digest("md5"), hmacsha256 = hmac("hmacsha256"), hmacsha1 = hmac("hmacsha1"),
    hmacsha512 = hmac("hmacsha512"), hmacmd5 = hmac("hmacmd5"),
};
crypto <- clone hash;

http <- {
    hash = hash,
    jsonencode = function(value, settings = null) {
        local compact = settings != null && ("compact" in settings) && settings.compact;
        // in Squirrel for plain data (no crossing, no Python encoder); anything unusual
        // (a blob, an instance, a non-string key, NaN ...) goes to the bridge's encoder,
        // which also gives the error naming where it is
        local fast = __json(value, compact ? ":" : ": ", compact ? "," : ", ", compact ? "" : " ");
        if (fast != null) return fast;
        local args = [0, compact];
        __flat(value, args);
        return __r(__callv("jsonencode", args));
    },
    jsondecode = function(text) { return __r(__b("jsondecode", __bin(text))); },
    base64encode = function(data) { return __r(__b("base64encode", __bin(data))); },
    base64decode = function(text) { return __r(__b("base64decode", __bin(text))); },
    urlencode = function(table) { return __r(__b("urlencode", table)); },
    urldecode = function(text) { return __r(__b("urldecode", text)); },
    agenturl = function() { return __b("agenturl"); },
    request = function(method, url, headers = null, body = null) {
        return HttpRequest(__r(__b("http_request", method, url, headers, __bin(body))));
    },
    get = function(url, headers = null) { return http.request("GET", url, headers); },
    post = function(url, headers = null, body = null) {
        return http.request("POST", url, headers, body);
    },
    put = function(url, headers = null, body = null) {
        return http.request("PUT", url, headers, body);
    },
    httpdelete = function(url, headers = null) { return http.request("DELETE", url, headers); },
    onrequest = function(callback) { __r(__b("unsupported", "http.onrequest")); },
};

device <- {
    on = function(name, callback) { __r(__b("unsupported", "device.on")); },
    send = function(name, data = null) { __r(__b("unsupported", "device.send")); },
    isconnected = function() { return false; },
};

agent <- {
    stop = function() { __b("stop"); },
    exit = function(status = 0) { __b("exit", status); throw "agent.exit(" + status + ")"; },
};

math <- {
    abs = abs, acos = acos, asin = asin, atan = atan, atan2 = atan2, ceil = ceil, cos = cos,
    exp = exp, fabs = fabs, floor = floor, log = log, log10 = log10, pow = pow, rand = rand,
    sin = sin, sqrt = sqrt, srand = srand, tan = tan, PI = PI, RAND_MAX = RAND_MAX,
};

seterrorhandler(function(e) {
    local frames = "";
    for (local level = 2; ; level++) {
        local info = getstackinfos(level);
        if (info == null) break;
        frames += info.src + "\n" + info.line + "\n" + info.func + "\n";
    }
    local text = e;
    if (typeof e != "string") {
        try { text = e.tostring(); } catch (ignored) { text = typeof e; }
    }
    __b("onerror", text, frames);
});
"""

# Root-table names the standard library brings that imp agents never had (files, processes,
# the environment): removed so agent code cannot reach the host.
REMOVED_GLOBALS = ("system", "remove", "rename", "file", "dofile", "loadfile",
                   "writeclosuretofile", "getenv", "stdin", "stdout", "stderr", "stream")
