# Turns the Lua prelude into a C array, so the binary needs no file at run time.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "#include <stddef.h>\nconst char cg_lua_prelude[] = {${body}0};\nconst size_t cg_lua_prelude_len = ${len};\n")
