# shellcheck shell=bash
# Scenario: CORS preflights over kept-alive HTTPS connections (TLS 1.3, the same
# ECDSA P-256 certificate for every contender), and after the runs the memory each
# server holds per idle TLS keep-alive connection (9,000 held: HAProxy needs two
# descriptors a connection, and the machine allows 20,000 a process).
# shellcheck disable=SC2034  # read by scripts/bench
# the request and its expected answer: pf-allowed's, over TLS
# shellcheck source=scripts/bench.d/scenarios/pf-allowed.sh
. "$BENCHD/scenarios/pf-allowed.sh"
SC_TLS=1
SC_DESC="preflight over kept-alive HTTPS (TLS 1.3, ECDSA P-256): corsgate's static policy vs nginx's map and HAProxy's list"
SC_CORSGATE_TOP="limits = { max_connections = 20000 },"
SC_MAXCONN=20000
SC_IDLE_CONNS=9000
SC_CONTENDERS="corsgate-1 nginx-1 haproxy-1"
SC_VS_TARGET="haproxy-1=1.0"
SC_TARGET=1.0
