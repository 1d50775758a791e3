//! Reading a micro-batch state directory that no process holds: the committed counts of a
//! `count` bolt, and how far the committed batches have read their Kafka partitions.

use std::collections::BTreeMap;
use std::path::Path;

use squall::state::Store;

/// The committed txid and the committed counts of the `count` bolt `bolt` (its `tasks`
/// tasks together; a key stored by two tasks fails the test).
pub fn committed_counts(state: &Path, bolt: &str, tasks: u32) -> (u64, BTreeMap<String, u64>) {
    let store = Store::open(state)
        .unwrap_or_else(|e| panic!("open the state store {}: {e}", state.display()));
    let mut out = BTreeMap::new();
    for task in 0..tasks {
        for (key, _txid, bytes) in store
            .load_prefix(&format!("{bolt}/{task}/counts/"))
            .unwrap_or_else(|e| panic!("read the counts of `{bolt}` task {task}: {e}"))
        {
            let n: u64 = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("the count of {key} does not decode: {e}"));
            assert!(
                out.insert(key.clone(), n).is_none(),
                "{key} is counted by two tasks of `{bolt}`"
            );
        }
    }
    (store.committed_txid().unwrap_or(0), out)
}

/// The end (`to`) of each Kafka partition's range in the last committed batch record:
/// how far the committed state has read.
pub fn committed_read_to(state: &Path) -> BTreeMap<i32, i64> {
    let store = Store::open(state)
        .unwrap_or_else(|e| panic!("open the state store {}: {e}", state.display()));
    let committed = store.committed_txid().unwrap_or(0);
    let mut out = BTreeMap::new();
    if committed == 0 {
        return out;
    }
    let records = store
        .batches_from(committed)
        .unwrap_or_else(|e| panic!("read the batch records: {e}"));
    let Some((_, bytes)) = records.first() else {
        panic!("no record of the committed batch {committed}");
    };
    let rec: serde_json::Value =
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("batch record: {e}"));
    for meta in rec["spouts"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        for r in meta["ranges"].as_array().into_iter().flatten() {
            if let (Some(p), Some(to)) = (r["partition"].as_i64(), r["to"].as_i64()) {
                out.insert(p as i32, to);
            }
        }
    }
    out
}
