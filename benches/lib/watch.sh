# Shared by the bench scripts that watch a running `squall ... --http 127.0.0.1:0` from
# outside. Source it: `. benches/lib/watch.sh`.

# dashboard_addr LOG: waits up to 10 s for the dashboard's address in the process's stderr
# (LOG) and prints it (http://127.0.0.1:PORT); fails with the log if it never appears.
dashboard_addr() {
  local addr=""
  for _ in $(seq 100); do
    addr=$(grep -o 'http://127.0.0.1:[0-9]*' "$1" || true)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  echo "no dashboard address in $1" >&2
  cat "$1" >&2
  return 1
}

# watch_process PID ADDR CSV COLUMNS JQ: one row a second in CSV until PID exits:
# t_s,rss_kib,fds,threads (from /proc/PID), then COLUMNS (comma-separated names) filled by
# the jq program JQ applied to ADDR/api/metrics (it must print the values joined by
# commas), then metrics_ok (1 when /api/metrics and /metrics both answered). Metrics columns
# are empty when /api/metrics did not answer. The grid is whole seconds since the start, so
# a slow scrape does not shift it.
watch_process() {
  local pid=$1 addr=$2 csv=$3 columns=$4 jqprog=$5
  local empty t0 i=0 rss threads fds m ok t
  empty=$(echo "$columns" | tr -cd ,)
  echo "t_s,rss_kib,fds,threads,$columns,metrics_ok" >"$csv"
  t0=$(date +%s.%N)
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$( (find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null || true) | wc -l)
    [ -n "$rss" ] || break
    m=$(curl -sf --max-time 2 "$addr/api/metrics" | jq -r "$jqprog" 2>/dev/null || true)
    ok=0
    if [ -n "$m" ] && curl -sf --max-time 2 -o /dev/null "$addr/metrics"; then ok=1; fi
    [ -n "$m" ] || m=$empty
    t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "$t,$rss,$fds,$threads,$m,$ok" >>"$csv"
    i=$((i + 1))
    sleep "$(awk -v a="$t0" -v b="$(date +%s.%N)" -v i="$i" 'BEGIN { s = a + i - b; printf "%.3f", (s > 0 ? s : 0) }')"
  done
}
