# shellcheck shell=bash disable=SC2034
# kind "haproxy": Debian's HAProxy as a reverse proxy, WORKERS threads in one process:
# conf/haproxy.cfg with the scenario's conf/haproxy-$SC_NGINX.frontend.cfg (the same
# part nginx gets from conf/nginx-$SC_NGINX.*). Sourced by scripts/bench.

kind_haproxy_check() {
  command -v haproxy >/dev/null || { echo "haproxy not installed (scripts/setup installs it)"; return 1; }
}
kind_haproxy_version() { haproxy -v 2>/dev/null | sed -n '1s/^HAProxy version \([^ ]*\).*/HAProxy \1/p'; }

# HAProxy wants two descriptors a connection (and refuses to start without
# them): its maxconn stays within the open-files limit this machine allows.
haproxy_maxconn() {
  local want=${SC_MAXCONN:-4096} fit
  fit=$((($(ulimit -Hn) - 200) / 2))
  echo $((want < fit ? want : fit))
}

kind_haproxy_start() {
  local id=$1 workers=$2 port=$3 dir=$4
  local part="$BENCHD/conf/haproxy-${SC_NGINX:-proxy}.frontend.cfg"
  [[ -f $part ]] || { echo "missing $part"; return 1; }
  # FRONTEND first: the part itself names CONF
  local ssl="" proto=http
  # TLS scenarios: the bench's certificate and key in one file, as HAProxy takes them
  # (ALPN h2 too in the HTTP/2 scenarios)
  local alpn=http/1.1
  ((${SC_HTTP2:-0})) && alpn=h2,http/1.1
  ((${SC_TLS:-0})) && ssl="ssl crt $TLS_PEM alpn $alpn ssl-min-ver TLSv1.2" proto=https
  render "$BENCHD/conf/haproxy.cfg" "$dir/haproxy.cfg" FRONTEND "$(<"$part")" CONF "$BENCHD/conf" \
    PORT "$port" WORKERS "$workers" UPPORT "$UPSTREAM_PORT" KEEPALIVE "$KEEPALIVE" SSL "$ssl" PROTO "$proto" \
    MAXCONN "$(haproxy_maxconn)"
  haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/configtest.log" 2>&1 || { cat "$dir/configtest.log"; return 1; }
  start_server "$SERVER_CPUS" "$dir" haproxy -db -f "$dir/haproxy.cfg"
}
