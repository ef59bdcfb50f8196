# shellcheck shell=bash disable=SC2034
# kind "cgstatic": corsgate again, with the static policy a scenario gives in
# SC_CGSTATIC_ROUTE instead of its SC_CORSGATE_ROUTE. The plugin scenario runs it
# next to corsgate so "a plugin decision from the cache costs about what a static
# one does" is measured in the same interleaved runs rather than across scenarios
# minutes apart (the machine drifts more than the difference). Sourced by scripts/bench.

kind_cgstatic_check() { kind_corsgate_check; }
kind_cgstatic_version() { echo "the corsgate above with a static policy"; }
kind_cgstatic_applies() { [[ -n ${SC_CGSTATIC_ROUTE:-} ]]; } # only where a scenario gives its policy

kind_cgstatic_start() {
  SC_CORSGATE_ROUTE=$SC_CGSTATIC_ROUTE kind_corsgate_start "$@"
}
