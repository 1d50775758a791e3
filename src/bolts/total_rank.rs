//! `total_rank`: merges the intermediate rankings of every `rank` task into the global
//! top-k (keep it at parallelism 1, with a global grouping). Windowed rankings: the total of
//! a window is emitted once every `rank` task has sent its partial of that window, so a
//! table never mixes windows, with the window's start and end; the final window (`final` =
//! true) carries the latest end its partials gave it and the start of that latest window.
//! Running rankings: the latest partial of each task replaces its previous one, emitted
//! (start and end null) every `emit_every` when changed.
//!
//! A partial is that of the task that sent it, or, when the input has a `__partition`
//! field ([`PARTITION_FIELD`], distributed mode), that of the partition it names; a window
//! is complete with [`TaskContext::expected_partials`] partials.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranking_value::{Ranking, from_value, to_value};
use super::rolling_count::{KEEP_UNTIL_FIELD, UPDATE_FIELD};
use super::window_mark::{FINAL_FIELD, WindowId, passed_by, window_of, window_start};
use crate::bolts::fired_windows::FiredWindows;
use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{
    Bolt, ComponentError, ComponentResult, OutputDeclarer, TaskContext, snapshot,
};
use crate::data::tuple::{Fields, Tuple, Value};
use crate::metrics::Topk;
use crate::state::TxValue;
use crate::window::rankings::top_k_of;

/// The input field naming the partition a partial ranking is of (distributed mode): when
/// a tuple has it (an integer), its partial replaces the previous partial of that
/// partition, whichever task sent it, rather than that of the task that sent it.
pub const PARTITION_FIELD: &str = "__partition";

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
                starts: BTreeMap::new(),
                final_end: None,
                final_start: None,
                final_emitted: None,
                final_emitted_start: None,
                owed_final: false,
                ctx: None,
                state: None,
                keep: BTreeMap::new(),
                fired: FiredWindows::default(),
            })
        }))
    }
}

pub struct TotalRankBolt {
    cfg: TotalRankConfig,
    /// Running mode: the latest partial of each upstream task (or partition).
    partials: BTreeMap<u32, Ranking>,
    changed: bool,
    /// Windowed mode: per window, the partial of each upstream task (or partition)
    /// received so far.
    windows: BTreeMap<WindowId, BTreeMap<u32, Ranking>>,
    /// The start of each window still being received (the final window's is
    /// `final_start`); none for partials without `window_start`.
    starts: BTreeMap<WindowId, i64>,
    /// The latest end given to the final window so far.
    final_end: Option<i64>,
    /// The start of the window that ends at `final_end`.
    final_start: Option<i64>,
    /// The final window's partials and end, once emitted (kept in snapshots).
    final_emitted: Option<(BTreeMap<u32, Ranking>, i64)>,
    /// The start of the final window emitted.
    final_emitted_start: Option<i64>,
    /// Restored from a snapshot taken after the final window was emitted: its delivery
    /// is not known, so `finish` emits it again (at least once).
    owed_final: bool,
    ctx: Option<TaskContext>,
    /// Micro-batch mode: the running partials as transactional state.
    state: Option<TxValue<BTreeMap<u32, Ranking>>>,
    /// Event time: until when each window still being received may be updated.
    keep: BTreeMap<WindowId, i64>,
    /// Event time: windows emitted that late tuples may still update, by end: (start,
    /// partials, until when).
    fired: FiredWindows<BTreeMap<u32, Ranking>>,
}

/// The state in a snapshot of `total_rank` (see [`crate::component::snapshot`]): the
/// latest running partial of each task or partition (`partials`, `{"3":[["key",count],
/// ...],...}`) and whether they changed since last emitted (`changed`); the partials of
/// each window still being received (`windows`, a list of `[window, partials]` pairs, a
/// window being `{"Closed":end}` or `"Final"`), the start of each of these windows
/// (`starts`, a list of `[window, start]` pairs), the latest end given to the final window
/// (`final_end`) and the start of that window (`final_start`); once the final window was
/// emitted, its partials and end (`final_emitted`, `[partials, end]`) and its start
/// (`final_emitted_start`). A snapshot without the starts restores with unknown starts.
#[derive(Serialize)]
struct Snapshot<'a> {
    partials: &'a BTreeMap<u32, Ranking>,
    changed: bool,
    windows: Vec<(WindowId, &'a BTreeMap<u32, Ranking>)>,
    starts: Vec<(WindowId, i64)>,
    final_end: Option<i64>,
    final_start: Option<i64>,
    final_emitted: Option<&'a (BTreeMap<u32, Ranking>, i64)>,
    final_emitted_start: Option<i64>,
}

#[derive(Deserialize)]
struct Restored {
    partials: BTreeMap<u32, Ranking>,
    changed: bool,
    windows: Vec<(WindowId, BTreeMap<u32, Ranking>)>,
    #[serde(default)]
    starts: Vec<(WindowId, i64)>,
    final_end: Option<i64>,
    #[serde(default)]
    final_start: Option<i64>,
    #[serde(default)]
    final_emitted: Option<(BTreeMap<u32, Ranking>, i64)>,
    #[serde(default)]
    final_emitted_start: Option<i64>,
}

/// The bounds of the window a ranking is of (ms since the Unix epoch): its start (none when
/// the input did not give it) and its end.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bounds {
    start: Option<i64>,
    end: i64,
}

impl TotalRankBolt {
    /// How many partials make a window (or the first running total) complete.
    fn upstream(&self) -> usize {
        self.ctx
            .as_ref()
            .map_or(1, |c| c.expected_partials().max(1))
    }

    /// The options recorded in a snapshot: `top` (the partials do not depend on it, but a
    /// total restored under another `top` would not continue the tables emitted so far).
    fn snapshot_options(&self) -> crate::state::StateOptions {
        crate::state::options::pick(&self.cfg, &["top"])
    }

    /// Whose partial `input` is: its partition's (see [`PARTITION_FIELD`]) or its task's.
    fn partial_of(input: &Tuple) -> Result<u32, ComponentError> {
        match input.get(PARTITION_FIELD) {
            Some(Value::Int(p)) => u32::try_from(*p).map_err(|_| {
                format!("total_rank: `{PARTITION_FIELD}` is {p}, not a partition number").into()
            }),
            _ => Ok(input.source_task()),
        }
    }

    /// Emits the total of `partials`, of the window `window` (none: running rankings);
    /// `is_final`: the flush at the end of the run.
    fn emit<'a>(
        &self,
        partials: impl Iterator<Item = &'a Ranking>,
        window: Option<Bounds>,
        is_final: bool,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        self.emit_marked(partials, window, is_final, false, out)
    }

    /// [`emit`](Self::emit); `update`: the table of a window emitted before, again, with
    /// a late tuple (event time).
    fn emit_marked<'a>(
        &self,
        partials: impl Iterator<Item = &'a Ranking>,
        window: Option<Bounds>,
        is_final: bool,
        update: bool,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        let total = top_k_of(partials.flatten().cloned(), self.cfg.top);
        let (window_start, window_end) = (window.and_then(|w| w.start), window.map(|w| w.end));
        if let Some(ctx) = &self.ctx {
            ctx.report_topk_of(Topk {
                ranking: total.iter().map(|(k, c)| (k.to_string(), *c)).collect(),
                window_start,
                window_end,
                is_final,
            });
        }
        out.emit_unanchored(
            crate::data::tuple::DEFAULT_STREAM,
            crate::values![
                to_value(&total),
                window_start.map_or(Value::Null, Value::Int),
                window_end.map_or(Value::Null, Value::Int),
                Value::Bool(is_final),
                Value::Bool(update)
            ],
        )
    }

    /// Emits the total of `window` and forgets it and older windows.
    fn emit_window(&mut self, window: WindowId, out: &mut BoltCollector<'_>) -> ComponentResult {
        let parts = self.windows.remove(&window).unwrap_or_default();
        self.windows = self.windows.split_off(&window);
        let start = self.starts.remove(&window);
        self.starts = self.starts.split_off(&window);
        let (bounds, is_final) = match window {
            WindowId::Closed(end) => (Bounds { start, end }, false),
            WindowId::Final => (
                Bounds {
                    start: self.final_start,
                    end: self.final_end.unwrap_or_default(),
                },
                true,
            ),
        };
        self.emit(parts.values(), Some(bounds), is_final, out)?;
        let keep = self.keep.remove(&window);
        self.keep = self.keep.split_off(&window);
        if let Some(k) = keep
            && k > bounds.end
        {
            self.fired
                .insert(bounds.end, (bounds.start, parts.clone(), k));
        }
        if is_final {
            self.final_emitted = Some((parts, bounds.end));
            self.final_emitted_start = bounds.start;
            self.owed_final = false;
        }
        Ok(())
    }
}

impl Bolt for TotalRankBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new([
            "rankings",
            "window_start",
            "window_end",
            FINAL_FIELD,
            UPDATE_FIELD,
        ]));
    }

    /// Event time: the windows the watermark passed are complete (every upstream task sent
    /// its partial before passing the watermark on): their tables are emitted in order. At
    /// the end of the input (`i64::MAX`) the last is the final table, unless the input had
    /// a final window of its own (processing time). Windows that late tuples can no longer
    /// update are forgotten.
    fn on_watermark(&mut self, watermark: i64, out: &mut BoltCollector<'_>) -> ComponentResult {
        let due = passed_by(self.windows.keys().copied(), watermark);
        let n = due.len();
        for (i, w) in due.into_iter().enumerate() {
            let last = watermark == i64::MAX && i + 1 == n && self.final_end.is_none();
            if last && let WindowId::Closed(end) = w {
                // The last window of the run is its final one.
                let parts = self.windows.remove(&w).unwrap_or_default();
                let start = self.starts.remove(&w);
                self.windows.clear();
                self.starts.clear();
                let bounds = Bounds { start, end };
                self.emit(parts.values(), Some(bounds), true, out)?;
                self.final_emitted = Some((parts, end));
                self.final_emitted_start = start;
                self.final_end = Some(end);
                self.final_start = start;
                self.owed_final = false;
            } else {
                self.emit_window(w, out)?;
            }
        }
        self.fired.expire(watermark);
        Ok(())
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.ctx = Some(ctx.clone());
        self.fired.prepare(ctx.state())?;
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
        self.fired.store(batch.txid);
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
        let from = Self::partial_of(&input)?;
        match window_of(&input) {
            Some((WindowId::Closed(end), _))
                if input.get(UPDATE_FIELD).and_then(Value::as_bool) == Some(true)
                    && !self.windows.contains_key(&WindowId::Closed(end))
                    && self.fired.contains(end) =>
            {
                // Event time: a late tuple changed a window emitted before.
                let Some((start, parts, _)) = self.fired.get_mut(end) else {
                    return Ok(());
                };
                parts.insert(from, r);
                let bounds = Bounds { start: *start, end };
                let parts = parts.clone();
                self.emit_marked(parts.values(), Some(bounds), false, true, out)?;
            }
            Some((WindowId::Final, end))
                if self.final_emitted.is_some() && input.get(KEEP_UNTIL_FIELD).is_none() =>
            {
                // A final partial after the final table was emitted: one sent again (in
                // distributed mode, by the next holder of a partition whose end did not
                // get through). The final table is emitted again with it, complete, so
                // the last final table written has every partition's partial.
                let start = window_start(&input);
                let Some((parts, fend)) = &mut self.final_emitted else {
                    return Ok(());
                };
                // A partition's final partial does not go down: one sent again by an
                // end done again from a state that lost part of what the first end
                // emitted keeps the counts the first one gave.
                let merged = match parts.get(&from) {
                    Some(old) => {
                        let mut m: BTreeMap<_, u64> = old.iter().cloned().collect();
                        for (k, c) in r {
                            let e = m.entry(k).or_insert(0);
                            *e = (*e).max(c);
                        }
                        m.into_iter().collect()
                    }
                    None => r,
                };
                parts.insert(from, merged);
                if end > *fend {
                    *fend = end;
                    self.final_emitted_start = start;
                }
                let (parts, fend) = (parts.clone(), *fend);
                let bounds = Bounds {
                    start: self.final_emitted_start,
                    end: fend,
                };
                self.emit(parts.values(), Some(bounds), true, out)?;
            }
            Some((w, end)) => {
                // Event time: the window completes on the watermark, not on a count.
                let by_event_time = input.get(KEEP_UNTIL_FIELD).and_then(Value::as_int);
                if let Some(k) = by_event_time {
                    self.keep.entry(w).or_insert(k);
                }
                let start = window_start(&input);
                match w {
                    // The latest end, with the start of that window.
                    WindowId::Final => {
                        if Some((end, start)) > self.final_end.map(|e| (e, self.final_start)) {
                            self.final_end = Some(end);
                            self.final_start = start;
                        }
                    }
                    WindowId::Closed(_) => {
                        if let Some(start) = start {
                            self.starts.entry(w).or_insert(start);
                        }
                    }
                }
                let parts = self.windows.entry(w).or_default();
                parts.insert(from, r);
                if by_event_time.is_none() && parts.len() >= self.upstream() {
                    self.emit_window(w, out)?;
                }
            }
            None => {
                self.partials.insert(from, r);
                self.changed = true;
            }
        }
        Ok(())
    }

    /// Event mode's partials (micro-batch mode keeps its running partials in the state
    /// store).
    fn snapshot(&self) -> Option<Result<Vec<u8>, ComponentError>> {
        if self.state.is_some() {
            return None;
        }
        let state = Snapshot {
            partials: &self.partials,
            changed: self.changed,
            windows: self.windows.iter().map(|(w, p)| (*w, p)).collect(),
            starts: self.starts.iter().map(|(w, s)| (*w, *s)).collect(),
            final_end: self.final_end,
            final_start: self.final_start,
            final_emitted: self.final_emitted.as_ref(),
            final_emitted_start: self.final_emitted_start,
        };
        Some(snapshot::encode(
            TotalRankConfig::NAME,
            &self.snapshot_options(),
            &state,
        ))
    }

    fn restore(&mut self, bytes: &[u8]) -> ComponentResult {
        if self.state.is_some() {
            return Err("total_rank: micro-batch mode restores from its state store".into());
        }
        let r: Restored = snapshot::decode(TotalRankConfig::NAME, &self.snapshot_options(), bytes)?;
        self.partials = r.partials;
        self.changed = r.changed;
        self.windows = r.windows.into_iter().collect();
        self.starts = r.starts.into_iter().collect();
        self.final_end = r.final_end;
        self.final_start = r.final_start;
        self.owed_final = r.final_emitted.is_some();
        self.final_emitted = r.final_emitted;
        self.final_emitted_start = r.final_emitted_start;
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
        // A final emitted before this state was snapshotted, by a process that may have
        // died before its record was delivered: emitted again.
        if self.owed_final
            && let Some((parts, end)) = &self.final_emitted
        {
            self.owed_final = false;
            let bounds = Bounds {
                start: self.final_emitted_start,
                end: *end,
            };
            self.emit(parts.values(), Some(bounds), true, out)?;
        }
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
    use crate::component::testkit::{BoltHarness, Step, assert_snapshot_resumes};

    fn harness(top: usize, input: &[&str], expected: usize) -> BoltHarness {
        let f = TotalRankConfig {
            top,
            ..Default::default()
        }
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
        BoltHarness::with_expected_partials(f(), Fields::new(input.iter().copied()), expected)
    }

    const WINDOWED: &[&str] = &[
        "rankings",
        "window_start",
        "window_end",
        "final",
        PARTITION_FIELD,
    ];

    /// The windows of these tests are 5 s long.
    const WINDOW: i64 = 5_000;

    /// `(window_start, window_end, final)` of each ranking emitted.
    fn tags(out: &[crate::data::tuple::Values]) -> Vec<(Value, Value, Value)> {
        out.iter()
            .map(|v| (v[1].clone(), v[2].clone(), v[3].clone()))
            .collect()
    }

    fn ranking(items: &[(&str, u64)]) -> Value {
        let r: Ranking = items.iter().map(|(k, c)| ((*k).into(), *c)).collect();
        to_value(&r)
    }

    /// The partial of `partition` for the window ending at `end`.
    fn part(partition: i64, end: i64, fin: bool, items: &[(&str, u64)]) -> Step {
        Step::Execute(crate::values![
            ranking(items),
            end - WINDOW,
            end,
            fin,
            partition
        ])
    }

    #[test]
    fn partials_are_keyed_by_partition_and_a_window_waits_for_the_expected_number() {
        // Every partial comes from the same task (the harness's one upstream task).
        let mut t = harness(2, WINDOWED, 3);
        assert!(t.step(&part(0, 10_000, false, &[("a", 3)])).is_empty());
        assert!(t.step(&part(1, 10_000, false, &[("b", 5)])).is_empty());
        // A partition's partial again replaces its previous one.
        assert!(t.step(&part(1, 10_000, false, &[("b", 6)])).is_empty());
        let out = t.step(&part(2, 10_000, false, &[("c", 1), ("a", 1)]));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            from_value(&out[0][0]),
            Some(vec![("b".into(), 6), ("a".into(), 3)])
        );
        assert_eq!(
            tags(&out),
            [(Value::Int(5_000), Value::Int(10_000), Value::Bool(false))]
        );
        let e = t
            .execute(crate::values![ranking(&[]), 15_000, 20_000, false, -1])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`__partition` is -1"), "{e}");
    }

    #[test]
    fn a_restored_total_rank_completes_the_windows_it_was_receiving() {
        let steps = [
            part(0, 10_000, false, &[("a", 3), ("b", 1)]),
            part(1, 10_000, false, &[("c", 5)]),
            part(0, 20_000, false, &[("a", 4)]),
            part(2, 10_000, false, &[("d", 2)]),
            part(1, 20_000, false, &[("c", 1)]),
            part(2, 30_000, true, &[("d", 7)]),
            part(2, 20_000, false, &[]),
            part(0, 35_000, true, &[("a", 1)]),
            Step::Finish,
        ];
        let out = assert_snapshot_resumes(&|| harness(2, WINDOWED, 3), &steps);
        // The final window: the latest end among its partials, with that window's start.
        assert_eq!(
            tags(&out),
            [
                (Value::Int(5_000), Value::Int(10_000), Value::Bool(false)),
                (Value::Int(15_000), Value::Int(20_000), Value::Bool(false)),
                (Value::Int(30_000), Value::Int(35_000), Value::Bool(true)),
            ]
        );
    }

    /// Restored from a snapshot taken after its final was emitted, `total_rank` emits the
    /// final again when it finishes (the process that emitted it may have died before the
    /// record was delivered); without a restore, never twice.
    #[test]
    fn a_final_emitted_before_the_snapshot_is_emitted_again_after_a_restore() {
        let steps = [
            part(0, 35_000, true, &[("a", 4)]),
            part(1, 35_000, true, &[("b", 2)]),
            part(2, 30_000, true, &[("c", 9)]),
        ];
        let mut first = harness(2, WINDOWED, 3);
        let mut emitted = Vec::new();
        for s in &steps {
            emitted.extend(first.step(s));
        }
        assert_eq!(emitted.len(), 1, "{emitted:?}");
        assert!(first.step(&Step::Finish).is_empty(), "no second final");
        let bytes = first.snapshot().and_then(Result::ok).unwrap_or_default();
        let mut second = harness(2, WINDOWED, 3);
        second.restore(&bytes).unwrap();
        let again = second.step(&Step::Finish);
        assert_eq!(again, emitted, "the same final, again");
        assert_eq!(
            tags(&again),
            [(Value::Int(30_000), Value::Int(35_000), Value::Bool(true))]
        );
        assert!(second.step(&Step::Finish).is_empty(), "once");
    }

    /// A final partial sent again after the final table was emitted (the next holder of
    /// a partition re-ends it): the final is emitted again, with every partition's
    /// partial, and not as a new final window of that one partial at the end.
    #[test]
    fn a_final_partial_sent_again_updates_the_final_emitted() {
        let mut t = harness(2, WINDOWED, 3);
        let mut out = Vec::new();
        for s in [
            part(0, 35_000, true, &[("a", 4)]),
            part(1, 35_000, true, &[("b", 2)]),
            part(2, 35_000, true, &[("c", 9)]),
        ] {
            out.extend(t.step(&s));
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let again = t.step(&part(1, 35_000, true, &[("b", 3)]));
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(
            from_value(&again[0][0]),
            Some(vec![("c".into(), 9), ("a".into(), 4)])
        );
        assert_eq!(
            tags(&again),
            [(Value::Int(30_000), Value::Int(35_000), Value::Bool(true))]
        );
        let again = t.step(&part(0, 35_000, true, &[("a", 1), ("d", 5)]));
        assert_eq!(
            from_value(&again[0][0]),
            Some(vec![("c".into(), 9), ("d".into(), 5)])
        );
        // A poorer partial (an end done again from a state that lost part of it) does
        // not take anything away.
        let again = t.step(&part(2, 35_000, true, &[("e", 1)]));
        assert_eq!(
            from_value(&again[0][0]),
            Some(vec![("c".into(), 9), ("d".into(), 5)])
        );
        assert!(
            t.step(&Step::Finish).is_empty(),
            "no partial final at the end"
        );
    }

    /// Partials without `window_start` (of a bolt that does not give it) make rankings
    /// with a null start; running rankings have neither start nor end.
    #[test]
    fn a_window_without_a_start_has_a_null_start() {
        let mut t = harness(2, &["rankings", "window_end", "final"], 1);
        let out = t.step(&Step::Execute(crate::values![
            ranking(&[("a", 1)]),
            10_000,
            false
        ]));
        assert_eq!(
            tags(&out),
            [(Value::Null, Value::Int(10_000), Value::Bool(false))]
        );
        let mut t = harness(2, &["rankings"], 1);
        t.step(&Step::Execute(crate::values![ranking(&[("a", 1)])]));
        assert_eq!(
            tags(&t.step(&Step::Finish)),
            [(Value::Null, Value::Null, Value::Bool(true))]
        );
    }

    #[test]
    fn a_restored_total_rank_keeps_its_running_partials() {
        let x = |p: i64, items: &[(&str, u64)]| Step::Execute(crate::values![ranking(items), p]);
        let steps = [
            x(0, &[("a", 3)]),
            x(1, &[("b", 2)]),
            Step::Tick,
            x(2, &[("c", 9)]),
            Step::Tick,
            Step::Tick,
            x(0, &[("a", 1)]),
            Step::Tick,
            x(1, &[("b", 4)]),
            Step::Finish,
        ];
        let out =
            assert_snapshot_resumes(&|| harness(2, &["rankings", PARTITION_FIELD], 3), &steps);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            from_value(&out[2][0]),
            Some(vec![("c".into(), 9), ("b".into(), 4)])
        );
    }

    #[test]
    fn a_snapshot_with_another_top_is_refused() {
        let mut t = harness(2, WINDOWED, 3);
        t.step(&part(0, 10_000, false, &[("a", 3)]));
        let bytes = t.snapshot().and_then(Result::ok).unwrap_or_default();
        let refused = |mut h: BoltHarness| h.restore(&bytes).err().map(|e| e.to_string());
        let e = refused(harness(5, WINDOWED, 3)).unwrap_or_default();
        assert!(
            e.contains("option `top` is 2 in the snapshot and 5 in this bolt"),
            "{e}"
        );
        assert_eq!(refused(harness(2, WINDOWED, 3)), None);
    }

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
        let mut r = BoltHarness::new(
            rank(),
            Fields::new(["key", "count", "window_start", "window_end", "final"]),
        );
        let mut partials = Vec::new();
        for (key, count, end, fin) in [("a", 3, 10_000, false), ("a", 5, 20_000, true)] {
            r.execute(crate::values![key, count, end - WINDOW, end, fin])
                .ok();
            let mark = crate::values![Value::Null, 0, end - WINDOW, end, fin];
            partials.extend(r.execute(mark).unwrap_or_default());
        }
        let total = TotalRankConfig::default()
            .build()
            .ok()
            .unwrap_or_else(|| unreachable!());
        let mut t = BoltHarness::new(
            total(),
            Fields::new(["rankings", "window_start", "window_end", "final"]),
        );
        let mut out = Vec::new();
        for p in partials {
            out.extend(t.execute(p).unwrap_or_default());
        }
        out.extend(t.finish().unwrap_or_default());
        assert_eq!(
            tags(&out),
            [
                (Value::Int(5_000), Value::Int(10_000), Value::Bool(false)),
                (Value::Int(15_000), Value::Int(20_000), Value::Bool(true))
            ]
        );
        assert_eq!(
            t.context().topk.latest(),
            Some(Topk {
                ranking: vec![("a".into(), 5)],
                window_start: Some(15_000),
                window_end: Some(20_000),
                is_final: true,
            })
        );
    }
}
