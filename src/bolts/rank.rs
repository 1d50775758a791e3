//! `rank`: per-task top-k (intermediate rankings). Windowed input (`key, count,
//! window_start, window_end, final` from `rolling_count`): emits the partial ranking of a
//! window, with the window's start and end, as soon as every upstream task has punctuated
//! it; the final window (`final` = true, the flush at the end of a run) with the latest end
//! its upstream tasks gave it and the start of that latest window. Running input (`key,
//! count`, e.g. from `count`): emits its ranking (start and end null) every `emit_every`
//! when it changed, and at the end of the input.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::key_text;
use super::ranking_value::to_value;
use super::rolling_count::{KEEP_UNTIL_FIELD, UPDATE_FIELD};
use super::window_mark::{
    FINAL_FIELD, WindowId, WindowMarks, is_punctuation, passed_by, window_of, window_start,
};
use crate::bolts::fired_windows::FiredWindows;
use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{
    Bolt, ComponentError, ComponentResult, OutputDeclarer, TaskContext, snapshot,
};
use crate::data::tuple::{Fields, Tuple, Value};
use crate::state::TxValue;
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
    /// Running mode (input without `window_end`, e.g. from `count`).
    rankings: Option<Rankings<CompactString>>,
    changed: bool,
    /// Windowed mode: the ranking of each window still being received.
    windows: BTreeMap<WindowId, Rankings<CompactString>>,
    marks: WindowMarks,
    /// The start of each window still being received (the final window's is
    /// `final_start`); none for input without `window_start`.
    starts: BTreeMap<WindowId, i64>,
    /// The latest end given to the final window so far.
    final_end: Option<i64>,
    /// The start of the window that ends at `final_end`.
    final_start: Option<i64>,
    upstream: usize,
    /// Micro-batch mode: the running ranking as transactional state.
    state: Option<TxValue<Rankings<CompactString>>>,
    /// Event time: until when each window still being received may be updated.
    keep: BTreeMap<WindowId, i64>,
    /// Event time: windows emitted that late tuples may still update.
    fired: FiredWindows<Rankings<CompactString>>,
}

/// The state in a snapshot of `rank` (see [`crate::component::snapshot`]): the running
/// ranking (`running`, `{"k":top,"items":[["key",count],...]}`) and whether it changed
/// since it was last emitted (`changed`); the ranking of each window still being received
/// (`windows`, a list of `[window, ranking]` pairs, a window being `{"Closed":end}` or
/// `"Final"`), the punctuations counted per window (`marks`, `{"seen":[[window,n],...]}`),
/// the start of each of these windows (`starts`, a list of `[window, start]` pairs), the
/// latest end given to the final window (`final_end`) and the start of that window
/// (`final_start`). A snapshot without `starts` or `final_start` restores with unknown
/// starts.
#[derive(Serialize)]
struct Snapshot<'a> {
    running: Option<&'a Rankings<CompactString>>,
    changed: bool,
    windows: Vec<(WindowId, &'a Rankings<CompactString>)>,
    marks: &'a WindowMarks,
    starts: Vec<(WindowId, i64)>,
    final_end: Option<i64>,
    final_start: Option<i64>,
}

#[derive(Deserialize)]
struct Restored {
    running: Option<Rankings<CompactString>>,
    changed: bool,
    windows: Vec<(WindowId, Rankings<CompactString>)>,
    marks: WindowMarks,
    #[serde(default)]
    starts: Vec<(WindowId, i64)>,
    final_end: Option<i64>,
    #[serde(default)]
    final_start: Option<i64>,
}

impl RankBolt {
    pub fn new(cfg: RankConfig) -> Self {
        let rankings = Rankings::new(cfg.top).ok();
        RankBolt {
            cfg,
            rankings,
            changed: false,
            windows: BTreeMap::new(),
            marks: WindowMarks::default(),
            starts: BTreeMap::new(),
            final_end: None,
            final_start: None,
            upstream: 1,
            state: None,
            keep: BTreeMap::new(),
            fired: FiredWindows::default(),
        }
    }

    /// Emits the running ranking (`is_final`: the flush at the end of the run).
    fn emit_running(&mut self, is_final: bool, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.changed = false;
        let r = self
            .rankings
            .as_ref()
            .map(|r| r.as_slice().to_vec())
            .unwrap_or_default();
        out.emit_unanchored(
            crate::data::tuple::DEFAULT_STREAM,
            crate::values![
                to_value(&r),
                Value::Null,
                Value::Null,
                Value::Bool(is_final),
                Value::Bool(false),
                Value::Null
            ],
        )
    }

    /// Emits the partial ranking of `window` with its bounds (and forgets older windows).
    fn emit_window(&mut self, window: WindowId, out: &mut BoltCollector<'_>) -> ComponentResult {
        let ranking = self.windows.remove(&window);
        let r = ranking
            .as_ref()
            .map(|r| r.as_slice().to_vec())
            .unwrap_or_default();
        self.windows = self.windows.split_off(&window);
        let start = self.starts.remove(&window);
        self.starts = self.starts.split_off(&window);
        let keep = self.keep.remove(&window);
        self.keep = self.keep.split_off(&window);
        let (start, end, is_final) = match window {
            WindowId::Closed(end) => (start, end, false),
            WindowId::Final => (self.final_start, self.final_end.unwrap_or_default(), true),
        };
        // Event time: kept while late tuples may still update it.
        if let (Some(k), Some(ranking)) = (keep, ranking)
            && k > end
        {
            self.fired.insert(end, (start, ranking, k));
        }
        out.emit_unanchored(
            crate::data::tuple::DEFAULT_STREAM,
            crate::values![
                to_value(&r),
                start.map_or(Value::Null, Value::Int),
                Value::Int(end),
                Value::Bool(is_final),
                Value::Bool(false),
                keep.map_or(Value::Null, Value::Int)
            ],
        )
    }

    /// Event time: a late tuple updated the count of `key` in the window that ended at
    /// `end`, already emitted: emits that window's ranking again, marked `update`.
    fn update_fired(
        &mut self,
        end: i64,
        key: CompactString,
        count: u64,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        let Some((start, ranking, keep)) = self.fired.get_mut(end) else {
            return Ok(());
        };
        ranking.update(key, count);
        let values = crate::values![
            to_value(ranking.as_slice()),
            start.map_or(Value::Null, Value::Int),
            Value::Int(end),
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(*keep)
        ];
        out.emit_unanchored(crate::data::tuple::DEFAULT_STREAM, values)
    }

    /// The window of a windowed tuple; notes its start, and the final window's latest end
    /// (with the start of that latest window).
    fn window_of(&mut self, input: &Tuple) -> Option<WindowId> {
        let (id, end) = window_of(input)?;
        let start = window_start(input);
        match id {
            WindowId::Final => {
                if Some((end, start)) > self.final_end.map(|e| (e, self.final_start)) {
                    self.final_end = Some(end);
                    self.final_start = start;
                }
            }
            WindowId::Closed(_) => {
                if let Some(start) = start {
                    self.starts.entry(id).or_insert(start);
                }
            }
        }
        Some(id)
    }
}

impl Bolt for RankBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new([
            "rankings",
            "window_start",
            "window_end",
            FINAL_FIELD,
            UPDATE_FIELD,
            KEEP_UNTIL_FIELD,
        ]));
    }

    /// Event time: the windows the watermark passed are complete (every upstream task sent
    /// its counts before passing the watermark on): their rankings are emitted in order.
    /// Windows that late tuples can no longer update are forgotten.
    fn on_watermark(&mut self, watermark: i64, out: &mut BoltCollector<'_>) -> ComponentResult {
        let due = passed_by(self.windows.keys().copied(), watermark);
        for w in due {
            self.emit_window(w, out)?;
        }
        self.fired.expire(watermark);
        Ok(())
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.upstream = ctx.expected_partials().max(1);
        self.fired.prepare(ctx.state())?;
        if let Some(s) = ctx.state() {
            let state: TxValue<Rankings<CompactString>> = s.value("rankings")?;
            if let Some(r) = state.get() {
                self.rankings = Some(r);
            }
            self.state = Some(state);
        }
        Ok(())
    }

    /// The stored ranking keeps `top` keys (`emit_every` only paces event mode).
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::options::pick(&self.cfg, &["top"])
    }

    /// Micro-batch mode: a changed running ranking is stored and emitted once per batch.
    fn finish_batch(&mut self, batch: &BatchInfo, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.fired.store(batch.txid);
        if !self.changed {
            return Ok(());
        }
        if let (Some(s), Some(r)) = (&self.state, &self.rankings) {
            s.put(batch.txid, r.clone());
        }
        self.emit_running(false, out)
    }

    /// Event mode's rankings and window marks (micro-batch mode keeps its running ranking
    /// in the state store).
    fn snapshot(&self) -> Option<Result<Vec<u8>, ComponentError>> {
        if self.state.is_some() {
            return None;
        }
        let state = Snapshot {
            running: self.rankings.as_ref(),
            changed: self.changed,
            windows: self.windows.iter().map(|(w, r)| (*w, r)).collect(),
            marks: &self.marks,
            starts: self.starts.iter().map(|(w, s)| (*w, *s)).collect(),
            final_end: self.final_end,
            final_start: self.final_start,
        };
        Some(snapshot::encode(
            RankConfig::NAME,
            &self.state_options(),
            &state,
        ))
    }

    fn restore(&mut self, bytes: &[u8]) -> ComponentResult {
        if self.state.is_some() {
            return Err("rank: micro-batch mode restores from its state store".into());
        }
        let r: Restored = snapshot::decode(RankConfig::NAME, &self.state_options(), bytes)?;
        let top = self.cfg.top;
        let other_k = r
            .running
            .iter()
            .chain(r.windows.iter().map(|(_, w)| w))
            .find(|w| w.k() != top);
        if let Some(w) = other_k {
            return Err(format!(
                "rank: cannot restore: corrupt snapshot: a ranking of {} keys, where top is {top}",
                w.k()
            )
            .into());
        }
        self.rankings = r.running;
        self.changed = r.changed;
        self.windows = r.windows.into_iter().collect();
        self.marks = r.marks;
        self.starts = r.starts.into_iter().collect();
        self.final_end = r.final_end;
        self.final_start = r.final_start;
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        if is_punctuation(&input) {
            let Some(w) = self.window_of(&input) else {
                return Err("rank: a punctuation tuple without window_end".into());
            };
            if self.marks.mark(w, self.upstream) {
                self.emit_window(w, out)?;
            }
            return Ok(());
        }
        let (Some(k), Some(c)) = (input.value(0), input.get_int("count")) else {
            return Err(
                format!("rank: expected (key, count), got fields {}", input.fields()).into(),
            );
        };
        let key = key_text(k);
        if let Some(w) = self.window_of(&input) {
            if let (WindowId::Closed(end), Some(true)) =
                (w, input.get(UPDATE_FIELD).and_then(Value::as_bool))
                && !self.windows.contains_key(&w)
                && self.fired.contains(end)
            {
                return self.update_fired(end, key, c.max(0) as u64, out);
            }
            if let Some(k) = input.get(KEEP_UNTIL_FIELD).and_then(Value::as_int) {
                self.keep.entry(w).or_insert(k);
            }
            if c > 0 {
                let top = self.cfg.top;
                let r = self.windows.entry(w).or_insert_with(|| {
                    Rankings::new(top).unwrap_or_else(|_| unreachable!("top checked by build"))
                });
                r.update(key, c as u64);
            }
            return Ok(());
        }
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

    /// Running mode: emits the ranking when it changed.
    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.changed {
            self.emit_running(false, out)
        } else {
            Ok(())
        }
    }

    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        // Windows whose punctuation never completed (an upstream task stopped early).
        while let Some((&w, _)) = self.windows.iter().next() {
            self.emit_window(w, out)?;
        }
        if self.changed {
            self.emit_running(true, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::testkit::{BoltHarness, Step, assert_snapshot_resumes};

    fn harness(top: usize, input: &[&str], expected: usize) -> BoltHarness {
        let f = RankConfig {
            top,
            ..Default::default()
        }
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
        BoltHarness::with_expected_partials(f(), Fields::new(input.iter().copied()), expected)
    }

    const WINDOWED: &[&str] = &["key", "count", "window_start", "window_end", "final"];

    /// The windows of these tests are 5 s long.
    const WINDOW: i64 = 5_000;

    fn x(key: &str, count: i64, end: i64, fin: bool) -> Step {
        Step::Execute(crate::values![key, count, end - WINDOW, end, fin])
    }

    fn mark(end: i64, fin: bool) -> Step {
        Step::Execute(crate::values![Value::Null, 0, end - WINDOW, end, fin])
    }

    /// `(window_start, window_end, final)` of each ranking emitted.
    fn tags(out: &[crate::data::tuple::Values]) -> Vec<(Value, Value, Value)> {
        out.iter()
            .map(|v| (v[1].clone(), v[2].clone(), v[3].clone()))
            .collect()
    }

    #[test]
    fn a_restored_rank_completes_the_windows_it_was_receiving() {
        let steps = [
            x("a", 3, 10_000, false),
            x("b", 2, 10_000, false),
            x("c", 1, 10_000, false),
            mark(10_000, false),
            x("a", 1, 20_000, false),
            mark(10_000, false),
            x("c", 4, 20_000, false),
            mark(20_000, false),
            mark(20_000, false),
            // Only one of two punctuations: still open at the end.
            x("d", 2, 25_000, false),
            mark(25_000, false),
            x("a", 5, 30_000, true),
            mark(30_000, true),
            x("b", 1, 35_000, true),
            Step::Finish,
        ];
        let out = assert_snapshot_resumes(&|| harness(2, WINDOWED, 2), &steps);
        // Each window with its start; the final one with the start of its latest end.
        assert_eq!(
            tags(&out),
            [
                (Value::Int(5_000), Value::Int(10_000), Value::Bool(false)),
                (Value::Int(15_000), Value::Int(20_000), Value::Bool(false)),
                (Value::Int(20_000), Value::Int(25_000), Value::Bool(false)),
                (Value::Int(30_000), Value::Int(35_000), Value::Bool(true)),
            ]
        );
    }

    #[test]
    fn a_restored_rank_keeps_its_running_ranking_and_whether_it_changed() {
        let x = |k: &str, c: i64| Step::Execute(crate::values![k, c]);
        let steps = [
            x("a", 3),
            x("b", 1),
            Step::Tick,
            Step::Tick,
            x("a", 0),
            x("c", 2),
            Step::Tick,
            x("d", 1),
            Step::Finish,
        ];
        let out = assert_snapshot_resumes(&|| harness(2, &["key", "count"], 1), &steps);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(
            tags(&out)
                .iter()
                .all(|(s, e, _)| (s, e) == (&Value::Null, &Value::Null)),
            "running rankings have no window: {out:?}"
        );
    }

    #[test]
    fn counts_punctuations_up_to_the_expected_partials() {
        let mut h = harness(2, WINDOWED, 3);
        for _ in 0..2 {
            assert_eq!(
                h.step(&mark(10_000, false)),
                Vec::<crate::data::tuple::Values>::new()
            );
        }
        assert_eq!(h.step(&mark(10_000, false)).len(), 1);
    }

    #[test]
    fn a_snapshot_with_another_top_or_of_another_bolt_is_refused() {
        let mut h = harness(2, WINDOWED, 2);
        h.step(&x("a", 3, 10_000, false));
        let bytes = h.snapshot().and_then(Result::ok).unwrap_or_default();
        let refused = |mut h: BoltHarness| h.restore(&bytes).err().map(|e| e.to_string());
        let e = refused(harness(3, WINDOWED, 2)).unwrap_or_default();
        assert!(
            e.contains("option `top` is 2 in the snapshot and 3 in this bolt"),
            "{e}"
        );
        assert_eq!(refused(harness(2, WINDOWED, 2)), None);
        let f = crate::bolts::count::CountConfig::default()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let e = BoltHarness::new(f(), Fields::new(["key"]))
            .restore(&bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("of a `rank` bolt, not of a `count` bolt"), "{e}");
    }
}
