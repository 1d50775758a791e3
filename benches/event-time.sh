#!/usr/bin/env bash
# Event time against processing time on the main job (docs/benchmarks.md, "Event time"):
#  1. throughput and p99 complete latency: N generated tweets (default 1,000,000) as fast as
#     possible, trending-hashtags.toml against trending-hashtags-event-time.toml (same
#     generator, seed and windows), in each of MODES (default "event microbatch"), RUNS
#     times alternated (default 3);
#  2. how long after a window's end its ranking is written: the event-time job paced at
#     RATE tweets/s (default 10,000; tweets written "now", no skew or disorder, lag 0) in
#     LAT_MODE (default event), the rankings written by a jsonl sink that is polled every
#     5 ms for SECS seconds (default 40).
#
#   bash benches/event-time.sh [N] [RUNS] [RATE] [SECS]
#   MODES=microbatch LAT_MODE=microbatch bash benches/event-time.sh 3000000 3 10000 40
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${2:-3}
RATE=${3:-10000}
SECS=${4:-40}
MODES=${MODES:-event microbatch}
LAT_MODE=${LAT_MODE:-event}
OUT=${OUT:-target/event-time-bench}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/squall

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

echo "| run | mode | windows | tweets/s | complete p99 ms | late |"
echo "| --- | --- | --- | ---: | ---: | ---: |"
for run in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    for kind in processing event; do
      file=topologies/trending-hashtags.toml
      extra=()
      if [ "$kind" = event ]; then
        file=topologies/trending-hashtags-event-time.toml
        extra=(--set spouts.source.event_interval=1ms)
      fi
      r="$OUT/$mode-$kind-$run.json"
      $BIN topology run "$file" --mode "$mode" --set spouts.source.rate=0 \
        --set "spouts.source.limit=$N" --set bolts.sink.quiet=true "${extra[@]}" --quiet \
        --report "$r" >/dev/null 2>"$OUT/$mode-$kind-$run.log"
      echo "| $run | $mode | $kind | $(field "$r" 'round(r["throughput_tps"])') | $(field "$r" 'round(r["spouts"]["source"]["complete_latency_us"]["p99"]/1000, 2)') | $(field "$r" 'r.get("counters",{}).get("counts",{}).get("late",0)') |"
    done
  done
done

# 2. Window end → ranking written.
rankings="$OUT/rankings.jsonl"
rm -f "$rankings"* 
cat >"$OUT/latency.toml" <<EOF
name = "event-time-latency"
[spouts.source]
type = "generator"
parallelism = 2
rate = $RATE
event_start = "now"
event_time = { field = "created_at", lag = "0s" }
[bolts.tokenize]
type = "tokenize"
parallelism = 2
inputs = [{ from = "source", grouping = "local_or_shuffle" }]
[bolts.hashtags]
type = "hashtags"
parallelism = 2
inputs = [{ from = "tokenize", grouping = "local_or_shuffle" }]
[bolts.counts]
type = "rolling_count"
parallelism = 2
window = "10s"
slide = "2s"
time = "event"
inputs = [{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }]
[bolts.rank]
type = "rank"
parallelism = 2
inputs = [{ from = "counts", grouping = "fields", fields = ["key"] }]
[bolts.total_rank]
type = "total_rank"
inputs = [{ from = "rank", grouping = "global" }]
[bolts.sink]
type = "jsonl"
path = "$rankings"
inputs = [{ from = "total_rank", grouping = "global" }]
EOF
$BIN topology run "$OUT/latency.toml" --mode "$LAT_MODE" --duration "${SECS}s" --quiet >/dev/null 2>"$OUT/latency.log" &
job=$!
python3 - "$rankings" "$SECS" "$RATE" <<'EOF'
import json, os, sys, time
path, secs, rate = sys.argv[1], float(sys.argv[2]), sys.argv[3]
seen, lat = 0, []
end = time.time() + secs
while time.time() < end:
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().splitlines()
        now = time.time() * 1000
        for l in lines[seen:]:
            try:
                r = json.loads(l)
            except ValueError:
                break
            if not r.get("final"):
                lat.append(now - r["window_end"])
            seen += 1
    time.sleep(0.005)
lat.sort()
if lat:
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"window end → ranking written at {rate} tweets/s: {len(lat)} windows, "
          f"median {p(0.5):.0f} ms, p90 {p(0.9):.0f} ms, max {lat[-1]:.0f} ms")
else:
    print("no window was written")
EOF
wait $job || true
