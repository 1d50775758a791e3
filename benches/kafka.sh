#!/usr/bin/env bash
# The Kafka spout against the in-process dev broker (librdkafka's mock cluster):
#  1. throughput: N generated tweets (default 600,000 over 64 partitions) read by a kafka
#     spout → null sink, acking on and off (bounded: end = latest);
#  2. lag: tweets produced at a steady RATE (default 20,000/s) for SECS seconds while
#     kafka-hashtags.toml runs; the group's lag (log end − committed) sampled every second.
#
#   bash benches/kafka.sh [N] [RATE] [SECS]
# The mock keeps at most ~5 MiB per partition: keep N / partitions × 360 B below that.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-600000}
RATE=${2:-20000}
SECS=${3:-20}
PORT=${PORT:-19092}
OUT=${OUT:-target/kafka-bench}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/squall
B=127.0.0.1:$PORT
$BIN kafka dev-broker --port "$PORT" --topic bench --partitions 64 >"$OUT/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q bootstrap "$OUT/broker.log" && break; sleep 0.1; done
$BIN kafka produce-tweets --brokers "$B" --topic bench --count "$N" | tee "$OUT/produce.txt"

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
echo
echo "| acking | records | seconds | records/s | complete p50 µs | p99 µs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for acking in true false; do
  r="$OUT/null-acking-$acking.json"
  $BIN topology run benches/kafka-null.toml --quiet --set spouts.source.brokers="\"$B\"" \
    --set spouts.source.end=latest --set spouts.source.group="\"bench-$acking\"" \
    --set config.acking=$acking --report "$r" >/dev/null 2>&1
  echo "| $acking | $(field "$r" "r['spouts']['source']['emitted']") | $(field "$r" "r['duration_s']") | $(field "$r" "int(r['throughput_tps'])") | $(field "$r" "r['spouts']['source']['complete_latency_us']['p50']") | $(field "$r" "r['spouts']['source']['complete_latency_us']['p99']") |"
done

echo
echo "steady load: $RATE tweets/s for ${SECS}s into topic \`lag\` while kafka-hashtags.toml runs"
$BIN kafka produce-tweets --brokers "$B" --topic lag --count $((RATE * SECS)) --rate "$RATE" >"$OUT/produce-lag.txt" &
prod=$!
sleep 1 # the topic exists once the first tweets are in
$BIN topology run topologies/kafka-hashtags.toml --quiet --set spouts.source.brokers="\"$B\"" \
  --set bolts.rankings_out.brokers="\"$B\"" --set spouts.source.topics='["lag"]' \
  --set spouts.source.group='"lag"' --set bolts.sink.quiet=true \
  --duration "$((SECS + 2))s" --report "$OUT/lag.json" >"$OUT/lag-run.log" 2>&1 &
topo=$!
: >"$OUT/lag.txt"
for s in $(seq 2 "$SECS"); do
  sleep 1
  $BIN kafka offsets --brokers "$B" --topic lag --group lag 2>/dev/null | awk '/^ *total/ {print $2}' >>"$OUT/lag.txt" || true
done
wait $prod || true
wait $topo || true
python3 - "$OUT/lag.txt" "$RATE" <<'PY'
import sys
lags = [int(x) for x in open(sys.argv[1]).read().split()]
rate = int(sys.argv[2])
if lags:
    lags.sort()
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
    print(f"lag samples: {len(lags)}; records: median {p(0.5)}, p90 {p(0.9)}, max {lags[-1]}"
          f" (at {rate}/s: median {1000 * p(0.5) / rate:.0f} ms, max {1000 * lags[-1] / rate:.0f} ms;"
          " commits every 1 s, so lag includes up to one commit interval)")
PY
