#!/usr/bin/env bash
# The socket job (topologies/socket-hashtags.toml) on N lines served over a local TCP
# socket (`squall tweets serve --prerender`, as in benches/trending.sh), in event mode and
# in micro-batch mode, alternated, RUNS times each. Prints one row per run and the median
# of each mode; the JSON reports are left in $OUT (default target/socket-modes).
#
#   bash benches/socket-modes.sh [N] [RUNS]     # defaults: 5000000 3
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000000}
RUNS=${2:-3}
OUT=${OUT:-target/socket-modes}
PORT=${PORT:-19998}
mkdir -p "$OUT"
rm -f "$OUT"/*.json
cargo build --release --quiet
BIN=target/release/squall

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

run() {
  local mode=$1 i=$2
  local r="$OUT/$mode-$i.json"
  $BIN tweets serve --listen 127.0.0.1:$PORT --count "$N" --clients 1 --format text --prerender 2>"$OUT/server.log" &
  local server=$!
  # Wait until the server has rendered its lines and listens.
  for _ in $(seq 1 600); do grep -q "serving" "$OUT/server.log" 2>/dev/null && break; sleep 0.1; done
  $BIN topology run topologies/socket-hashtags.toml --quiet --mode "$mode" \
    --set spouts.source.port=$PORT --set spouts.source.reconnect=false \
    --set bolts.sink.quiet=true --report "$r" >/dev/null 2>&1
  wait $server || true
  echo "| $i | $(date -u +%H:%M) | $mode | $(field "$r" "r['spouts']['source']['acked']") | $(field "$r" "r['duration_s']") | $(field "$r" "int(r['throughput_tps'])") | $(field "$r" "round(r['cpu_seconds'] / r['duration_s'] * 100)") % | $(field "$r" "r['peak_rss_bytes'] >> 20") MiB | $(field "$r" "r['topk'][0] if r['topk'] else '-'") |"
}

echo "| run | UTC | mode | lines acked | seconds | lines/s | CPU | peak RSS | top hashtag |"
echo "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
for i in $(seq 1 "$RUNS"); do
  for mode in event microbatch; do
    run "$mode" "$i"
  done
done
python3 - "$OUT" <<'EOF'
import glob, json, statistics, sys
for mode in ("event", "microbatch"):
    tps = [json.load(open(f))["throughput_tps"] for f in sorted(glob.glob(f"{sys.argv[1]}/{mode}-*.json"))]
    print(f"median {mode}: {int(statistics.median(tps))} lines/s over {len(tps)} runs")
EOF
