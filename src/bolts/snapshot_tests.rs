//! Restoring a stateful bolt from bytes that are not its snapshot (corrupt, truncated,
//! edited) is an error, never a panic; and a bolt that accepts edited bytes (they may
//! still be a well-formed snapshot) runs on without panicking.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::bolts::count::CountConfig;
use crate::bolts::rank::RankConfig;
use crate::bolts::ranking_value::to_value;
use crate::bolts::rolling_count::{RollingCountBolt, RollingCountConfig};
use crate::bolts::total_rank::{PARTITION_FIELD, TotalRankConfig};
use crate::component::registry::BoltConfig;
use crate::component::testkit::BoltHarness;
use crate::data::tuple::{Fields, Value, Values};
use crate::io::clock::ManualClock;

/// A kind of stateful bolt: a fresh bolt, and inputs that give it every part of its state.
struct Kind {
    make: Box<dyn Fn() -> BoltHarness>,
    inputs: Vec<Values>,
}

fn built(
    cfg: &dyn Fn() -> Result<crate::component::BoltFactory, String>,
) -> Box<dyn crate::component::Bolt> {
    match cfg() {
        Ok(f) => f(),
        Err(e) => panic!("{e}"),
    }
}

fn kinds(clock: &ManualClock) -> Vec<Kind> {
    let ranking = |k: &str, c: u64| to_value(&[(k.into(), c)]);
    let clock = clock.clone();
    vec![
        Kind {
            make: Box::new(|| {
                let b = built(&|| CountConfig::default().build().map_err(|e| e.to_string()));
                BoltHarness::new(b, Fields::new(["word"]))
            }),
            inputs: vec![
                crate::values!["a"],
                crate::values!["b"],
                crate::values!["a"],
            ],
        },
        Kind {
            make: Box::new(move || {
                let cfg = RollingCountConfig {
                    field: None,
                    window: Duration::from_secs(30),
                    slide: Duration::from_secs(10),
                    ..Default::default()
                };
                let b = RollingCountBolt::with_clock(cfg, Arc::new(clock.clone()));
                BoltHarness::new(Box::new(b), Fields::new(["word"]))
            }),
            inputs: vec![
                crate::values!["a"],
                crate::values!["b"],
                crate::values!["a"],
            ],
        },
        Kind {
            make: Box::new(|| {
                let b = built(&|| RankConfig::default().build().map_err(|e| e.to_string()));
                BoltHarness::with_expected_partials(
                    b,
                    Fields::new(["key", "count", "window_start", "window_end", "final"]),
                    2,
                )
            }),
            inputs: vec![
                // Running (no window_end), windowed, punctuations, the final window.
                crate::values!["a", 3, Value::Null, Value::Null, Value::Null],
                crate::values!["b", 2, 0, 10_000, false],
                crate::values![Value::Null, 0, 0, 10_000, false],
                crate::values!["c", 1, 10_000, 20_000, false],
                crate::values!["c", 4, 20_000, 30_000, true],
                crate::values![Value::Null, 0, 20_000, 30_000, true],
            ],
        },
        Kind {
            make: Box::new(|| {
                let b = built(&|| {
                    TotalRankConfig::default()
                        .build()
                        .map_err(|e| e.to_string())
                });
                BoltHarness::with_expected_partials(
                    b,
                    Fields::new([
                        "rankings",
                        "window_start",
                        "window_end",
                        "final",
                        PARTITION_FIELD,
                    ]),
                    3,
                )
            }),
            inputs: vec![
                crate::values![ranking("a", 3), Value::Null, Value::Null, Value::Null, 0],
                crate::values![ranking("b", 2), 0, 10_000, false, 1],
                crate::values![ranking("c", 1), 0, 10_000, false, 2],
                crate::values![ranking("d", 5), 10_000, 20_000, false, 0],
                crate::values![ranking("e", 4), 20_000, 30_000, true, 1],
            ],
        },
    ]
}

/// Each kind of bolt with a snapshot of some state of every part.
fn snapshots(clock: &ManualClock) -> Vec<(Kind, Vec<u8>)> {
    kinds(clock)
        .into_iter()
        .map(|k| {
            clock.set(1_000);
            let mut h = (k.make)();
            for v in &k.inputs {
                h.execute(v.clone()).ok();
            }
            clock.set(10_000);
            h.tick().ok();
            h.execute(k.inputs[0].clone()).ok();
            let bytes = match h.snapshot() {
                Some(Ok(b)) => b,
                other => panic!("no snapshot: {:?}", other.map(|r| r.err())),
            };
            (k, bytes)
        })
        .collect()
}

/// Restores `bytes` into a fresh bolt of `kind`; if that works, runs the bolt on (only a
/// panic fails). Returns whether the restore worked.
fn restore_and_run(kind: &Kind, clock: &ManualClock, bytes: &[u8]) -> bool {
    clock.set(10_000);
    let mut h = (kind.make)();
    if h.restore(bytes).is_err() {
        return false;
    }
    for v in &kind.inputs {
        h.execute(v.clone()).ok();
    }
    for t in [25_000, 95_000] {
        clock.set(t);
        h.tick().ok();
    }
    h.finish().ok();
    true
}

/// Bytes an edit of a JSON text may put anywhere.
const JSON_BYTES: &[u8] = b"0123456789-.eE\"{}[],: nultrfasFinalClosedk\\";

/// Numbers an edit may put in place of one in the text.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "-1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709550000",
    "18446744073709551615",
    "1e400",
    "0.5",
];

/// Replaces the `which`-th run of digits of `text` with `with`.
fn replace_number(text: &[u8], which: prop::sample::Index, with: &str) -> Vec<u8> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit() {
            let start = i;
            while i < text.len() && text[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return text.to_vec();
    }
    let (a, b) = runs[which.index(runs.len())];
    [&text[..a], with.as_bytes(), &text[b..]].concat()
}

#[test]
fn every_snapshot_restores_and_its_truncations_are_refused() {
    let clock = ManualClock::new(0);
    for (kind, bytes) in snapshots(&clock) {
        assert!(restore_and_run(&kind, &clock, &bytes));
        for cut in 0..bytes.len() {
            let mut h = (kind.make)();
            assert!(h.restore(&bytes[..cut]).is_err(), "restored {cut} bytes");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn edited_snapshots_never_panic(
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(JSON_BYTES)),
            0..4,
        ),
        numbers in proptest::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(EXTREMES)),
            0..3,
        ),
    ) {
        let clock = ManualClock::new(0);
        for (kind, bytes) in snapshots(&clock) {
            let mut bytes = bytes;
            for (at, with) in &numbers {
                bytes = replace_number(&bytes, *at, with);
            }
            for (at, b) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            restore_and_run(&kind, &clock, &bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let clock = ManualClock::new(0);
        for kind in kinds(&clock) {
            prop_assert!(!restore_and_run(&kind, &clock, &bytes));
        }
    }
}
