# shellcheck shell=bash
# Scenario: preflight decided by a Lua plugin, the decision cached (one origin).
# shellcheck disable=SC2034  # read by scripts/bench
SC_DESC="preflight through a Lua plugin, warm cache: corsgate vs nginx + lua (lua_shared_dict)"
SC_METHOD=OPTIONS
SC_PATH=/api/items
SC_HEADERS=("Origin: https://t42.bench.test" "Access-Control-Request-Method: PUT" "Access-Control-Request-Headers: content-type")
SC_EXPECT_STATUS=204
SC_EXPECT_BODY=none
SC_EXPECT_HEADERS=("access-control-allow-origin: https://t42.bench.test" "access-control-allow-methods: GET, PUT, POST, DELETE" "vary: Origin, Access-Control-Request-Method")
SC_CORSGATE_ROUTE='cors = { plugin = "bench_tenants", methods = { "GET", "PUT", "POST", "DELETE" }, headers = { "Content-Type" }, max_age = 600 },'
SC_CONTENDERS="corsgate-1 nginxlua-1 limit-1 cgstatic-1 corsgate-2 nginxlua-2"
# cgstatic: corsgate answering the same preflight from pf-allowed's static policy of
# 100 origins, t42 in the place of o42; the target: the cached plugin decision
# at >= 0.95x of that, measured in the same interleaved runs
SC_CGSTATIC_ROUTE=$(grep -v '^--' "$BENCHD/conf/corsgate-cors.lua" | sed 's#"https://o42\.bench\.test"#"https://t42.bench.test"#')
SC_VS_TARGET="cgstatic-1=0.95"
SC_BASELINE=nginxlua
SC_TARGET=1.3
