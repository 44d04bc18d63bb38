"""The Squirrel side of the binding: the imp globals as Squirrel objects over ``__b_*`` natives.

Every native the binding installs returns a plain value or a *marker string* starting with the
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

function __r(r) {
    if (typeof r == "string" && r.len() > 1 && r[0] == 1) {
        local kind = r[1];
        if (kind == 'E') throw __b_lasterror();
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

class AmqpMessage {
    _h = null;
    constructor(h) { _h = h; }
    function body() { return __r(__b_body(_h)); }
    function properties() { return __r(__b_properties(_h)); }
    function _typeof() { return "amqpmessage"; }
}

class AmqpDelivery {
    _h = null;
    _m = null;
    constructor(h) { _h = h; }
    function message() { if (_m == null) _m = AmqpMessage(__r(__b_message(_h))); return _m; }
    function accept() { __r(__b_accept(_h)); }
    function reject() { __r(__b_reject(_h)); }
    function release() { __r(__b_release(_h)); }
    function _typeof() { return "amqpdelivery"; }
}

class AmqpTransfer {
    _h = null;
    constructor(h) { _h = h; }
    function sendasync(callback = null) { __r(__b_sendasync(_h, callback)); }
    function cancel() { __r(__b_cancel(_h)); }
    function _typeof() { return "amqptransfer"; }
}

class AmqpNode {
    _h = null;
    constructor(h) { _h = h; }
    function isopen() { return __b_isopen(_h) == 1; }
    function close() { __r(__b_close(_h)); }
}

class AmqpSender extends AmqpNode {
    function createtransfer(message) {
        if (!(message instanceof AmqpMessage)) throw "createtransfer: message must be an amqpmessage";
        return AmqpTransfer(__r(__b_createtransfer(_h, message._h)));
    }
    function _typeof() { return "amqpsender"; }
}

class AmqpReceiver extends AmqpNode {
    function _typeof() { return "amqpreceiver"; }
}

class AmqpSession extends AmqpNode {
    function opensender(path, callback = null) {
        return AmqpSender(__r(__b_opensender(_h, path, callback)));
    }
    function openreceiver(path, eventCallback = null, messageCallback = null) {
        return AmqpReceiver(__r(__b_openreceiver(_h, path, eventCallback, messageCallback)));
    }
    function _typeof() { return "amqpsession"; }
}

class AmqpConnection extends AmqpNode {
    function opensession(callback = null) { return AmqpSession(__r(__b_opensession(_h, callback))); }
    function _typeof() { return "amqpconnection"; }
}

function __deliver(callback, handles, n) {
    local deliveries = array(n);
    for (local i = 0; i < n; i++) deliveries[i] = AmqpDelivery(handles[i]);
    callback(deliveries);
}

amqp <- {
    openconnection = function(url, callback) {
        return AmqpConnection(__r(__b_openconnection(url, callback)));
    },
    createmessage = function(body, properties = null) {
        return AmqpMessage(__r(__b_createmessage(__bin(body), properties)));
    },
    createbinarymessage = function(body, properties = null) {
        return AmqpMessage(__r(__b_createbinarymessage(__bin(body), properties)));
    },
};

imp <- {
    configparams = __r(__b_configparams()),
    wakeup = function(seconds, callback) { return __r(__b_wakeup(seconds, callback)); },
    cancelwakeup = function(handle) { __r(__b_cancelwakeup(handle)); },
    getmacaddress = function() { return "000000000000"; },
    environment = function() { return 2; },
};

server <- {
    log = function(message) { __b_log(message); },
    error = function(message) { __b_error(message); },
    save = function(table) { return __r(__b_save(table)); },
    load = function() { return __r(__b_load()); },
};

print <- function(message) { __b_log(message); };

class HttpRequest {
    _h = null;
    constructor(h) { _h = h; }
    function sendasync(callback, streamCallback = null, timeout = 600) {
        __r(__b_http_sendasync(_h, callback, timeout));
        return this;
    }
    function sendsync() { return __r(__b_http_sendsync(_h)); }
    function cancel() { __r(__b_http_cancel(_h)); }
    function _typeof() { return "httprequest"; }
}

local function digest(name) {
    return function(data) { return __r(__b_digest(name, __bin(data))); };
}
local function hmac(name) {
    return function(data, key) { return __r(__b_hmac(name, __bin(data), __bin(key))); };
}
local hash = {
    sha256 = digest("sha256"), sha1 = digest("sha1"), sha512 = digest("sha512"),
    md5 = digest("md5"), hmacsha256 = hmac("hmacsha256"), hmacsha1 = hmac("hmacsha1"),
    hmacsha512 = hmac("hmacsha512"), hmacmd5 = hmac("hmacmd5"),
};
crypto <- clone hash;

http <- {
    hash = hash,
    jsonencode = function(value, settings = null) { return __r(__b_jsonencode(value, settings)); },
    jsondecode = function(text) { return __r(__b_jsondecode(__bin(text))); },
    base64encode = function(data) { return __r(__b_base64encode(__bin(data))); },
    base64decode = function(text) { return __r(__b_base64decode(__bin(text))); },
    urlencode = function(table) { return __r(__b_urlencode(table)); },
    urldecode = function(text) { return __r(__b_urldecode(text)); },
    agenturl = function() { return __b_agenturl(); },
    request = function(method, url, headers = null, body = null) {
        return HttpRequest(__r(__b_http_request(method, url, headers, __bin(body))));
    },
    get = function(url, headers = null) { return http.request("GET", url, headers); },
    post = function(url, headers = null, body = null) { return http.request("POST", url, headers, body); },
    put = function(url, headers = null, body = null) { return http.request("PUT", url, headers, body); },
    httpdelete = function(url, headers = null) { return http.request("DELETE", url, headers); },
    onrequest = function(callback) { __r(__b_unsupported("http.onrequest")); },
};

device <- {
    on = function(name, callback) { __r(__b_unsupported("device.on")); },
    send = function(name, data = null) { __r(__b_unsupported("device.send")); },
    isconnected = function() { return false; },
};

agent <- {
    stop = function() { __b_stop(); },
    exit = function(status = 0) { __b_exit(status); throw "agent.exit(" + status + ")"; },
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
    __b_onerror(text, frames);
});
"""

# Root-table names the standard library brings that imp agents never had (files, processes,
# the environment): removed so agent code cannot reach the host.
REMOVED_GLOBALS = ("system", "remove", "rename", "file", "dofile", "loadfile",
                   "writeclosuretofile", "getenv", "stdin", "stdout", "stderr", "stream")
