# shellcheck shell=bash
# Scenario: proxied GET with a small body over keep-alive.
# Sourced by scripts/bench; only sets SC_* variables.
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="proxied GET, ~100 B JSON body, keep-alive client->server->upstream"
SC_METHOD=GET
SC_PATH=/api/items
SC_HEADERS=()              # extra request headers, e.g. ("Origin: https://a.example")
SC_EXPECT_STATUS=200
SC_EXPECT_BODY=upstream    # "upstream": body must equal the upstream's body byte for byte
SC_NGINX=proxy             # nginx contender: conf/nginx-<this>.location.conf (+ .http.conf if any)
SC_CORSGATE_ROUTE=''       # extra Lua fields for the corsgate route (e.g. 'cors = {...},')
SC_CONTENDERS=''           # empty = every contender in scripts/bench.d/contenders
SC_TARGET=1.0              # the bar for proxied requests: not below nginx
SC_WRK_LUA=''              # optional wrk script in scripts/bench.d/wrk/ (request shape only)
