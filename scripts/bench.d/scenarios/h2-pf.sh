# shellcheck shell=bash
# Scenario: CORS preflights over HTTP/2 (TLS 1.3, ALPN h2, the same ECDSA P-256
# certificate for every contender), h2load with 50 connections x 10 concurrent
# streams; after the runs, the memory each server holds per idle HTTP/2 connection
# (9,000 held, each after its SETTINGS exchange and one preflight: tlsclient -h2).
# shellcheck disable=SC2034  # read by scripts/bench
# the request and its expected answer: pf-allowed's, over HTTP/2 (h2load sends the
# method as the :method pseudo-header)
# shellcheck source=scripts/bench.d/scenarios/pf-allowed.sh
. "$BENCHD/scenarios/pf-allowed.sh"
SC_HTTP2=1
SC_H2_STREAMS=10
SC_DESC="preflight over HTTP/2 (TLS 1.3, ALPN h2; 50 connections x 10 streams): corsgate's static policy vs nginx's map and HAProxy's list"
# idle connections kept 300 s, as the other contenders keep theirs (nginx's
# keepalive_timeout, HAProxy's timeout http-keep-alive): the 9,000 are all still
# open when their memory is read, however long the machine takes to open them
SC_CORSGATE_TOP="limits = { max_connections = 20000 }, timeouts = { idle = 300 },"
SC_MAXCONN=20000
SC_IDLE_CONNS=9000
SC_IDLE_TARGET_KB=16
SC_CONTENDERS="corsgate-1 nginx-1 haproxy-1"
SC_VS_TARGET="haproxy-1=1.0"
SC_TARGET=1.0
