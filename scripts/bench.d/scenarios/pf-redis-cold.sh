# shellcheck shell=bash
# Scenario: a new origin on (nearly) every request, decided by tenant_redis:
# one HGETALL per decision on the worker's Redis pool (1,000,000 origins
# preloaded; 10,000 cache entries per worker, so a repeat is a miss too).
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="preflight, a new origin every request, decided by tenant_redis (one Redis round trip per decision)"
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://t42.redis.bench.test" "Access-Control-Request-Method: PUT" "Access-Control-Request-Headers: content-type")
SC_EXPECT_STATUS=204
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("access-control-allow-origin: https://t42.redis.bench.test")
SC_CORSGATE_ROUTE='cors = { plugin = "tenant_redis", methods = { "GET", "PUT", "POST", "DELETE" }, headers = { "Content-Type" }, max_age = 600 },'
SC_CORSGATE_TOP='redis = { address = "@REDIS@", pool_size = 2 }, cache = { max_entries = 10000 },'
SC_NEEDS_REDIS=1
SC_CONTENDERS="corsgate-1 corsgate-2"
SC_COMPARE="pf-redis-warm pf-plugin-cold"
SC_WRK_LUA=redis-origin.lua
SC_TARGET=""
SC_OPEN_LOOP=0                # each request differs: the open-loop client sends one fixed request
