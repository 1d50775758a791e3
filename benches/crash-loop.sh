#!/usr/bin/env bash
# Crash loops and broker faults, longer than in CI: the `crash_loops` tests (a Kafka job
# SIGKILLed at random moments CYCLES times in a row, new records before each start, then a
# last run to the log end; micro-batch counts exact, event mode every record at least once,
# commits never ahead of what was processed) with more cycles and records, one mode after
# the other; then the broker-fault tests with every broker down for 20 s (DOWN_SECS). The
# seed of each loop is printed; SEED=N replays one.
#
#   bash benches/crash-loop.sh [CYCLES] [RECORDS_PER_CYCLE] [MAX_DELAY_MS]
# The mock cluster keeps ~100k records per partition (4 partitions): CYCLES × RECORDS
# must stay below ~400k.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQUALL_CRASH_CYCLES=${1:-100}
export SQUALL_CRASH_RECORDS=${2:-1000}
export SQUALL_CRASH_MAX_DELAY_MS=${3:-2500}
if [ -n "${SEED:-}" ]; then export SQUALL_CRASH_SEED=$SEED; fi
nproc_=$(nproc)
echo "crash loop: $SQUALL_CRASH_CYCLES cycles x $SQUALL_CRASH_RECORDS records, kill 50 ms + up to $SQUALL_CRASH_MAX_DELAY_MS ms after each start; $nproc_ cores"
OUT=${OUT:-target/crash-loop}
mkdir -p "$OUT"
start=$(date +%s)
status=0
cargo test --profile test-release --test it -- crash_loops:: --nocapture --test-threads 1 \
  >"$OUT/test.log" 2>&1 || status=$?
# The broker-fault tests with every broker down for DOWN_SECS (default 20) instead of 5.
SQUALL_BROKER_DOWN_SECS=${DOWN_SECS:-20} cargo test --profile test-release --test it -- \
  broker_faults:: --nocapture --test-threads 1 >>"$OUT/test.log" 2>&1 || status=$?
grep -E "crash loop|broker faults|test result|panicked" "$OUT/test.log" || true
echo "total: $(( $(date +%s) - start )) s (log: $OUT/test.log)"
exit $status
