# shellcheck shell=bash
# Scenario: proxied GET from an allowed origin, decorated.
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="proxied GET with an allowed Origin: decorated response (static policy vs nginx map)"
SC_METHOD=GET
SC_PATH=/api/items
SC_HEADERS=("Origin: https://o57.bench.test")
SC_EXPECT_STATUS=200
SC_EXPECT_BODY=upstream
SC_EXPECT_HEADERS=("access-control-allow-origin: https://o57.bench.test" "vary: Origin")
SC_NGINX=cors
SC_CORSGATE_ROUTE_FILE=corsgate-cors.lua
SC_CONTENDERS="corsgate-1 nginx-1 haproxy-1 corsgate-2 nginx-2 haproxy-2"
SC_TARGET=1.0
