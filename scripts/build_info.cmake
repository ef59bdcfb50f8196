# Writes build_info.c: the version and the commit the binary is built from,
# read at build time (not configure time), and rewritten only when it changes
# so an unchanged tree does not relink.
#   cmake -DSRC=source-dir -DOUT=build_info.c -DVERSION=x.y.z -P build_info.cmake
#   (-DCOMMIT=hash names it for a tree that is no checkout: scripts/package's export)
set(commit "unknown")
find_program(GIT git)
if(COMMIT)
  set(commit "${COMMIT}")
elseif(GIT AND EXISTS ${SRC}/.git)
  execute_process(COMMAND ${GIT} -C ${SRC} rev-parse --short=12 HEAD OUTPUT_VARIABLE c
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND c)
    set(commit "${c}")
    execute_process(COMMAND ${GIT} --no-optional-locks -C ${SRC} status --porcelain --untracked-files=no OUTPUT_VARIABLE dirty
                    ERROR_QUIET)
    if(dirty)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
set(text "const char cg_build_version[] = \"${VERSION}\";\nconst char cg_build_commit[] = \"${commit}\";\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
