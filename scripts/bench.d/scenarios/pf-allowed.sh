# shellcheck shell=bash
# Scenario: CORS preflight from an allowed origin (static policy, 100 origins).
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="preflight from an allowed origin: corsgate's static policy vs nginx's map of 100 origins"
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://o57.bench.test" "Access-Control-Request-Method: PUT" "Access-Control-Request-Headers: content-type")
SC_EXPECT_STATUS=204
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("access-control-allow-origin: https://o57.bench.test" "access-control-allow-methods: GET, PUT, POST, DELETE" "access-control-max-age: 600" "vary: Origin, Access-Control-Request-Method")
SC_NGINX=cors
SC_CORSGATE_ROUTE_FILE=corsgate-cors.lua
SC_CONTENDERS="corsgate-1 nginx-1 limit-1 haproxy-1 corsgate-2 nginx-2 haproxy-2"
SC_TARGET=1.0
