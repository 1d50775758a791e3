#!/usr/bin/env bash
# The trending-hashtags topology on N generated tweets (default 5,000,000) and on N lines
# served over a local TCP socket, acking on and off. Prints a Markdown table; the JSON
# reports are left in $OUT (default target/trending-bench).
#
#   bash benches/trending.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000000}
OUT=${OUT:-target/trending-bench}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/squall
PORT=${PORT:-19999}

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

echo "| source | acking | tweets | seconds | tweets/s | complete p50 µs | p99 µs | top hashtag |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
for acking in true false; do
  r="$OUT/generator-acking-$acking.json"
  $BIN topology run topologies/trending-hashtags.toml --quiet \
    --set spouts.source.limit="$N" --set spouts.source.rate=0 \
    --set bolts.sink.quiet=true --set config.acking=$acking --report "$r" >/dev/null 2>&1
  echo "| generator | $acking | $(field "$r" "r['spouts']['source']['emitted']") | $(field "$r" "r['duration_s']") | $(field "$r" "int(r['throughput_tps'])") | $(field "$r" "r['spouts']['source']['complete_latency_us']['p50']") | $(field "$r" "r['spouts']['source']['complete_latency_us']['p99']") | $(field "$r" "r['topk'][0][0] if r['topk'] else '-'") |"

  r="$OUT/socket-acking-$acking.json"
  $BIN tweets serve --listen 127.0.0.1:$PORT --count "$N" --clients 1 --format text --prerender 2>"$OUT/server.log" &
  server=$!
  # Wait until the server has rendered its lines and listens.
  for _ in $(seq 1 600); do grep -q "serving" "$OUT/server.log" 2>/dev/null && break; sleep 0.1; done
  $BIN topology run topologies/socket-hashtags.toml --quiet \
    --set spouts.source.port=$PORT --set spouts.source.reconnect=false \
    --set bolts.sink.quiet=true --set config.acking=$acking --report "$r" >/dev/null 2>&1
  wait $server || true
  echo "| socket | $acking | $(field "$r" "r['spouts']['source']['emitted']") | $(field "$r" "r['duration_s']") | $(field "$r" "int(r['throughput_tps'])") | $(field "$r" "r['spouts']['source']['complete_latency_us']['p50']") | $(field "$r" "r['spouts']['source']['complete_latency_us']['p99']") | $(field "$r" "r['topk'][0][0] if r['topk'] else '-'") |"
done
