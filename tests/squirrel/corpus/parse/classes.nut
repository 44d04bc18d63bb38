class Shape </ description = "a shape", version = 1 /> {
    name = null;
    sides = 0;
    static count = 0;
    static UNIT = 1.0;
    tags = [];

    constructor(name, sides = 0) {
        this.name = name;
        this.sides = sides;
        Shape.count++;
    }

    function area() { return 0; }
    function _tostring() { return name + "(" + sides + ")"; }
    function _typeof() { return "Shape"; }
    function _cmp(other) { return sides <=> other.sides; }
    function _add(other) { return Shape(name + other.name, sides + other.sides); }
    function _get(key) { throw null; }
    function _set(key, value) { throw "read only: " + key; }
    </ hidden = true />
    static function create(n) { return Shape("s", n); }
}

class Square extends Shape {
    size = 0;
    constructor(size) {
        base.constructor("square", 4);
        this.size = size;
    }
    function area() { return size * size; }
}

class Outer {
    Inner = class {
        value = 1;
        function get() { return value; }
    };
}
Outer.Other <- class extends Square {};
class Outer.Third {
    x = 3;
}

local s = Square(3);
local isShape = s instanceof Shape;
local kind = typeof s;
local copy = clone s;
local inner = Outer.Inner();
local Anonymous = class {
    constructor() {}
};
