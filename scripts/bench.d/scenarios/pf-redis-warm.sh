# shellcheck shell=bash
# Scenario: tenant_redis, warm cache: one origin, decided once through Redis.
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="preflight decided by tenant_redis, warm cache (the decision cached after one Redis round trip)"
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://t42.redis.bench.test" "Access-Control-Request-Method: PUT" "Access-Control-Request-Headers: content-type")
SC_EXPECT_STATUS=204
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("access-control-allow-origin: https://t42.redis.bench.test")
SC_CORSGATE_ROUTE='cors = { plugin = "tenant_redis", methods = { "GET", "PUT", "POST", "DELETE" }, headers = { "Content-Type" }, max_age = 600 },'
SC_CORSGATE_TOP='redis = { address = "@REDIS@", pool_size = 2 },'
SC_NEEDS_REDIS=1
SC_CONTENDERS="corsgate-1 corsgate-2"
SC_COMPARE="pf-plugin-warm pf-allowed"
SC_TARGET=""
