# shellcheck shell=bash
# Scenario: a new origin on every request, decided by a Lua plugin in memory.
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="preflight with a new origin on every request through a Lua plugin (cold cache, in-memory decision)"
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://t1.bench.test" "Access-Control-Request-Method: PUT" "Access-Control-Request-Headers: content-type")
SC_EXPECT_STATUS=204
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("access-control-allow-origin: https://t1.bench.test")
SC_CORSGATE_ROUTE='cors = { plugin = "bench_tenants", methods = { "GET", "PUT", "POST", "DELETE" }, headers = { "Content-Type" }, max_age = 600 },'
SC_CONTENDERS="corsgate-1 nginxlua-1 limit-1 corsgate-2 nginxlua-2"
SC_BASELINE=nginxlua
SC_TARGET=2.5
# the second bar: >= 0.6x corsgate's warm-cache figure (same run, other scenario)
SC_COMPARE="pf-plugin-warm=0.6"
SC_WRK_LUA=new-origin.lua
SC_OPEN_LOOP=0                # each request differs: the open-loop client sends one fixed request
