# shellcheck shell=bash
# Scenario: a full TLS 1.3 handshake per request (no resumption): a new connection,
# one preflight, closed. tlsclient makes the connections (wrk's TLS connect stalls
# at this rate).
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="full TLS 1.3 handshake (ECDSA P-256, X25519) and one preflight per connection"
SC_TLS=1
SC_CLIENT=tlsclient
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://o57.bench.test" "Access-Control-Request-Method: PUT" "Access-Control-Request-Headers: content-type")
SC_EXPECT_STATUS=204
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("access-control-allow-origin: https://o57.bench.test" "access-control-allow-methods: GET, PUT, POST, DELETE")
SC_NGINX=cors
SC_CORSGATE_ROUTE_FILE=corsgate-cors.lua
SC_CONTENDERS="corsgate-1 nginx-1 haproxy-1"
SC_TARGET=1.0
