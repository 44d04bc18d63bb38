// line comment
/* block
   comment */
# hash comment
local a = 0x1F, b = 017, c = 'A', d = 1.5e2, e = 2.5, f = -3;
print(a); print(b); print(c); print(d); print(e); print(f);
print("tab\tnew\\n \"quoted\" \x41");
print(@"verbatim \n ""quote""");
print(0.1); print(1e-7); print(123456789.0); print(16777217.0);
print(typeof a + " " + typeof d + " " + typeof "s" + " " + typeof null + " " + typeof true);
