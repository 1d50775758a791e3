//! `count`: running counts per key (fields-grouped), emitting `(key, count)` on each update.

use crate::data::hash::FastMap as HashMap;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::{BatchCounts, add_key_counts, key_of, key_text};
use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{
    Bolt, ComponentError, ComponentResult, OutputDeclarer, TaskContext, snapshot,
};
use crate::data::columns::Columns;
use crate::data::tuple::{Fields, Tuple, Value};
use crate::state::TxMap;

/// Options of the `count` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CountConfig {
    /// The key field (default: the first field of the input).
    pub field: Option<String>,
}

impl ComponentConfig for CountConfig {
    const NAME: &'static str = "count";
    const DESCRIPTION: &'static str = "running count per key; emits (key, count) on every update";
}

impl BoltConfig for CountConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        let cfg = self.clone();
        Ok(Arc::new(move || {
            Box::new(CountBolt {
                field: cfg.field.clone(),
                counts: HashMap::default(),
                state: None,
                batch: BatchCounts::default(),
            })
        }))
    }
}

pub struct CountBolt {
    field: Option<String>,
    counts: HashMap<CompactString, u64>,
    /// Micro-batch mode: the committed counts (with the txid of their last update).
    state: Option<TxMap<u64>>,
    /// Micro-batch mode: this batch's counts, added to the state in `finish_batch`.
    batch: BatchCounts,
}

/// The state in a snapshot of `count` (see [`crate::component::snapshot`]): the running
/// count of each key, `{"counts":{"key":n,...}}`.
#[derive(Serialize)]
struct Snapshot<'a> {
    counts: &'a HashMap<CompactString, u64>,
}

#[derive(Deserialize)]
struct Restored {
    counts: HashMap<CompactString, u64>,
}

impl CountBolt {
    fn key(&self, input: &Tuple) -> Result<CompactString, ComponentError> {
        match key_of(input, self.field.as_deref()) {
            Some(k) => Ok(key_text(k)),
            None => Err(format!("count: no key field in {}", input.fields()).into()),
        }
    }
}

impl Bolt for CountBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["key", "count"]));
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        if let Some(s) = ctx.state() {
            self.state = Some(s.map("counts")?);
        }
        Ok(())
    }

    /// The stored counts are per value of `field`.
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::StateOptions::from_iter([("field".to_string(), self.field.clone().into())])
    }

    /// Micro-batch mode: adds the batch's counts (combined in `execute`, Trident's
    /// combiner) to the state and emits each changed key's new count once.
    fn finish_batch(&mut self, batch: &BatchInfo, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let mut changed: Vec<(CompactString, u64)> = self.batch.drain().collect();
        changed.sort_unstable();
        for (k, n) in changed {
            let total = state.get(&k).unwrap_or(0) + n;
            if state.put(batch.txid, k.clone(), total) {
                out.emit(crate::values![Value::Str(k), Value::Int(total as i64)])?;
            }
        }
        Ok(())
    }

    fn takes_columns(&self) -> bool {
        true
    }

    fn execute_columns(
        &mut self,
        _batch: &BatchInfo,
        input: &Columns,
    ) -> Option<Result<Columns, ComponentError>> {
        self.state.as_ref()?;
        add_key_counts(&mut self.batch, input, self.field.as_deref())?;
        Some(Ok(Columns::empty()))
    }

    /// Event mode's running counts (micro-batch mode keeps them in the state store).
    fn snapshot(&self) -> Option<Result<Vec<u8>, ComponentError>> {
        if self.state.is_some() {
            return None;
        }
        let state = Snapshot {
            counts: &self.counts,
        };
        Some(snapshot::encode(
            CountConfig::NAME,
            &self.state_options(),
            &state,
        ))
    }

    fn restore(&mut self, bytes: &[u8]) -> ComponentResult {
        if self.state.is_some() {
            return Err("count: micro-batch mode restores from its state store".into());
        }
        let r: Restored = snapshot::decode(CountConfig::NAME, &self.state_options(), bytes)?;
        self.counts = r.counts;
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let key = self.key(&input)?;
        if self.state.is_some() {
            *self.batch.entry(key).or_insert(0) += 1;
            return Ok(());
        }
        let c = self.counts.entry(key.clone()).or_insert(0);
        *c += 1;
        let c = *c as i64;
        out.emit(crate::values![Value::Str(key), Value::Int(c)])
    }
}

#[cfg(test)]
mod tests {
    use crate::component::registry::BoltConfig;
    use crate::component::testkit::{BoltHarness, Step, assert_snapshot_resumes, run_bolt};
    use crate::data::tuple::{Fields, Value};

    fn harness(field: Option<&str>) -> BoltHarness {
        let cfg = super::CountConfig {
            field: field.map(str::to_string),
        };
        let f = cfg.build().unwrap_or_else(|e| panic!("{e}"));
        BoltHarness::new(f(), Fields::new(["word", "n"]))
    }

    #[test]
    fn a_restored_count_carries_on_counting() {
        let steps: Vec<Step> = ["a", "b", "a", "c", "a", "b"]
            .into_iter()
            .map(|w| Step::Execute(crate::values![w, 0]))
            .chain([Step::Finish])
            .collect();
        assert_snapshot_resumes(&|| harness(None), &steps);
    }

    #[test]
    fn a_snapshot_of_counts_by_another_field_is_refused() {
        let mut h = harness(None);
        h.execute(crate::values!["a", 1]).ok();
        let bytes = h.snapshot().and_then(Result::ok).unwrap_or_default();
        let e = harness(Some("n"))
            .restore(&bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("option `field` is (not set) in the snapshot and n in this bolt"),
            "{e}"
        );
        assert!(harness(None).restore(&bytes).is_ok());
        let e = harness(None)
            .restore(&bytes[..bytes.len() / 2])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("corrupt or truncated"), "{e}");
    }

    #[test]
    fn counts_per_key() {
        let out = run_bolt(
            &super::CountConfig::default(),
            Fields::new(["word"]),
            vec![
                crate::values!["a"],
                crate::values!["b"],
                crate::values!["a"],
            ],
        );
        assert_eq!(out[2], crate::values!["a", Value::from(2)]);
    }
}
