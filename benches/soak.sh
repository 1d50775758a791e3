#!/usr/bin/env bash
# Soak: the trending-hashtags job (event mode, generator) at half of its maximum rate for
# DURATION (default 30m) with `--http` on. Every second: /api/metrics and /metrics are
# fetched, and the process's RSS, open file descriptors and threads (from /proc/PID) are
# written with the metrics to $OUT/soak.csv. At the end benches/soak-check.awk judges the
# run (see there and docs/reliability.md) and the script exits non-zero on FAIL:
#  - RSS flat: mean RSS of the last third within RSS_TOL % (10) of the mean over [D/6, D/3)
#    (minutes 20–30 against minutes 5–10 of a 30-minute run);
#  - no failed tuples: spouts' failed and timed out, and bolts' failed, all 0;
#  - no growth in pending trees: in the last third, the 95th percentile of the spouts'
#    pending trees is at most the first third's maximum plus PENDING_TOL % (10) of it, or
#    plus PENDING_SLACK trees (64) if that is more;
#  - fd count flat: the last third's maximum at most the first third's plus FD_SLACK (2).
#
#   bash benches/soak.sh [DURATION=30m] [RATE=half]
#   RATE: tweets/s offered (all generator tasks together), or `half` (measure the maximum
#   with a 10 s `squall bench` run first and offer half of it).
#   SQUALL=path/to/squall OUT=dir NICE=10 bash benches/soak.sh 10m 500000
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib/watch.sh
DURATION=${1:-30m}
RATE=${2:-half}
FILE=${FILE:-topologies/trending-hashtags.toml}
OUT=${OUT:-target/soak}
NICE=${NICE:-0}
if [ -z "${SQUALL:-}" ]; then cargo build --release --quiet; fi
BIN=${SQUALL:-${CARGO_TARGET_DIR:-target}/release/squall}
mkdir -p "$OUT"

secs() { # a duration like 30m, 90s, 2h, 45 → seconds
  case "$1" in
    *h) echo $(( ${1%h} * 3600 ));; *m) echo $(( ${1%m} * 60 ));;
    *s) echo "${1%s}";; *) echo "$1";;
  esac
}
D=$(secs "$DURATION")

if [ "$RATE" = half ]; then
  nice -n "$NICE" "$BIN" bench "$FILE" --modes event --rates max --duration 10s --stall-probe 0s \
    --out "$OUT/max" >/dev/null 2>"$OUT/max.log" || { cat "$OUT/max.log" >&2; exit 1; }
  max=$(jq '.points[0].achieved_tps | floor' "$OUT/max/bench.json")
  RATE=$(( max / 2 ))
  echo "maximum: $max tweets/s; offering half: $RATE tweets/s"
fi

args=(topology run "$FILE" --duration "$DURATION" --http 127.0.0.1:0 --quiet
  --report "$OUT/report.json" --set "spouts.source.rate=$RATE" --set spouts.source.limit=0
  --set bolts.sink.quiet=true)
nice -n "$NICE" "$BIN" "${args[@]}" >/dev/null 2>"$OUT/run.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
addr=$(dashboard_addr "$OUT/run.log")
echo "soak: $FILE, $RATE tweets/s, $DURATION, pid $pid, $addr, $(nproc) CPUs, $(date -u +%FT%TZ)"

csv="$OUT/soak.csv"
watch_process "$pid" "$addr" "$csv" emitted,acked,failed,timed_out,bolts_failed,pending,throughput_tps \
  '[([.components[] | select(.kind == "spout") | .emitted] | add),
    ([.components[] | select(.kind == "spout") | .acked] | add),
    ([.components[] | select(.kind == "spout") | .failed] | add),
    ([.components[] | select(.kind == "spout") | .timed_out] | add),
    ([.components[] | select(.kind == "bolt") | .failed] | add),
    ([.components[] | select(.kind == "spout") | .pending] | add),
    (.throughput_tps | floor)] | map(tostring) | join(",")'
code=0
wait "$pid" || code=$?
trap - EXIT
[ "$code" = 0 ] || { echo "squall exited with $code:" >&2; tail -20 "$OUT/run.log" >&2; exit 1; }

jq -r '"report: \(.duration_s | floor) s, \(.throughput_tps | floor) tweets/s, emitted \(.spouts.source.emitted), acked \(.spouts.source.acked), failed \(.spouts.source.failed), peak RSS \(.peak_rss_bytes / 1048576 | floor) MiB, CPU \(.cpu_seconds * 100 / .duration_s | floor) %"' \
  "$OUT/report.json" 2>/dev/null || true
awk -F, -v duration="$D" -v rss_tol="${RSS_TOL:-10}" -v pending_tol="${PENDING_TOL:-10}" -v pending_slack="${PENDING_SLACK:-64}" \
  -v fd_slack="${FD_SLACK:-2}" -f benches/soak-check.awk "$csv"
