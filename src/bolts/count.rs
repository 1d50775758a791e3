//! `count`: running counts per key (fields-grouped), emitting `(key, count)` on each update.

use std::collections::HashMap;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::{key_of, key_text};
use crate::component::{Bolt, ComponentResult, OutputDeclarer};
use crate::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::runtime::BoltCollector;
use crate::topology::BoltFactory;
use crate::tuple::{Fields, Tuple, Value};

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
                counts: HashMap::new(),
            })
        }))
    }
}

#[derive(Clone)]
pub struct CountBolt {
    field: Option<String>,
    counts: HashMap<CompactString, u64>,
}

impl Bolt for CountBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["key", "count"]));
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(k) = key_of(&input, self.field.as_deref()) else {
            return Err(format!("count: no key field in {}", input.fields()).into());
        };
        let key = key_text(k);
        let c = self.counts.entry(key.clone()).or_insert(0);
        *c += 1;
        let c = *c as i64;
        out.emit(crate::values![Value::Str(key), Value::Int(c)])
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::run_bolt;
    use crate::tuple::{Fields, Value};

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
