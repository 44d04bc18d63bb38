try { throw "plain"; } catch (e) { print("caught " + e); }
try { throw 42; } catch (e) { print(e + 1); }
try { throw { code = 7 }; } catch (e) { print(e.code); }
try { local t = {}; t.x; } catch (e) { print(e); }
try { null.x; } catch (e) { print(e); }
try { undefinedFunction(); } catch (e) { print(e); }
try { 1 + null; } catch (e) { print(e); }
function risky(n) { if (n > 2) throw "too big: " + n; return n; }
foreach (n in [1, 3]) {
    try { print(risky(n)); } catch (err) { print("error " + err); }
}
try {
    try { throw "inner"; } catch (e) { throw "outer(" + e + ")"; }
} catch (e) { print(e); }
throw "uncaught at the end";
