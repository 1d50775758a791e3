#!/usr/bin/env bash
# The cost of serving metrics: trending-hashtags as fast as it goes (N tweets), alternately
# without and with `--http 127.0.0.1:0` (with /metrics and /api/metrics fetched every
# second during the --http runs). Prints throughput_tps of each run from its report.
#
#   bash benches/http-overhead.sh [N=3000000] [RUNS=3]
#   SQUALL=path/to/squall bash benches/http-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib/watch.sh
N=${1:-3000000}
RUNS=${2:-3}
BIN=${SQUALL:-${CARGO_TARGET_DIR:-target}/release/squall}
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tps() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["throughput_tps"])' "$1"; }

run() { # $1 = off | on
  local args=(topology run topologies/trending-hashtags.toml --set spouts.source.rate=0
    --set "spouts.source.limit=$N" --quiet --report "$tmp/r.json")
  if [ "$1" = off ]; then
    "$BIN" "${args[@]}" >/dev/null 2>"$tmp/err"
  else
    "$BIN" "${args[@]}" --http 127.0.0.1:0 >/dev/null 2>"$tmp/err" &
    local pid=$! addr
    addr=$(dashboard_addr "$tmp/err")
    while kill -0 "$pid" 2>/dev/null; do
      curl -s -o /dev/null "$addr/metrics" || true
      curl -s -o /dev/null "$addr/api/metrics" || true
      sleep 1
    done
    wait "$pid"
  fi
  tps "$tmp/r.json"
}

echo "N=$N, $(nproc) CPUs, $(date -u +%FT%TZ)"
for i in $(seq "$RUNS"); do
  echo "run $i: off $(run off) tuples/s"
  echo "run $i: on  $(run on) tuples/s"
done
