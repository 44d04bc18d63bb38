// Every literal form.
local ints = [0, 42, 0x1F, 0xFFFFFFFF, 017, 'a', '\n', '\x41', -2147483648];
local floats = [1.5, 3., 1e3, 2.5E-4, -0.5];
local strings = ["plain", "esc \t\n\\\"\'\0 \x41", @"verbatim ""quoted""
second line", ""];
local others = [true, false, null];
# a hash comment
/* a block comment
   over two lines */ local after = 1;
