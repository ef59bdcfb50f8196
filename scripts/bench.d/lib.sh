# Helpers for scripts/bench: templates, ports, starting/stopping servers,
# shellcheck shell=bash
# per-process-tree CPU time and peak RSS from /proc. Sourced, not run.

shopt -u patsub_replacement 2>/dev/null || true   # '&' in a replacement stays literal

SERVER_PIDS=()   # every server this run started (root pids), stopped on exit

# render TEMPLATE OUT NAME VALUE...: copy TEMPLATE to OUT replacing @NAME@ with VALUE.
render() {
  local tpl=$1 out=$2 text; shift 2
  text=$(<"$tpl")
  while (($#)); do text=${text//@$1@/$2}; shift 2; done
  if [[ $text =~ @[A-Z_]+@ ]]; then
    echo "render: $tpl: unfilled ${BASH_REMATCH[0]}" >&2; return 1
  fi
  printf '%s\n' "$text" >"$out"
}

# port_in_use PORT: any TCP socket (v4/v6, any state) with that local or remote port.
port_in_use() {
  local hex; hex=$(printf ':%04X ' "$1")
  grep -qs -- "$hex" /proc/net/tcp /proc/net/tcp6
}
USED_PORTS=" "
# free_port: a random loopback port nobody is using (and not handed out before),
# below the kernel's ephemeral range: a server that churns connections (or another
# test on the machine) fills that range with client ports and TIME_WAITs, and a
# listener there can then fail to bind.
free_port() {
  local p i lo=10000 hi eph
  read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph=32768
  hi=$((eph - 1))
  ((hi - lo < 2000)) && lo=20000 hi=29999
  for ((i = 0; i < 200; i++)); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    [[ $USED_PORTS == *" $p "* ]] && continue
    port_in_use "$p" && continue
    USED_PORTS+="$p "; echo "$p"; return 0
  done
  echo "no free port found" >&2; return 1
}

# start_server CPUS DIR CMD...: start CMD in the background (pinned to CPUS if
# set), output to DIR/server.log; sets START_PID and records it for cleanup.
start_server() {
  local cpus=$1 dir=$2; shift 2
  if [[ -n $cpus ]]; then
    taskset -c "$cpus" "$@" >"$dir/server.log" 2>&1 </dev/null &
  else
    "$@" >"$dir/server.log" 2>&1 </dev/null &
  fi
  START_PID=$!
  SERVER_PIDS+=("$START_PID")
}

# wait_port PID PORT [SECONDS]: until PORT accepts a TCP connection; fails if PID dies.
wait_port() {
  local pid=$1 port=$2 secs=${3:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# tree_stat ROOT: "TICKS PID..." — utime+stime (clock ticks) summed over ROOT
# and all its descendants (a process's /proc/PID/stat already sums its threads).
tree_stat() {
  local root=$1
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$root" '
    {
      # comm (field 2) may hold spaces or parentheses: cut at the last ")".
      rest = $0; while ((j = index(rest, ")")) > 0) rest = substr(rest, j + 1)
      n = split(rest, f, " ")
      pid = $1 + 0; ppid[pid] = f[2] + 0; ticks[pid] = f[12] + f[13]
    }
    END {
      in_tree[root] = 1; changed = 1
      while (changed) {
        changed = 0
        for (p in ppid) if (!(p in in_tree) && (ppid[p] in in_tree)) { in_tree[p] = 1; changed = 1 }
      }
      sum = 0; list = ""
      for (p in in_tree) if (p in ticks) { sum += ticks[p]; list = list " " p }
      print sum list
    }'
}

# tree_status_kb FIELD PID...: a /proc/PID/status field in kB (VmHWM, VmRSS),
# summed over the given processes.
tree_status_kb() {
  local field=$1 p sum=0 v
  shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null) || v=
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# tree_hwm_kb PID...: peak resident set (VmHWM), summed.
tree_hwm_kb() { tree_status_kb VmHWM "$@"; }

# tree_rss_kb PID...: current resident memory (VmRSS), summed.
tree_rss_kb() { tree_status_kb VmRSS "$@"; }

# cpu_jiffies: "BUSY TOTAL STEAL" for the whole machine from /proc/stat.
cpu_jiffies() {
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; idle = $5 + $6
                 print t - idle, t, $9; exit }' /proc/stat
}

# wait_quiet: before a measured run (nothing of the bench is loaded then), waits
# up to 10 s for the machine to be idle, under 0.2 cores busy over half a second.
# Sets QUIET_WAITED (seconds) and QUIET_BUSY (cores busy in the last sample).
wait_quiet() {
  local b0 t0 b1 t1 i
  QUIET_WAITED=0 QUIET_BUSY=0
  for ((i = 0; i < 20; i++)); do
    read -r b0 t0 _ <<<"$(cpu_jiffies)"
    sleep 0.5
    read -r b1 t1 _ <<<"$(cpu_jiffies)"
    QUIET_BUSY=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v n="$NPROC" 'BEGIN { printf "%.2f", (t > 0 ? b / t * n : 0) }')
    awk -v x="$QUIET_BUSY" 'BEGIN { exit !(x < 0.2) }' && return 0
    QUIET_WAITED=$(awk -v i="$i" 'BEGIN { print (i + 1) / 2 }')
  done
  return 1
}

# stop_tree ROOT: SIGTERM the server, wait up to 5 s, then SIGKILL what is left
# of the tree it had (its own processes only, by pid).
stop_tree() {
  local root=$1 pids i p
  kill -0 "$root" 2>/dev/null || { wait "$root" 2>/dev/null; return 0; }
  read -r _ pids <<<"$(tree_stat "$root")"
  kill -TERM "$root" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$root" 2>/dev/null || break
    sleep 0.05
  done
  for p in $root $pids; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  wait "$root" 2>/dev/null
  return 0
}

# median: of the numbers on stdin (one a line).
median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# build_llhttp_tool SRC BIN [LIBS...]: a bench helper program in C with Debian's llhttp
# sources (as CMakeLists.txt compiles them), rebuilt when SRC is newer than BIN.
build_llhttp_tool() {
  local src=$1 bin=$2
  shift 2
  [[ -x $bin && ! $src -nt $bin ]] && return 0
  mkdir -p "$(dirname "$bin")"
  cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -I/usr/share/include/llhttp \
    "$src" /usr/share/llhttp/*.c "$@" -o "$bin" 2>&1 || { echo "cannot build $src"; return 1; }
}
