# shellcheck shell=bash disable=SC2034
# kind "cgbefore": another corsgate binary (CORSGATE_BIN_BEFORE: an earlier
# build) with the same config as "corsgate", so a change's cost is measured in
# the same interleaved runs as the change itself ("before and after, in one
# run"). Only where CORSGATE_BIN_BEFORE is set. Sourced by scripts/bench.

kind_cgbefore_applies() { [[ -n ${CORSGATE_BIN_BEFORE:-} ]]; }
kind_cgbefore_check() {
  [[ -x ${CORSGATE_BIN_BEFORE:-} ]] || { echo "CORSGATE_BIN_BEFORE=${CORSGATE_BIN_BEFORE:-} is not an executable"; return 1; }
}
kind_cgbefore_version() {
  local v
  v=$("$CORSGATE_BIN_BEFORE" --version 2>/dev/null | head -n1) || v=
  echo "${v:-?} ($CORSGATE_BIN_BEFORE, built $(date -u -r "$CORSGATE_BIN_BEFORE" '+%Y-%m-%d %H:%M UTC'))"
}

kind_cgbefore_start() {
  CORSGATE_BIN=$CORSGATE_BIN_BEFORE kind_corsgate_start "$@"
}
