#!/usr/bin/env bash
# The socket job (topologies/socket-hashtags.toml) on N lines served over a local TCP
# socket (`squall tweets serve --prerender`, as in benches/trending.sh), beside the
# physical reference (examples/socket_reference.rs: one thread, no framework, the same
# hashtag search and count). Each round runs, in turn: the reference, event mode with
# acking on, event mode with acking off, micro-batch mode. Prints one row per run and the
# median of each; the JSON reports are left in $OUT (default target/socket-modes).
#
#   bash benches/socket-modes.sh [N] [RUNS]     # defaults: 5000000 3
#   BIN=path/to/squall PORT=19998 OUT=dir bash benches/socket-modes.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000000}
RUNS=${2:-3}
OUT=${OUT:-target/socket-modes}
PORT=${PORT:-19998}
mkdir -p "$OUT"
rm -f "$OUT"/*.json
cargo build --release --quiet
cargo build --release --quiet --example socket_reference
BIN=${BIN:-target/release/squall}
REF=target/release/examples/socket_reference

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

# Serves N lines to one client; returns when the server listens.
serve() {
  $BIN tweets serve --listen 127.0.0.1:$PORT --count "$N" --clients 1 --format text --prerender 2>"$OUT/server.log" &
  SERVER=$!
  for _ in $(seq 1 600); do ss -ltn | grep -q ":$PORT " && return; sleep 0.1; done
  echo "the server did not listen on $PORT" >&2
  exit 1
}

run() {
  local name=$1 i=$2
  shift 2
  local r="$OUT/$name-$i.json"
  serve
  if [ "$name" = reference ]; then
    $REF 127.0.0.1:$PORT >"$r"
    wait $SERVER || true
    echo "| $i | $(date -u +%H:%M) | reference | $(field "$r" "r['lines']") | $(field "$r" "r['seconds']") | $(field "$r" "int(r['lines_per_s'])") | $(field "$r" "round(r['cpu_seconds'] / r['seconds'] * 100)") % | - | $(field "$r" "r['top']") |"
    return
  fi
  $BIN topology run topologies/socket-hashtags.toml --quiet "$@" \
    --set spouts.source.port=$PORT --set spouts.source.reconnect=false \
    --set bolts.sink.quiet=true --report "$r" >/dev/null 2>&1
  wait $SERVER || true
  echo "| $i | $(date -u +%H:%M) | $name | $(field "$r" "r['spouts']['source']['acked']") | $(field "$r" "r['duration_s']") | $(field "$r" "int(r['throughput_tps'])") | $(field "$r" "round(r['cpu_seconds'] / r['duration_s'] * 100)") % | $(field "$r" "r['peak_rss_bytes'] >> 20") MiB | $(field "$r" "r['topk'][0] if r['topk'] else '-'") |"
}

echo "| run | UTC | run of | lines | seconds | lines/s | CPU | peak RSS | top hashtag |"
echo "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
for i in $(seq 1 "$RUNS"); do
  run reference "$i"
  run event "$i" --mode event
  run event-acking-off "$i" --mode event --set config.acking=false
  run microbatch "$i" --mode microbatch
done
python3 - "$OUT" <<'EOF'
import glob, json, statistics, sys
for name in ("reference", "event", "event-acking-off", "microbatch"):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{sys.argv[1]}/{name}-[0-9]*.json"))]
    tps = [r.get("lines_per_s", r.get("throughput_tps")) for r in runs]
    print(f"median {name}: {int(statistics.median(tps))} lines/s over {len(tps)} runs")
EOF
