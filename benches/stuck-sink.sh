#!/usr/bin/env bash
# A sink stuck for STALL (default 30s): N generated tweets (default 600,000) at RATE
# (default 20,000/s) through generator → tokenize → hashtags → count → jsonl, with a
# `chaos` sink beside the jsonl one that blocks once for STALL, 10 s into the run.
# message_timeout is TIMEOUT (default 10s, shorter than the stall), so in event mode trees
# time out and are replayed. Three runs: micro-batch without a stall (the reference
# counts), micro-batch with the stall, event mode with the stall. Each is sampled every
# second (RSS, the spouts' pending trees, from /proc and /api/metrics); the script prints
# a Markdown row per run and checks the final counts against the reference: identical in
# micro-batch mode, every key present and none below in event mode. Exits 1 if not.
#
#   bash benches/stuck-sink.sh [N] [RATE] [STALL]
#   SQUALL=path/to/squall OUT=dir TIMEOUT=5s bash benches/stuck-sink.sh 300000 20000 30s
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
. benches/lib/watch.sh
N=${1:-600000}
RATE=${2:-20000}
STALL=${3:-30s}
TIMEOUT=${TIMEOUT:-10s}
PENDING=${PENDING:-1024}
OUT=${OUT:-target/stuck-sink}
if [ -z "${SQUALL:-}" ]; then cargo build --release --quiet; fi
BIN=${SQUALL:-${CARGO_TARGET_DIR:-target}/release/squall}
mkdir -p "$OUT"

topology() { # $1 = name, $2 = stall_for
  cat >"$OUT/$1.toml" <<EOF
name = "stuck-sink"

[config]
max_spout_pending = $PENDING
message_timeout = "$TIMEOUT"

[spouts.source]
type = "generator"
parallelism = 2
seed = 7
rate = $RATE
limit = $N

[bolts.tokenize]
type = "tokenize"
parallelism = 2
inputs = [{ from = "source", grouping = "local_or_shuffle" }]

[bolts.hashtags]
type = "hashtags"
parallelism = 2
inputs = [{ from = "tokenize", grouping = "local_or_shuffle" }]

[bolts.counts]
type = "count"
parallelism = 2
inputs = [{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }]

[bolts.out]
type = "jsonl"
path = "$OUT/$1.jsonl"
inputs = [{ from = "counts", grouping = "shuffle" }]

[bolts.stuck]
type = "chaos"
stall_after = "10s"
stall_for = "$2"
inputs = [{ from = "counts", grouping = "shuffle" }]
EOF
}

run() { # $1 = name, $2 = mode, $3 = stall_for; leaves $OUT/NAME.{csv,json,counts}
  local name=$1 addr pid
  topology "$name" "$3"
  local mb=()
  [ "$2" = microbatch ] && mb=(--batch-interval 100ms)
  "$BIN" topology run "$OUT/$name.toml" --mode "$2" ${mb[@]+"${mb[@]}"} --quiet \
    --http 127.0.0.1:0 --report "$OUT/$name.json" >/dev/null 2>"$OUT/$name.log" &
  pid=$!
  addr=$(dashboard_addr "$OUT/$name.log")
  watch_process "$pid" "$addr" "$OUT/$name.csv" pending,emitted,acked,failed \
    '[.components[] | select(.kind == "spout")] |
      [(map(.pending) | add), (map(.emitted) | add), (map(.acked) | add), (map(.failed) | add)] |
      map(tostring) | join(",")'
  wait "$pid" || { echo "$name: squall failed" >&2; tail "$OUT/$name.log" >&2; exit 1; }
  # The final count of each key: the largest the count bolt emitted.
  jq -r '[.key, .count] | @tsv' "$OUT/$name.jsonl" |
    awk -F'\t' '$2 > m[$1] { m[$1] = $2 } END { for (k in m) print k "\t" m[k] }' |
    sort >"$OUT/$name.counts"
}

row() { # $1 = name, $2 = mode, $3 = stall, $4 = counts verdict
  local peak pend
  peak=$(awk -F, 'NR > 1 && $2 > m { m = $2 } END { printf "%.0f", m / 1024 }' "$OUT/$1.csv")
  pend=$(awk -F, 'NR > 1 && $5 + 0 > m { m = $5 + 0 } END { print m + 0 }' "$OUT/$1.csv")
  echo "| $2 | $3 | $(jq '.duration_s | floor' "$OUT/$1.json") | $(jq '.spouts.source.emitted' "$OUT/$1.json") | $(jq '.spouts.source.acked' "$OUT/$1.json") | $(jq '.counters.source.timed_out // 0' "$OUT/$1.json") | $pend | $peak | $(wc -l <"$OUT/$1.counts") | $4 |"
}

echo "N=$N, $RATE tweets/s, stall $STALL after 10 s, message_timeout $TIMEOUT, max_spout_pending $PENDING, $(nproc) CPUs, $(date -u +%FT%TZ)"
run reference microbatch 0s
run microbatch microbatch "$STALL"
run event event "$STALL"
status=0
if cmp -s "$OUT/reference.counts" "$OUT/microbatch.counts"; then mb="exact"; else mb="DIFFERENT"; status=1; fi
ev=$(join -t$'\t' -a1 -e MISSING -o 0,1.2,2.2 "$OUT/reference.counts" "$OUT/event.counts" |
  awk -F'\t' '$3 == "MISSING" { miss++ } $3 != "MISSING" && $3 + 0 < $2 + 0 { low++ }
    $3 != "MISSING" && $3 + 0 > $2 + 0 { over++ }
    END { if (miss || low) printf "LOST: %d keys missing, %d below", miss, low;
          else printf "≥ truth (%d keys over)", over }')
case "$ev" in LOST*) status=1;; esac
echo
echo "| mode | stall | seconds | emitted | acked | timed out | max pending | peak RSS MiB | keys | counts |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
row reference microbatch none "reference"
row microbatch microbatch "$STALL" "$mb"
row event event "$STALL" "$ev"
exit $status
