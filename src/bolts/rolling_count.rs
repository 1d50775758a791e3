//! `rolling_count`: counts per key over a sliding time window (length and slide), emitting
//! `(key, count, window_start, window_end, final)` for every key of the window at each
//! slide boundary, as Storm's RollingCountBolt. Keys that left the window are emitted once with count 0, so
//! downstream rankings drop them.

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::{BatchCounts, add_key_counts, key_of, key_text};
use super::window_mark::FINAL_FIELD;
use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{
    Bolt, ComponentError, ComponentResult, OutputDeclarer, TaskContext, snapshot,
};
use crate::data::columns::Columns;
use crate::data::tuple::{Fields, Tuple, Value};
use crate::io::clock::{Clock, WallClock};
use crate::state::TxValue;
use crate::window::sliding::SlidingWindowCounter;

/// Options of the `rolling_count` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RollingCountConfig {
    /// The key field (default: the first field of the input).
    pub field: Option<String>,
    /// Window length (a multiple of `slide`).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub slide: Duration,
}

impl Default for RollingCountConfig {
    fn default() -> Self {
        RollingCountConfig {
            field: None,
            window: Duration::from_secs(60),
            slide: Duration::from_secs(10),
        }
    }
}

impl ComponentConfig for RollingCountConfig {
    const NAME: &'static str = "rolling_count";
    const DESCRIPTION: &'static str =
        "sliding-window count per key (window, slide); emits (key, count) every slide";
}

impl BoltConfig for RollingCountConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        let (w, s) = (
            self.window.as_millis() as u64,
            self.slide.as_millis() as u64,
        );
        SlidingWindowCounter::<CompactString>::new(w, s, 0)
            .map_err(|e| BuildError::Invalid(format!("window {w} ms / slide {s} ms: {e}")))?;
        let cfg = self.clone();
        Ok(Arc::new(move || {
            Box::new(RollingCountBolt::with_clock(
                cfg.clone(),
                Arc::new(WallClock),
            ))
        }))
    }
}

pub struct RollingCountBolt {
    cfg: RollingCountConfig,
    clock: Arc<dyn Clock>,
    window: Option<SlidingWindowCounter<CompactString>>,
    /// Micro-batch mode: the window as transactional state. Time is the batch's time,
    /// recorded with the batch, so a replay lands in the same slots.
    state: Option<TxValue<SlidingWindowCounter<CompactString>>>,
    /// Micro-batch mode: this batch's counts.
    batch: BatchCounts,
}

/// The state in a snapshot of `rolling_count` (see [`crate::component::snapshot`]):
/// `{"window":{...}}`, the sliding window as micro-batch mode stores it: its slots of
/// counts per key, the open slot and the end of the open slot (`next_boundary_ms`, ms of
/// the clock, a multiple of the slide), so that a bolt restoring it later moves it on at
/// its next tick as if it had been running all along.
#[derive(Serialize)]
struct Snapshot<'a> {
    window: &'a SlidingWindowCounter<CompactString>,
}

#[derive(Deserialize)]
struct Restored {
    window: SlidingWindowCounter<CompactString>,
}

impl RollingCountBolt {
    /// A bolt reading time from `clock` (tests inject a manual clock). Slide boundaries
    /// fall on multiples of `slide` of the clock, so tasks sharing a clock share them.
    pub fn with_clock(cfg: RollingCountConfig, clock: Arc<dyn Clock>) -> Self {
        let slide = (cfg.slide.as_millis() as u64).max(1);
        let now = clock.now_ms();
        let window =
            SlidingWindowCounter::new(cfg.window.as_millis() as u64, slide, now - now % slide).ok();
        RollingCountBolt {
            cfg,
            clock,
            window,
            state: None,
            batch: BatchCounts::default(),
        }
    }

    fn slide_ms(&self) -> u64 {
        (self.cfg.slide.as_millis() as u64).max(1)
    }

    /// Micro-batch mode: the newest window (a new one aligned on the batch time).
    fn batch_window(&self, time_ms: u64) -> Option<SlidingWindowCounter<CompactString>> {
        let state = self.state.as_ref()?;
        state.get().or_else(|| {
            let slide = self.slide_ms();
            SlidingWindowCounter::new(
                self.cfg.window.as_millis() as u64,
                slide,
                time_ms - time_ms % slide,
            )
            .ok()
        })
    }

    /// The start of the window that ends at `end` (ms since the Unix epoch).
    fn start_of(&self, end: u64) -> i64 {
        (end as i64).saturating_sub(self.cfg.window.as_millis() as i64)
    }

    /// Emits the counts of the window `[window_start, window_end)` (ms since the Unix
    /// epoch), each tagged with both bounds and whether it is the final window, then the
    /// punctuation that tells every downstream task this task is done with the window.
    fn emit_window(
        &mut self,
        mut counts: Vec<(CompactString, u64)>,
        window_start: i64,
        window_end: i64,
        is_final: bool,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        counts.sort_unstable();
        let (start, end, fin) = (
            Value::Int(window_start),
            Value::Int(window_end),
            Value::Bool(is_final),
        );
        for (k, c) in counts {
            out.emit_unanchored(
                crate::data::tuple::DEFAULT_STREAM,
                crate::values![
                    Value::Str(k),
                    Value::Int(c as i64),
                    start.clone(),
                    end.clone(),
                    fin.clone()
                ],
            )?;
        }
        out.emit_broadcast(
            crate::data::tuple::DEFAULT_STREAM,
            crate::values![Value::Null, Value::Int(0), start, end, fin],
        )
    }
}

impl Bolt for RollingCountBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new([
            "key",
            "count",
            "window_start",
            "window_end",
            FINAL_FIELD,
        ]));
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        if let Some(s) = ctx.state() {
            self.state = Some(s.value("window")?);
        }
        Ok(())
    }

    /// Micro-batch mode: moves the window to the batch's time (emitting the windows that
    /// closed), then adds the batch's counts.
    fn finish_batch(&mut self, batch: &BatchInfo, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(mut w) = self.batch_window(batch.time_ms) else {
            return Ok(());
        };
        if let Some(e) = w.advance(batch.time_ms) {
            let start = self.start_of(e.boundary_ms);
            self.emit_window(e.counts, start, e.boundary_ms as i64, false, out)?;
        }
        let mut counts: Vec<(CompactString, u64)> = self.batch.drain().collect();
        counts.sort_unstable();
        for (k, n) in counts {
            w.incr(k, n);
        }
        if let Some(s) = &self.state {
            s.put(batch.txid, w);
        }
        Ok(())
    }

    /// The stored window is cut into slots of `slide` over `window`, counting `field`.
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::options::pick(&self.cfg, &["field", "window", "slide"])
    }

    /// Event mode's window (micro-batch mode keeps it in the state store). A bolt built
    /// with a window its options reject (see `build`) has none and takes no snapshot.
    fn snapshot(&self) -> Option<Result<Vec<u8>, ComponentError>> {
        if self.state.is_some() {
            return None;
        }
        let state = Snapshot {
            window: self.window.as_ref()?,
        };
        Some(snapshot::encode(
            RollingCountConfig::NAME,
            &self.state_options(),
            &state,
        ))
    }

    /// The window restored keeps its slots' times: the next tick moves it to the clock's
    /// time, dropping the counts that left the window meanwhile and emitting (once) the
    /// window of the latest boundary crossed, as a late tick does.
    fn restore(&mut self, bytes: &[u8]) -> ComponentResult {
        if self.state.is_some() {
            return Err("rolling_count: micro-batch mode restores from its state store".into());
        }
        let r: Restored = snapshot::decode(RollingCountConfig::NAME, &self.state_options(), bytes)?;
        let w = r.window;
        let (window, slide) = (self.cfg.window.as_millis() as u64, self.slide_ms());
        if (w.window_ms(), w.slide_ms()) != (window, slide) {
            return Err(format!(
                "rolling_count: cannot restore: corrupt snapshot: its window is {} ms sliding by {} ms, its options say {window} ms by {slide} ms",
                w.window_ms(),
                w.slide_ms()
            )
            .into());
        }
        if !w.next_boundary_ms().is_multiple_of(slide) {
            return Err(format!(
                "rolling_count: cannot restore: corrupt snapshot: its next boundary ({} ms) is not a multiple of the slide ({slide} ms)",
                w.next_boundary_ms()
            )
            .into());
        }
        self.window = Some(w);
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
        add_key_counts(&mut self.batch, input, self.cfg.field.as_deref())?;
        Some(Ok(Columns::empty()))
    }

    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(k) = key_of(&input, self.cfg.field.as_deref()) else {
            return Err(format!("rolling_count: no key field in {}", input.fields()).into());
        };
        let key = key_text(k);
        if self.state.is_some() {
            // Micro-batch mode: the batch's counts, added in `finish_batch`.
            *self.batch.entry(key).or_insert(0) += 1;
            return Ok(());
        }
        if let Some(w) = &mut self.window {
            w.incr(key, 1);
        }
        Ok(())
    }

    /// Ticks come several times per slide; only a crossed boundary emits, so late or
    /// repeated ticks never double-count.
    fn tick_interval(&self) -> Option<Duration> {
        Some((self.cfg.slide / 10).clamp(Duration::from_millis(5), Duration::from_millis(500)))
    }

    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        let now = self.clock.now_ms();
        let Some(e) = self.window.as_mut().and_then(|w| w.advance(now)) else {
            return Ok(());
        };
        let start = self.start_of(e.boundary_ms);
        self.emit_window(e.counts, start, e.boundary_ms as i64, false, out)
    }

    /// The final window (`final` = true): everything still in the window, including the
    /// open slide, tagged with the end of that slide (the first boundary after the run's
    /// last tuple). Event mode first emits the windows whose boundaries passed since the
    /// last tick; micro-batch mode's final pass did so in `finish_batch`.
    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        let held = |w: &SlidingWindowCounter<CompactString>| (w.snapshot(), w.next_boundary_ms());
        let window = match &self.state {
            Some(s) => s.get().map(|w| held(&w)),
            None => {
                self.tick(out)?;
                self.window.as_ref().map(held)
            }
        };
        let (counts, end) = match window {
            Some(held) => held,
            None => {
                let now = self.clock.now_ms();
                (Vec::new(), now - now % self.slide_ms() + self.slide_ms())
            }
        };
        let start = self.start_of(end);
        self.emit_window(counts, start, end as i64, true, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::testkit::{BoltHarness, Step, assert_snapshot_resumes};
    use crate::io::clock::ManualClock;

    fn harness(clock: &ManualClock) -> BoltHarness {
        let cfg = RollingCountConfig {
            field: None,
            window: Duration::from_secs(30),
            slide: Duration::from_secs(10),
        };
        BoltHarness::new(
            Box::new(RollingCountBolt::with_clock(cfg, Arc::new(clock.clone()))),
            Fields::new(["hashtag"]),
        )
    }

    /// The counts of one emission, and the window its punctuation closed.
    fn window(v: Vec<crate::data::tuple::Values>) -> (Vec<(String, i64)>, Option<i64>) {
        let mut counts = Vec::new();
        let mut closed = None;
        for t in v {
            match &t[0] {
                Value::Null => closed = t[3].as_int(),
                k => {
                    assert_eq!(t[3].as_int(), closed.or(t[3].as_int()));
                    counts.push((k.to_string(), t[1].as_int().unwrap_or(-1)));
                }
            }
        }
        (counts, closed)
    }

    #[test]
    fn counts_leave_after_window_and_late_ticks_do_not_double_count() {
        let clock = ManualClock::new(0);
        let mut h = harness(&clock);
        for _ in 0..3 {
            h.execute(crate::values!["rust"]).ok();
        }
        clock.set(9_999);
        assert!(h.tick().unwrap_or_default().is_empty(), "no boundary yet");
        clock.set(10_000);
        assert_eq!(
            window(h.tick().unwrap_or_default()),
            (vec![("rust".into(), 3)], Some(10_000))
        );
        assert!(
            h.tick().unwrap_or_default().is_empty(),
            "same boundary: no second emission"
        );
        h.execute(crate::values!["go"]).ok();
        // A tick 2 slides late emits once, for the latest boundary.
        clock.set(30_000);
        assert_eq!(
            window(h.tick().unwrap_or_default()),
            (vec![("go".into(), 1), ("rust".into(), 3)], Some(30_000))
        );
        // rust was counted in [0,10s): it has left the 30 s window at 40 s.
        clock.set(40_000);
        assert_eq!(
            window(h.tick().unwrap_or_default()),
            (vec![("go".into(), 1)], Some(40_000))
        );
    }

    /// The `(window_start, window_end, final)` of each tuple of `emitted`, read by name
    /// through the fields the bolt declares (as `rank` reads them), and whether it is a
    /// punctuation.
    fn bounds(
        emitted: &[crate::data::tuple::Values],
    ) -> Vec<(bool, Option<i64>, Option<i64>, bool)> {
        let mut declared = OutputDeclarer::default();
        harness_bolt(&ManualClock::new(0)).declare_outputs(&mut declared);
        let fields = declared
            .fields_of(crate::data::tuple::DEFAULT_STREAM)
            .cloned()
            .unwrap_or_else(|| panic!("no default stream declared"));
        emitted
            .iter()
            .map(|v| {
                let t = Tuple::new_detached(
                    "counts",
                    crate::data::tuple::DEFAULT_STREAM,
                    fields.clone(),
                    v.clone(),
                );
                (
                    super::super::window_mark::is_punctuation(&t),
                    super::super::window_mark::window_start(&t),
                    super::super::window_mark::window_end(&t),
                    super::super::window_mark::is_final(&t),
                )
            })
            .collect()
    }

    fn harness_bolt(clock: &ManualClock) -> RollingCountBolt {
        RollingCountBolt::with_clock(
            RollingCountConfig {
                field: None,
                window: Duration::from_secs(30),
                slide: Duration::from_secs(10),
            },
            Arc::new(clock.clone()),
        )
    }

    /// Every tuple of a window, its punctuation included, carries the window's bounds:
    /// `window_start` is `window_end` minus the window (30 s here), for the windows that
    /// close at a slide boundary and for the final one.
    #[test]
    fn every_tuple_carries_its_window_start_and_end() {
        let clock = ManualClock::new(100_000);
        let mut h = harness(&clock);
        h.execute(crate::values!["a"]).ok();
        h.execute(crate::values!["b"]).ok();
        clock.set(110_000);
        let closed = h.tick().unwrap_or_default();
        assert_eq!(
            bounds(&closed),
            vec![
                (false, Some(80_000), Some(110_000), false),
                (false, Some(80_000), Some(110_000), false),
                (true, Some(80_000), Some(110_000), false),
            ]
        );
        clock.set(125_000);
        h.execute(crate::values!["c"]).ok();
        // 120 s passed unticked: that window first, then the final one, ending at 130 s.
        let out = h.finish().unwrap_or_default();
        let marks: Vec<_> = bounds(&out).into_iter().filter(|b| b.0).collect();
        assert_eq!(
            marks,
            vec![
                (true, Some(90_000), Some(120_000), false),
                (true, Some(100_000), Some(130_000), true),
            ]
        );
        assert!(
            bounds(&out)
                .iter()
                .all(|(_, s, e, _)| s.zip(*e).is_some_and(|(s, e)| e - s == 30_000)),
            "{out:?}"
        );
    }

    #[test]
    fn boundaries_are_aligned_to_multiples_of_the_slide() {
        let clock = ManualClock::new(12_345);
        let mut h = harness(&clock);
        h.execute(crate::values!["a"]).ok();
        clock.set(19_999);
        assert!(h.tick().unwrap_or_default().is_empty());
        clock.set(20_000);
        assert_eq!(
            window(h.tick().unwrap_or_default()),
            (vec![("a".into(), 1)], Some(20_000))
        );
    }

    /// `(window_end, final)` of each punctuation of an emission.
    fn marks(v: &[crate::data::tuple::Values]) -> Vec<(Option<i64>, Option<bool>)> {
        v.iter()
            .filter(|t| t[0] == Value::Null)
            .map(|t| (t[3].as_int(), t.get(4).and_then(Value::as_bool)))
            .collect()
    }

    #[test]
    fn finish_flushes_the_open_slide_with_its_real_end_marked_final() {
        let clock = ManualClock::new(0);
        let mut h = harness(&clock);
        h.execute(crate::values!["a"]).ok();
        clock.set(5_000);
        let out = h.finish().unwrap_or_default();
        assert_eq!(marks(&out), vec![(Some(10_000), Some(true))]);
        assert!(
            out.iter().all(|t| t[4] == Value::Bool(true)),
            "every tuple of the final window is marked: {out:?}"
        );
        assert_eq!(window(out), (vec![("a".into(), 1)], Some(10_000)));
    }

    #[test]
    fn finish_after_an_unticked_boundary_closes_that_window_first() {
        let clock = ManualClock::new(0);
        let mut h = harness(&clock);
        h.execute(crate::values!["a"]).ok();
        assert!(h.tick().unwrap_or_default().is_empty());
        // The last tuple came after the 10 s boundary, before any tick saw it (it counts in
        // the slide the tick closes, as every tuple between two ticks): the final window
        // ends after it, at 20 s, not at 10 s.
        clock.set(12_000);
        h.execute(crate::values!["b"]).ok();
        let out = h.finish().unwrap_or_default();
        assert_eq!(
            marks(&out),
            vec![(Some(10_000), Some(false)), (Some(20_000), Some(true))]
        );
        let closed = out.iter().take_while(|t| t[0] != Value::Null).count() + 1;
        let (closed, fin) = out.split_at(closed);
        assert_eq!(
            window(closed.to_vec()),
            (vec![("a".into(), 1), ("b".into(), 1)], Some(10_000))
        );
        assert_eq!(
            window(fin.to_vec()),
            (vec![("a".into(), 1), ("b".into(), 1)], Some(20_000))
        );
    }

    #[test]
    fn a_restored_window_resumes_across_slides_late_ticks_and_the_final_flush() {
        let clock = ManualClock::new(0);
        let c = |ms| Step::Clock(clock.clone(), ms);
        let x = |k: &str| Step::Execute(crate::values![k]);
        let steps = [
            c(1_000),
            x("a"),
            x("a"),
            x("b"),
            c(9_999),
            Step::Tick,
            x("c"),
            c(10_000),
            Step::Tick,
            x("a"),
            c(15_000),
            Step::Tick,
            x("d"),
            c(20_001),
            Step::Tick,
            x("e"),
            // Two slides late: 30 s and 40 s crossed, emitted once (for 40 s).
            c(45_000),
            x("e"),
            Step::Tick,
            // More than a window late: everything before 40 s has left.
            c(75_000),
            x("f"),
            Step::Tick,
            c(82_000),
            x("g"),
            Step::Finish,
        ];
        let out = assert_snapshot_resumes(&|| harness(&clock), &steps);
        assert_eq!(
            marks(&out),
            [10_000, 20_000, 40_000, 70_000, 80_000]
                .map(|e| (Some(e), Some(false)))
                .into_iter()
                .chain([(Some(90_000), Some(true))])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_window_restored_later_drops_what_left_and_emits_the_latest_boundary_once() {
        let clock = ManualClock::new(0);
        let mut h = harness(&clock);
        h.execute(crate::values!["old"]).ok();
        clock.set(10_000);
        assert_eq!(window(h.tick().unwrap_or_default()).1, Some(10_000));
        h.execute(crate::values!["new"]).ok();
        clock.set(12_000);
        let bytes = h.snapshot().and_then(Result::ok).unwrap_or_default();
        // Restored by a process made 30 s later: at 42 s the window is [10 s, 40 s).
        clock.set(42_000);
        let mut later = harness(&clock);
        assert!(later.restore(&bytes).is_ok());
        assert_eq!(
            window(later.tick().unwrap_or_default()),
            (vec![("new".into(), 1)], Some(40_000))
        );
        assert!(later.tick().unwrap_or_default().is_empty());
    }

    #[test]
    fn a_snapshot_of_another_window_or_a_corrupt_one_is_refused() {
        let clock = ManualClock::new(0);
        let mut h = harness(&clock);
        h.execute(crate::values!["a"]).ok();
        let bytes = h.snapshot().and_then(Result::ok).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            text.starts_with(
                r#"{"version":1,"bolt":"rolling_count","options":{"field":null,"slide":"10s","window":"30s"},"state":{"window":{"#
            ),
            "{text}"
        );
        let other = RollingCountConfig {
            field: None,
            window: Duration::from_secs(60),
            slide: Duration::from_secs(10),
        };
        let e = BoltHarness::new(
            Box::new(RollingCountBolt::with_clock(other, Arc::new(clock.clone()))),
            Fields::new(["hashtag"]),
        )
        .restore(&bytes)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("option `window` is 30s in the snapshot and 1m in this bolt"),
            "{e}"
        );
        let refused = |text: String| {
            harness(&clock)
                .restore(text.as_bytes())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        // A window of 2 slots that holds together, where the options say 3.
        let e = refused(
            text.replace(r#""window_ms":30000"#, r#""window_ms":20000"#)
                .replace(r#""slots":[{"a":1},{},{}]"#, r#""slots":[{"a":1},{}]"#),
        );
        assert!(
            e.contains("its window is 20000 ms sliding by 10000 ms"),
            "{e}"
        );
        let e = refused(text.replace(r#""window_ms":30000"#, r#""window_ms":20000"#));
        assert!(e.contains("3 slots, where a 20000 ms window"), "{e}");
        let e = refused(text.replace(r#""next_boundary_ms":10000"#, r#""next_boundary_ms":10001"#));
        assert!(e.contains("not a multiple of the slide"), "{e}");
        let e = refused(text.replace(r#""head":0"#, r#""head":7"#));
        assert!(e.contains("open slot 7 of 3"), "{e}");
    }

    #[test]
    fn rejects_window_not_multiple_of_slide() {
        let cfg = RollingCountConfig {
            field: None,
            window: Duration::from_secs(25),
            slide: Duration::from_secs(10),
        };
        assert!(cfg.build().is_err());
    }
}
