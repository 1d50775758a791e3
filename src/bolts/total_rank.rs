//! `total_rank`: merges the intermediate rankings of every `rank` task into the global
//! top-k (keep it at parallelism 1, with a global grouping). Windowed rankings: the total of
//! a window is emitted once every `rank` task has sent its partial of that window, so a
//! table never mixes windows; the final window (`final` = true) carries the latest end its
//! partials gave it. Running rankings: the latest partial of each task replaces
//! its previous one, emitted every `emit_every` when changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranking_value::{Ranking, from_value, to_value};
use super::window_mark::{FINAL_FIELD, WindowId, window_of};
use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{Bolt, ComponentResult, OutputDeclarer, TaskContext};
use crate::data::tuple::{Fields, Tuple, Value};
use crate::metrics::Topk;
use crate::state::TxValue;
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
                windows: BTreeMap::new(),
                final_end: None,
                ctx: None,
                state: None,
            })
        }))
    }
}

pub struct TotalRankBolt {
    cfg: TotalRankConfig,
    /// Running mode: the latest partial of each upstream task.
    partials: BTreeMap<u32, Ranking>,
    changed: bool,
    /// Windowed mode: per window, the partial of each upstream task received so far.
    windows: BTreeMap<WindowId, BTreeMap<u32, Ranking>>,
    /// The latest end given to the final window so far.
    final_end: Option<i64>,
    ctx: Option<TaskContext>,
    /// Micro-batch mode: the running partials as transactional state.
    state: Option<TxValue<BTreeMap<u32, Ranking>>>,
}

impl TotalRankBolt {
    fn upstream(&self) -> usize {
        self.ctx.as_ref().map_or(1, |c| c.upstream_tasks().max(1))
    }

    /// Emits the total of `partials`, of the window that ends at `window_end` (none:
    /// running rankings); `is_final`: the flush at the end of the run.
    fn emit<'a>(
        &self,
        partials: impl Iterator<Item = &'a Ranking>,
        window_end: Option<i64>,
        is_final: bool,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        let total = top_k_of(partials.flatten().cloned(), self.cfg.top);
        if let Some(ctx) = &self.ctx {
            ctx.report_topk_of(Topk {
                ranking: total.iter().map(|(k, c)| (k.to_string(), *c)).collect(),
                window_end,
                is_final,
            });
        }
        out.emit_unanchored(
            crate::data::tuple::DEFAULT_STREAM,
            crate::values![
                to_value(&total),
                window_end.map_or(Value::Null, Value::Int),
                Value::Bool(is_final)
            ],
        )
    }

    /// Emits the total of `window` and forgets it and older windows.
    fn emit_window(&mut self, window: WindowId, out: &mut BoltCollector<'_>) -> ComponentResult {
        let parts = self.windows.remove(&window).unwrap_or_default();
        self.windows = self.windows.split_off(&window);
        let (end, is_final) = match window {
            WindowId::Closed(end) => (end, false),
            WindowId::Final => (self.final_end.unwrap_or_default(), true),
        };
        self.emit(parts.values(), Some(end), is_final, out)
    }
}

impl Bolt for TotalRankBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["rankings", "window_end", FINAL_FIELD]));
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.ctx = Some(ctx.clone());
        if let Some(s) = ctx.state() {
            let state: TxValue<BTreeMap<u32, Ranking>> = s.value("partials")?;
            self.partials = state.get().unwrap_or_default();
            self.state = Some(state);
        }
        Ok(())
    }

    /// Micro-batch mode: changed partials are stored, and the total emitted, once per
    /// batch.
    fn finish_batch(&mut self, batch: &BatchInfo, out: &mut BoltCollector<'_>) -> ComponentResult {
        if !self.changed {
            return Ok(());
        }
        if let Some(s) = &self.state {
            s.put(batch.txid, self.partials.clone());
        }
        self.tick(out)
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(r) = input.get("rankings").and_then(from_value) else {
            return Err(format!(
                "total_rank: expected a `rankings` field, got {}",
                input.fields()
            )
            .into());
        };
        match window_of(&input) {
            Some((w, end)) => {
                if w == WindowId::Final {
                    self.final_end = Some(self.final_end.map_or(end, |e| e.max(end)));
                }
                let parts = self.windows.entry(w).or_default();
                parts.insert(input.source_task(), r);
                if parts.len() >= self.upstream() {
                    self.emit_window(w, out)?;
                }
            }
            None => {
                self.partials.insert(input.source_task(), r);
                self.changed = true;
            }
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.cfg.emit_every)
    }

    /// Running mode: emits when something changed, once every upstream task has sent a
    /// ranking (so the first tables are not missing a partition).
    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.changed && self.partials.len() >= self.upstream() {
            self.changed = false;
            self.emit(self.partials.values(), None, false, out)
        } else {
            Ok(())
        }
    }

    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        // Windows still missing a partial (an upstream task stopped early): best effort.
        while let Some((&w, _)) = self.windows.iter().next() {
            self.emit_window(w, out)?;
        }
        if self.changed || !self.partials.is_empty() {
            self.changed = false;
            self.emit(self.partials.values(), None, true, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolts::rank::RankConfig;
    use crate::component::testkit::BoltHarness;

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

    #[test]
    fn windows_keep_their_real_end_and_only_the_final_one_is_final() {
        let rank = RankConfig::default()
            .build()
            .ok()
            .unwrap_or_else(|| unreachable!());
        let mut r = BoltHarness::new(rank(), Fields::new(["key", "count", "window_end", "final"]));
        let mut partials = Vec::new();
        for (key, count, end, fin) in [("a", 3, 10_000, false), ("a", 5, 20_000, true)] {
            r.execute(crate::values![key, count, end, fin]).ok();
            let mark = crate::values![Value::Null, 0, end, fin];
            partials.extend(r.execute(mark).unwrap_or_default());
        }
        let total = TotalRankConfig::default()
            .build()
            .ok()
            .unwrap_or_else(|| unreachable!());
        let mut t = BoltHarness::new(total(), Fields::new(["rankings", "window_end", "final"]));
        let mut out = Vec::new();
        for p in partials {
            out.extend(t.execute(p).unwrap_or_default());
        }
        out.extend(t.finish().unwrap_or_default());
        let tags: Vec<_> = out.iter().map(|v| (v[1].clone(), v[2].clone())).collect();
        assert_eq!(
            tags,
            [
                (Value::Int(10_000), Value::Bool(false)),
                (Value::Int(20_000), Value::Bool(true))
            ]
        );
        assert_eq!(
            t.context().topk.latest(),
            Some(Topk {
                ranking: vec![("a".into(), 5)],
                window_end: Some(20_000),
                is_final: true,
            })
        );
    }
}
