#!/usr/bin/env bash
# Event-mode latency at half of its own maximum throughput, as issue 6 states the target:
# a run at full speed, then a run offered half of what it achieved, back to back, each
# after `squall bench`'s default 2 s warm-up. Repeats N times (default 3) and prints one
# Markdown row per pair, with what the stall probe saw just before the half-rate run.
#
#   bash benches/half-of-max.sh [N] [FILE] [--set KEY=VALUE]...
# e.g. bash benches/half-of-max.sh 3 topologies/trending-hashtags.toml --set config.worker_priority=realtime
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
FILE=${2:-topologies/trending-hashtags.toml}
shift $(( $# < 2 ? $# : 2 ))
SETS=("$@")
OUT=${OUT:-target/half-of-max}
DURATION=${DURATION:-10s}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/squall

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

echo "| time (UTC) | event max | half | p50 | p90 | p99 | p99.9 | CPU % | probe: lost ms/s, other tasks ms/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for i in $(seq 1 "$N"); do
  "$BIN" bench "$FILE" --modes event --rates max --duration "$DURATION" --stall-probe 0s ${SETS[@]+"${SETS[@]}"} \
    --out "$OUT/max-$i" >/dev/null 2>"$OUT/max-$i.log" || { cat "$OUT/max-$i.log" >&2; exit 1; }
  max=$(field "$OUT/max-$i/bench.json" "int(d['points'][0]['achieved_tps'])")
  half=$((max / 2))
  "$BIN" bench "$FILE" --modes event --rates "$half" --duration "$DURATION" --stall-probe 2s ${SETS[@]+"${SETS[@]}"} \
    --out "$OUT/half-$i" >/dev/null 2>"$OUT/half-$i.log" || { cat "$OUT/half-$i.log" >&2; exit 1; }
  field "$OUT/half-$i/bench.json" "'| $(date -u +%H:%M) | $max | %.0f | %.3f | %.3f | %.3f | %.3f | %.0f | %.1f, %s |' % (
    d['points'][0]['achieved_tps'],
    *[d['points'][0]['latency_us'][k] / 1000 for k in ('p50', 'p90', 'p99', 'p999')],
    d['points'][0]['cpu_percent'], d['stalls_before']['lost_ms_per_s'],
    '%.1f' % d['stalls_before']['run_queue_ms_per_s'] if d['stalls_before'].get('run_queue_ms_per_s') is not None else 'n/a')"
done
