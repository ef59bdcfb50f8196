# shellcheck shell=bash
# Scenario: CORS preflight from an origin that is not allowed.
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="preflight from a refused origin: 403 without CORS headers"
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://evil.example" "Access-Control-Request-Method: PUT")
SC_EXPECT_STATUS=403
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("vary: Origin, Access-Control-Request-Method")
SC_NGINX=cors
SC_CORSGATE_ROUTE_FILE=corsgate-cors.lua
SC_CONTENDERS="corsgate-1 nginx-1 limit-1 haproxy-1 corsgate-2 nginx-2 haproxy-2"
SC_TARGET=1.0
