# shellcheck shell=bash
# Scenario: proxied GET over HTTP/2 (TLS 1.3, ALPN h2), h2load with 50 connections x
# 10 concurrent streams; relayed to the shared upstream over HTTP/1.1 with keep-alive,
# the pool sized on the 500 requests in flight (max(32, connections x streams)) so it
# measures relaying, not upstream connection set-up (h2-get-500 shrinks it to 64).
# shellcheck disable=SC2034  # read by scripts/bench
# the request and its expected answer: get-origin's, over HTTP/2
# shellcheck source=scripts/bench.d/scenarios/get-origin.sh
. "$BENCHD/scenarios/get-origin.sh"
SC_HTTP2=1
SC_H2_STREAMS=10
SC_DESC="proxied GET over HTTP/2 (TLS 1.3, ALPN h2; 50 connections x 10 streams) with an allowed Origin: decorated response"
SC_CONTENDERS="corsgate-1 nginx-1 haproxy-1"
SC_VS_TARGET="haproxy-1=1.0"
SC_TARGET=1.0
