# shellcheck shell=bash disable=SC2034
# kind "limit": scripts/bench.d/limit.c, one libuv loop answering a fixed 204 to
# every request (no routing, no CORS): the most one loop does on this machine.
# Built here with the llhttp sources CMakeLists.txt uses. Sourced by scripts/bench.

LIMIT_BIN=$ROOT/build-bench/limit

kind_limit_check() { build_llhttp_tool "$BENCHD/limit.c" "$LIMIT_BIN" -luv; }
kind_limit_version() { echo "scripts/bench.d/limit.c (libuv $(pkg-config --modversion libuv 2>/dev/null), fixed 204)"; }

kind_limit_start() {
  local id=$1 workers=$2 port=$3 dir=$4
  start_server "$SERVER_CPUS" "$dir" "$LIMIT_BIN" "$port"
}
