const LIMIT = 3;
const NAME = "bridge";
enum Color { RED, GREEN = 5, BLUE }
::counter <- 0;
function bump() { ::counter++; counter += 1; return counter; }
bump();
print(::counter);
print(LIMIT * 2);
print(NAME + "!");
print(Color.RED + " " + Color.GREEN + " " + Color.BLUE);
globalValue <- "g";
function readGlobal() { return globalValue; }
print(readGlobal());
function setGlobal() { globalValue = "changed"; }
setGlobal();
print(globalValue);
print(getroottable().globalValue);
try { notDeclared = 1; } catch (e) { print(e); }
