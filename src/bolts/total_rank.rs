//! `total_rank`: merges the intermediate rankings of every `rank` task into the global
//! top-k (keep it at parallelism 1, with a global grouping). The latest partial of each
//! upstream task replaces its previous one, so keys that fell out of a partial leave the
//! total too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranking_value::{Ranking, from_value, to_value};
use crate::component::{Bolt, ComponentResult, OutputDeclarer, TaskContext};
use crate::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::runtime::BoltCollector;
use crate::topology::BoltFactory;
use crate::tuple::{Fields, Tuple};
use crate::window::rankings::top_k_of;

/// Options of the `total_rank` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TotalRankConfig {
    pub top: usize,
    #[serde(with = "humantime_serde")]
    pub emit_every: Duration,
}

impl Default for TotalRankConfig {
    fn default() -> Self {
        TotalRankConfig {
            top: 10,
            emit_every: Duration::from_secs(1),
        }
    }
}

impl ComponentConfig for TotalRankConfig {
    const NAME: &'static str = "total_rank";
    const DESCRIPTION: &'static str =
        "merges partial rankings into the global top-k; emits `rankings` when it changes";
}

impl BoltConfig for TotalRankConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        if self.top == 0 || self.emit_every.is_zero() {
            return Err(BuildError::Invalid(
                "top and emit_every must be positive".into(),
            ));
        }
        let cfg = self.clone();
        Ok(Arc::new(move || {
            Box::new(TotalRankBolt {
                cfg: cfg.clone(),
                partials: BTreeMap::new(),
                changed: false,
                ctx: None,
            })
        }))
    }
}

pub struct TotalRankBolt {
    cfg: TotalRankConfig,
    partials: BTreeMap<u32, Ranking>,
    changed: bool,
    ctx: Option<TaskContext>,
}

impl TotalRankBolt {
    fn emit(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.changed = false;
        let all = self.partials.values().flatten().cloned();
        let total = top_k_of(all, self.cfg.top);
        if let Some(ctx) = &self.ctx {
            ctx.report_topk(total.iter().map(|(k, c)| (k.to_string(), *c)).collect());
        }
        out.emit_unanchored(crate::DEFAULT_STREAM, vec![to_value(&total)])
    }
}

impl Bolt for TotalRankBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["rankings"]));
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.ctx = Some(ctx.clone());
        Ok(())
    }

    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(r) = input.get("rankings").and_then(from_value) else {
            return Err(format!(
                "total_rank: expected a `rankings` field, got {}",
                input.fields()
            )
            .into());
        };
        self.partials.insert(input.source_task(), r);
        self.changed = true;
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.cfg.emit_every)
    }

    /// Emits when something changed, once every upstream task has sent a ranking (so
    /// the first tables are not missing a partition).
    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        let upstream = self.ctx.as_ref().map_or(1, |c| c.upstream_tasks());
        if self.changed && self.partials.len() >= upstream {
            self.emit(out)
        } else {
            Ok(())
        }
    }

    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.emit(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolts::rank::RankConfig;
    use crate::testkit::BoltHarness;

    #[test]
    fn rank_then_total_rank_gives_global_top_k() {
        let rank = RankConfig {
            top: 2,
            ..Default::default()
        };
        let f = rank.build().ok().unwrap_or_else(|| unreachable!());
        let mut h = BoltHarness::new(f(), Fields::new(["key", "count"]));
        for (k, c) in [("a", 5), ("b", 7), ("c", 1), ("a", 9)] {
            h.execute(crate::values![k, c]).ok();
        }
        let partial = h.finish().unwrap_or_default();
        let total = TotalRankConfig {
            top: 2,
            ..Default::default()
        };
        let f = total.build().ok().unwrap_or_else(|| unreachable!());
        let mut t = BoltHarness::new(f(), Fields::new(["rankings"]));
        t.execute(partial[0].clone()).ok();
        let out = t.finish().unwrap_or_default();
        let r = from_value(&out[0][0]).unwrap_or_default();
        assert_eq!(r, vec![("a".into(), 9), ("b".into(), 7)]);
    }
}
