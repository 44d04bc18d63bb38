class Animal {
    name = null;
    sound = "...";
    static KINGDOM = "animalia";
    legs = 4;
    constructor(name) {
        this.name = name;
    }
    function speak() { return name + " says " + sound; }
    function describe() { return name + " has " + legs + " legs"; }
}
class Dog extends Animal {
    sound = "woof";
    tricks = null;
    constructor(name) {
        base.constructor(name);
        tricks = [];
    }
    function learn(trick) { tricks.push(trick); return this; }
    function describe() { return base.describe() + " and " + tricks.len() + " tricks"; }
}
local d = Dog("Rex");
print(d.speak());
d.learn("sit").learn("roll");
print(d.describe());
print(Animal("Cat").speak());
print(Dog.KINGDOM + " " + d.KINGDOM);
print(d instanceof Dog); print(d instanceof Animal); print(Animal("x") instanceof Dog);
print(typeof d); print(typeof Dog);
try { d.undeclared = 1; } catch (e) { print(e); }
try { print(d.nothing); } catch (e) { print(e); }
local e = clone d;
e.name = "Clone";
print(e.speak() + " / " + d.speak());
print(e.tricks.len());
class Shared { items = []; }
local s1 = Shared(); local s2 = Shared();
s1.items.push(1);
print(s2.items.len());
print("name" in d); print("zzz" in d);
