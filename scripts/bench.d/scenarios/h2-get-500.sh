# shellcheck shell=bash
# Scenario: h2-get's proxied GET with 500 streams in flight (50 connections x 10
# streams, whatever -c says) against an upstream keep-alive pool of 64 connections
# per worker for every contender (nginx `keepalive 64`, HAProxy `pool-max-conn 64`,
# corsgate `keepalive = 64`): more requests than pooled connections, so how a server
# queues or opens upstream connections shows (in p50, and in the new upstream
# connections per run under the table).
# shellcheck disable=SC2034  # read by scripts/bench
# shellcheck source=scripts/bench.d/scenarios/h2-get.sh
. "$BENCHD/scenarios/h2-get.sh"
SC_H2_CONNS=50
SC_H2_STREAMS=10
SC_KEEPALIVE=64
SC_DESC="proxied GET over HTTP/2, 500 streams in flight (50 connections x 10) against a 64-connection upstream keep-alive pool"
