# shellcheck shell=bash
# Scenario: proxied POST with a 64 KB body.
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="proxied POST with a 64 KB body"
SC_METHOD=POST
SC_PATH=/api/items
SC_HEADERS=("Content-Type: application/octet-stream")
SC_EXPECT_STATUS=200
SC_EXPECT_BODY=upstream
SC_PROBE_BODY_BYTES=65536
SC_WRK_LUA=body-64k.lua
SC_CONTENDERS="corsgate-1 nginx-1 haproxy-1 corsgate-2 nginx-2 haproxy-2"
SC_TARGET=1.0
