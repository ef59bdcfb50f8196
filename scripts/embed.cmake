# Turns a file into a C array (NAME, NAME_len), so the binary needs no file at
# run time: the Lua prelude, the built-in demo config.
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
if(NOT NAME)
  message(FATAL_ERROR "embed.cmake: NAME is required")
endif()
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "#include <stddef.h>\nconst char ${NAME}[] = {${body}0};\nconst size_t ${NAME}_len = ${len};\n")
