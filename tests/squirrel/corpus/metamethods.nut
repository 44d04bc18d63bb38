class Vec {
    x = 0; y = 0;
    constructor(x, y) { this.x = x; this.y = y; }
    function _add(o) { return Vec(x + o.x, y + o.y); }
    function _sub(o) { return Vec(x - o.x, y - o.y); }
    function _mul(k) { return Vec(x * k, y * k); }
    function _tostring() { return "(" + x + ", " + y + ")"; }
    function _typeof() { return "Vec"; }
    function _cmp(o) { return (x + y) <=> (o.x + o.y); }
}
local a = Vec(1, 2), b = Vec(3, 4);
print((a + b).tostring());
print((b - a).tostring());
print((a * 3).tostring());
print("v=" + a);
print(typeof a);
print(a < b); print(b > a); print(a <=> b);
class Bag {
    _slots = null;
    constructor() { _slots = {}; }
    function _get(k) { if (k in _slots) return _slots[k]; throw null; }
    function _set(k, v) { _slots[k] <- v; }
}
local bag = Bag();
bag.color = "red";
print(bag.color);
