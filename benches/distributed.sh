#!/usr/bin/env bash
# Bounded distributed runs (docs/scaling.md, "Bounded runs of 200 000 tweets"): N generated
# tweets (default 200,000 in 24 partitions) on a dev broker, counted by
#   - kafka-hashtags.toml in one process,
#   - distributed-hashtags.toml with 1, 2 and 3 instances started together,
# RUNS times (default 5), alternated. Each run uses a fresh application id and group.
# Prints one row per run: wall time, CPU seconds per instance (from the reports), tweets
# acked by the sources minus N (tweets read twice), and whether the final top-10 equals
# the one-process answer.
#
#   bash benches/distributed.sh [N] [RUNS]
# The dev broker keeps at most ~5 MiB per partition (about 13 700 of these tweets).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-5}
PORT=${PORT:-19192}
OUT=${OUT:-target/distributed-bench}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/squall
B=127.0.0.1:$PORT
$BIN kafka dev-broker --port "$PORT" --topic tweets --partitions 24 >"$OUT/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; pkill -f "$OUT/" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q bootstrap "$OUT/broker.log" && break; sleep 0.1; done
$BIN kafka produce-tweets --brokers "$B" --topic tweets --count "$N" >"$OUT/produce.txt"

summary() {
  python3 - "$N" "$@" <<'EOF'
import json, sys
n = int(sys.argv[1]); files = sys.argv[2:]
rs = [json.load(open(f)) for f in files]
acked = sum(r["spouts"]["source"]["acked"] for r in rs)
cpu = ",".join(f'{r["cpu_seconds"]:.2f}' for r in rs)
top = next((r["topk"] for r in rs if r.get("topk_final")), [])
print(f"{cpu}\t{acked - n}\t{json.dumps(top[:3])}")
EOF
}

echo "| run | instances | wall s | CPU s per instance | tweets read twice | top-3 of the final ranking |"
echo "| --- | --- | ---: | --- | ---: | --- |"
for run in $(seq 1 "$RUNS"); do
  for k in 0 1 2 3; do
    app="bench-$run-$k-$$"
    start=$(date +%s.%N)
    if [ "$k" = 0 ]; then
      $BIN topology run topologies/kafka-hashtags.toml --brokers "$B" \
        --set spouts.source.end=latest --set "spouts.source.group=$app" \
        --quiet --report "$OUT/$app-p.json" >/dev/null 2>"$OUT/$app-p.log"
      files="$OUT/$app-p.json"
    else
      pids=()
      files=""
      for id in $(seq 1 "$k"); do
        $BIN topology run topologies/distributed-hashtags.toml --brokers "$B" \
          --instance-id "i$id" --set spouts.source.end=latest \
          --set config.session_timeout=1s --set "config.application_id=$app" \
          --set "spouts.source.group=$app" --quiet --report "$OUT/$app-$id.json" \
          >/dev/null 2>"$OUT/$app-$id.log" &
        pids+=($!)
        files="$files $OUT/$app-$id.json"
      done
      for p in "${pids[@]}"; do wait "$p"; done
    fi
    end=$(date +%s.%N)
    wall=$(python3 -c "print(f'{$end - $start:.1f}')")
    IFS=$'\t' read -r cpu twice top < <(summary $files)
    label=$([ "$k" = 0 ] && echo "1 process" || echo "$k")
    echo "| $run | $label | $wall | $cpu | $twice | $top |"
  done
done
