# shellcheck shell=bash disable=SC2034
# kind "nginxlua": nginx with Debian's lua-nginx-module (libnginx-mod-http-lua, on
# OpenResty's LuaJIT) deciding origins in Lua with a lua_shared_dict cache
# (conf/nginxlua.conf). Sourced by scripts/bench.

kind_nginxlua_check() {
  command -v nginx >/dev/null || { echo "nginx not installed"; return 1; }
  [[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] || { echo "libnginx-mod-http-lua not installed"; return 1; }
}
kind_nginxlua_version() { echo "$(nginx -v 2>&1 | sed 's/^nginx version: //') + lua-nginx-module $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null)"; }

kind_nginxlua_start() {
  local id=$1 workers=$2 port=$3 dir=$4
  render "$BENCHD/conf/nginxlua.conf" "$dir/nginx.conf" PORT "$port" WORKERS "$workers" \
    UPPORT "$UPSTREAM_PORT" KEEPALIVE "$KEEPALIVE" PREFIX "$dir" USER "$(nginx_user_line)"
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/configtest.log" 2>&1 ||
    { cat "$dir/configtest.log"; return 1; }
  start_server "$SERVER_CPUS" "$dir" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
}
