# shellcheck shell=bash disable=SC2034
# kind "nginx": stock Debian nginx as a reverse proxy: conf/nginx.conf with the
# scenario's conf/nginx-$SC_NGINX.location.conf (in server{}) and, if it exists,
# conf/nginx-$SC_NGINX.http.conf (in http{}, for a map and the like). Sourced by scripts/bench.

kind_nginx_check() {   # prints why it cannot run, returns non-zero if so
  command -v nginx >/dev/null || { echo "nginx not installed"; return 1; }
}
kind_nginx_version() { nginx -v 2>&1 | sed 's/^nginx version: //'; }

# kind_<kind>_start ID WORKERS PORT DIR: write config into DIR, start the
# server in the foreground-of-its-own (no daemon) via start_server.
kind_nginx_start() {
  local id=$1 workers=$2 port=$3 dir=$4
  local base="$BENCHD/conf/nginx-${SC_NGINX:-proxy}"
  [[ -f $base.location.conf ]] || { echo "missing $base.location.conf"; return 1; }
  cp "$base.location.conf" "$dir/location.conf"
  if [[ -f $base.http.conf ]]; then cp "$base.http.conf" "$dir/http.conf"; else : >"$dir/http.conf"; fi
  local ssl="" tls=""
  # TLS scenarios: the bench's certificate, TLS 1.2 and 1.3, the server's cipher
  # order, tickets (nginx's defaults otherwise, as corsgate's are)
  if ((${SC_TLS:-0})); then
    ssl="ssl "
    tls="ssl_certificate $TLS_CERT; ssl_certificate_key $TLS_KEY; ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on;"
    # HTTP/2 scenarios: ALPN h2 (http/1.1 too), as `listen ... ssl http2` up to nginx
    # 1.25.0 (Debian 12 has 1.22), the `http2 on;` directive from 1.25.1
    if ((${SC_HTTP2:-0})); then
      if nginx_has_http2_directive; then tls+=" http2 on;"; else ssl="ssl http2 "; fi
    fi
  fi
  render "$BENCHD/conf/nginx.conf" "$dir/nginx.conf" PORT "$port" WORKERS "$workers" \
    UPPORT "$UPSTREAM_PORT" KEEPALIVE "$KEEPALIVE" PREFIX "$dir" USER "$(nginx_user_line)" \
    SSL "$ssl" TLS "$tls" MAXCONN "${SC_MAXCONN:-4096}"
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/configtest.log" 2>&1 ||
    { cat "$dir/configtest.log"; return 1; }
  start_server "$SERVER_CPUS" "$dir" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
}

# nginx_has_http2_directive: nginx >= 1.25.1 (`http2 on;` rather than a listen parameter)
nginx_has_http2_directive() {
  local v
  v=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
  [[ $(printf '%s\n' "$v" 1.25.1 | sort -V | head -n1) == 1.25.1 ]]
}

nginx_user_line() { if [[ $EUID -eq 0 ]]; then echo "user root root;"; fi; }
