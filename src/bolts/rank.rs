//! `rank`: per-task top-k of `(key, count)` updates (intermediate rankings), emitted as a
//! `rankings` value every `emit_every` when it changed, and at the end of the input.

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::key_text;
use super::ranking_value::to_value;
use crate::component::{Bolt, ComponentResult, OutputDeclarer};
use crate::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::runtime::BoltCollector;
use crate::topology::BoltFactory;
use crate::tuple::{Fields, Tuple};
use crate::window::rankings::Rankings;

/// Options of the `rank` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RankConfig {
    /// How many keys to keep.
    pub top: usize,
    #[serde(with = "humantime_serde")]
    pub emit_every: Duration,
}

impl Default for RankConfig {
    fn default() -> Self {
        RankConfig {
            top: 10,
            emit_every: Duration::from_secs(1),
        }
    }
}

impl ComponentConfig for RankConfig {
    const NAME: &'static str = "rank";
    const DESCRIPTION: &'static str =
        "per-task top-k of (key, count) updates; emits `rankings` when it changes";
}

impl BoltConfig for RankConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        Rankings::<CompactString>::new(self.top)
            .map_err(|e| BuildError::Invalid(format!("top: {e}")))?;
        if self.emit_every.is_zero() {
            return Err(BuildError::Invalid(
                "emit_every must be longer than 0".into(),
            ));
        }
        let cfg = self.clone();
        Ok(Arc::new(move || Box::new(RankBolt::new(cfg.clone()))))
    }
}

pub struct RankBolt {
    cfg: RankConfig,
    rankings: Option<Rankings<CompactString>>,
    changed: bool,
}

impl RankBolt {
    pub fn new(cfg: RankConfig) -> Self {
        let rankings = Rankings::new(cfg.top).ok();
        RankBolt {
            cfg,
            rankings,
            changed: false,
        }
    }

    fn emit(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.changed = false;
        let r = self
            .rankings
            .as_ref()
            .map(|r| r.as_slice().to_vec())
            .unwrap_or_default();
        out.emit_unanchored(crate::DEFAULT_STREAM, vec![to_value(&r)])
    }
}

impl Bolt for RankBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["rankings"]));
    }

    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let (Some(k), Some(c)) = (input.value(0), input.get_int("count")) else {
            return Err(
                format!("rank: expected (key, count), got fields {}", input.fields()).into(),
            );
        };
        let key = key_text(k);
        if let Some(r) = &mut self.rankings {
            if c <= 0 {
                if r.remove(&key).is_some() {
                    self.changed = true;
                }
            } else {
                r.update(key, c as u64);
                self.changed = true;
            }
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.cfg.emit_every)
    }

    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.changed { self.emit(out) } else { Ok(()) }
    }

    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.emit(out)
    }
}
