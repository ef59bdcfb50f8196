# shellcheck shell=bash disable=SC2034
# kind "corsgate": the gateway under test (conf/corsgate.lua). Sourced by scripts/bench.
# CORSGATE_BIN overrides the binary (default: build/corsgate in the repo).

kind_corsgate_check() {
  local bin=${CORSGATE_BIN:-$ROOT/build/corsgate}
  [[ -x $bin ]] || {
    echo "$bin not built (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2, or scripts/bench --build)"
    return 1
  }
}
kind_corsgate_version() {
  local bin=${CORSGATE_BIN:-$ROOT/build/corsgate} v
  v=$("$bin" --version 2>/dev/null | head -n1) || v=
  # The binary may be older than the tree: say which one and when it was built.
  echo "${v:-?} (${bin#"$ROOT"/}, $(cmake_build_type), built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC'); tree at git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?))"
}
cmake_build_type() {
  local c="${CORSGATE_BIN:+$(dirname "$CORSGATE_BIN")}"; c=${c:-$ROOT/build}/CMakeCache.txt
  sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$c" 2>/dev/null | grep . || echo "build type ?"
}

kind_corsgate_start() {
  local id=$1 workers=$2 port=$3 dir=$4
  local bin=${CORSGATE_BIN:-$ROOT/build/corsgate}
  local top=${SC_CORSGATE_TOP:-}
  top=${top//@REDIS@/127.0.0.1:${REDIS_PORT:-0}}
  local listen="\"127.0.0.1:$port\""
  # TLS scenarios: the bench's certificate, TLS 1.2+ (corsgate's fixed policy)
  ((${SC_TLS:-0})) && listen="{ { address = \"127.0.0.1:$port\", tls = { certificates = { { cert = \"$TLS_CERT\", key = \"$TLS_KEY\" } } } } }"
  render "$BENCHD/conf/corsgate.lua" "$dir/corsgate.lua" LISTEN "$listen" WORKERS "$workers" \
    UPPORT "$UPSTREAM_PORT" KEEPALIVE "$KEEPALIVE" ROUTE_EXTRA "${SC_CORSGATE_ROUTE:-}" PLUGINS "$BENCHD/plugins" \
    TOP_EXTRA "$top"
  start_server "$SERVER_CPUS" "$dir" "$bin" run -c "$dir/corsgate.lua"
}
