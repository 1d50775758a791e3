//! Resuming a micro-batch state directory with the real binary: a run whose options
//! differ from those the state was written with (window, slide, top, the generator's
//! seed) is refused with an error naming the component, the option and both values;
//! options that change neither the state nor the batches (limit, rate) may change; a
//! store cut to 0 bytes or cut short, or a stored window edited into nonsense, is an
//! error and never a fresh start or a panic.

use std::path::Path;
use std::time::Duration;

use squall::state::Store;

use crate::support::cli::{Output, TempDir, squall, topology};

const TIMEOUT: Duration = Duration::from_secs(120);

/// trending-hashtags.toml in micro-batch mode over 2,000 tweets, with `sets` after the
/// test's own.
fn run(state: &Path, sets: &[&str]) -> Output {
    let mut args = vec![
        "topology".to_string(),
        "run".into(),
        topology("trending-hashtags.toml").display().to_string(),
        "--mode".into(),
        "microbatch".into(),
        "--batch-interval".into(),
        "20ms".into(),
        "--state-dir".into(),
        state.display().to_string(),
        "--quiet".into(),
    ];
    for s in ["spouts.source.limit=2000", "spouts.source.rate=0"]
        .iter()
        .chain(sets)
    {
        args.push("--set".into());
        args.push(s.to_string());
    }
    squall(args, TIMEOUT)
}

/// A state directory holding a finished run of the default options.
fn written() -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("mb-restore");
    let state = dir.join("state");
    run(&state, &[]).assert_success();
    (dir, state)
}

fn assert_refused(out: &Output, wants: &[&str]) {
    out.assert_failure();
    for w in wants {
        assert!(
            out.stderr.contains(w),
            "the error does not say {w:?}:\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_resumed_state_dir_refuses_changed_options_naming_them_with_both_values() {
    let (_dir, state) = written();
    // Before the check, each of these resumed silently with the stored options (window,
    // slide, top) or replayed other tweets (seed).
    let cases: [(&str, &[&str]); 4] = [
        (
            "bolts.counts.window=20s",
            &["`counts`", "`window`", "was 1m", "is 20s"],
        ),
        (
            "bolts.counts.slide=5s",
            &["`counts`", "`slide`", "was 10s", "is 5s"],
        ),
        ("bolts.rank.top=3", &["`rank`", "`top`", "was 10", "is 3"]),
        (
            "spouts.source.seed=7",
            &["`source`", "`seed`", "was 42", "is 7"],
        ),
    ];
    for (set, wants) in cases {
        let out = run(&state, &[set]);
        let mut all = wants.to_vec();
        all.push("new (or emptied) --state-dir");
        assert_refused(&out, &all);
    }
    // The refusals left the state as it was: the same options resume, and options that
    // change neither the state nor the batches (where the stream ends, its pace) may
    // change.
    run(&state, &[]).assert_success();
    run(
        &state,
        &["spouts.source.limit=3000", "spouts.source.rate=100000"],
    )
    .assert_success();
}

#[test]
fn a_store_cut_to_zero_bytes_or_cut_short_is_an_error_not_a_fresh_start() {
    let (_dir, state) = written();
    let file = state.join("state.redb");
    let len = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{e}"))
        .len();
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    // Before: an empty file was taken for a new store, and the run started over.
    std::fs::write(&file, b"").unwrap_or_else(|e| panic!("{e}"));
    assert_refused(
        &run(&state, &[]),
        &["state.redb", "empty", "new (or emptied) --state-dir"],
    );
    for cut in [len / 2, 4096, 100] {
        std::fs::write(&file, &bytes[..cut as usize]).unwrap_or_else(|e| panic!("{e}"));
        assert_refused(
            &run(&state, &[]),
            &[
                "state.redb",
                "cannot be read",
                "new (or emptied) --state-dir",
            ],
        );
    }
    // A new directory is a fresh start, without a word of damage.
    let fresh = TempDir::new("mb-fresh");
    let out = run(&fresh.join("state"), &[]);
    out.assert_success();
    assert!(!out.stderr.contains("cannot be read"), "{}", out.stderr);
}

#[test]
fn a_corrupt_stored_window_is_an_error_not_a_panic() {
    let (_dir, state) = written();
    {
        let store = Store::open(&state).unwrap_or_else(|e| panic!("{e}"));
        let txid = store.committed_txid().unwrap_or_else(|e| panic!("{e}")) + 1;
        let mut writes = Vec::new();
        for (key, _, value) in store
            .load_prefix("counts/0/window/")
            .unwrap_or_else(|e| panic!("{e}"))
        {
            let mut w: serde_json::Value =
                serde_json::from_slice(&value).unwrap_or_else(|e| panic!("{e}"));
            w["slots"] = serde_json::json!([]);
            let bytes = serde_json::to_vec(&w).unwrap_or_else(|e| panic!("{e}"));
            writes.push((format!("counts/0/window/{key}"), txid, bytes));
        }
        assert_eq!(writes.len(), 1, "the stored window of counts[0]");
        store
            .commit(txid, &writes)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Before: the window loaded, and the first count indexed its empty slots (a panic).
    assert_refused(
        &run(&state, &[]),
        &["counts", "stored window is inconsistent", "0 slots"],
    );
}
