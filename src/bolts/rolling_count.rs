//! `rolling_count`: counts per key over a sliding time window (length and slide), emitting
//! `(key, count, window_start, window_end, final)` for every key of the window at each
//! slide boundary, as Storm's RollingCountBolt. Keys that left the window are emitted once with count 0, so
//! downstream rankings drop them.

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::{BatchCounts, add_key_counts, key_column, key_of, key_text};
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
use crate::window::event_windows::EventWindows;
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
    /// Which clock windows follow: `processing` (when squall sees a tuple) or `event`
    /// (when its message happened, as its source's `event_time` option says).
    pub time: TimeKind,
    /// Event time: how long after a window fired a late tuple still updates it (the
    /// window is emitted again, marked `update`); later tuples go to the `late` stream.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
}

/// The clock of `rolling_count`'s windows.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TimeKind {
    #[default]
    Processing,
    Event,
}

impl Default for RollingCountConfig {
    fn default() -> Self {
        RollingCountConfig {
            field: None,
            window: Duration::from_secs(60),
            slide: Duration::from_secs(10),
            time: TimeKind::Processing,
            allowed_lateness: Duration::ZERO,
        }
    }
}

/// The stream of tuples later than `allowed_lateness` (event time).
pub const LATE_STREAM: &str = "late";
/// The field that is true on a window emitted again for a late tuple (event time).
pub const UPDATE_FIELD: &str = "update";
/// Until when (ms since the Unix epoch) a window may still be updated (event time).
pub const KEEP_UNTIL_FIELD: &str = "keep_until";

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
        if self.time == TimeKind::Processing && !self.allowed_lateness.is_zero() {
            return Err(BuildError::Invalid(
                "allowed_lateness applies to time = \"event\" only".into(),
            ));
        }
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
    /// Event time: the windows by event time.
    events: Option<EventWindows<CompactString>>,
    /// Event time in micro-batch mode: the windows as transactional state, stored at
    /// the end of each batch (counts per window until no late tuple can update it).
    events_state: Option<TxValue<EventWindows<CompactString>>>,
}

fn ew_window_ms(cfg: &RollingCountConfig) -> i64 {
    i64::try_from(cfg.window.as_millis()).unwrap_or(i64::MAX)
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
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (window, events) = match cfg.time {
            TimeKind::Processing => (window, None),
            TimeKind::Event => (
                None,
                EventWindows::new(ms(cfg.window), ms(cfg.slide), ms(cfg.allowed_lateness)).ok(),
            ),
        };
        RollingCountBolt {
            cfg,
            clock,
            window,
            state: None,
            batch: BatchCounts::default(),
            events,
            events_state: None,
        }
    }

    /// Event time: a window that fired (or was updated), each count tagged with the
    /// window's bounds, `update`, and until when it may still be updated. No
    /// punctuation: downstream windows fire on the watermark that follows.
    fn emit_event_window(
        &mut self,
        counts: Vec<(CompactString, u64)>,
        (start, end, keep_until): (i64, i64, i64),
        update: bool,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        for (k, c) in counts {
            let values = crate::values![
                Value::Str(k),
                Value::Int(c as i64),
                Value::Int(start),
                Value::Int(end),
                Value::Bool(false),
                Value::Bool(update),
                Value::Int(keep_until)
            ];
            if update {
                // Anchored to the late input that caused it.
                out.emit(values)?;
            } else {
                out.emit_unanchored(crate::data::tuple::DEFAULT_STREAM, values)?;
            }
        }
        Ok(())
    }

    /// Event time: counts one input, updating fired windows within lateness; a later
    /// input goes to the `late` stream (acked with it) and is counted as late.
    fn execute_event(
        &mut self,
        key: CompactString,
        input: &Tuple,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        let Some(ew) = &mut self.events else {
            return Ok(());
        };
        let Some(t) = input.event_time() else {
            out.count_late(1);
            return out.emit_to(LATE_STREAM, crate::values![Value::Str(key), Value::Null]);
        };
        let p = ew.add(key.clone(), t, 1);
        if p.is_late() {
            out.count_late(1);
            return out.emit_to(LATE_STREAM, crate::values![Value::Str(key), Value::Int(t)]);
        }
        let window = ew_window_ms(&self.cfg);
        let lateness = i64::try_from(self.cfg.allowed_lateness.as_millis()).unwrap_or(i64::MAX);
        let updates: Vec<(i64, u64)> = p
            .updates
            .iter()
            .map(|&e| (e, ew.count_in(&key, e)))
            .collect();
        for (e, c) in updates {
            self.emit_event_window(
                vec![(key.clone(), c)],
                (e - window, e, e.saturating_add(lateness)),
                true,
                out,
            )?;
        }
        Ok(())
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
        if self.cfg.time == TimeKind::Event {
            out.declare(Fields::new([
                "key",
                "count",
                "window_start",
                "window_end",
                FINAL_FIELD,
                UPDATE_FIELD,
                KEEP_UNTIL_FIELD,
            ]));
            out.declare_stream(LATE_STREAM, Fields::new(["key", "event_time"]));
            return;
        }
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
            if self.cfg.time == TimeKind::Event {
                let state: TxValue<EventWindows<CompactString>> = s.value("events")?;
                if let Some(ew) = state.get() {
                    self.events = Some(ew);
                }
                self.events_state = Some(state);
                return Ok(());
            }
            self.state = Some(s.value("window")?);
        }
        Ok(())
    }

    /// Event time: the windows the watermark passed fire.
    fn on_watermark(&mut self, watermark: i64, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(ew) = &mut self.events else {
            return Ok(());
        };
        for f in ew.advance(watermark) {
            self.emit_event_window(f.counts, (f.start, f.end, f.keep_until), false, out)?;
        }
        Ok(())
    }

    /// Micro-batch mode: moves the window to the batch's time (emitting the windows that
    /// closed), then adds the batch's counts.
    /// Event time: the windows are stored as they are after the batch's tuples and its
    /// watermark (the runtime gave both before this).
    fn finish_batch(&mut self, batch: &BatchInfo, out: &mut BoltCollector<'_>) -> ComponentResult {
        if let (Some(s), Some(ew)) = (&self.events_state, &self.events) {
            s.put(batch.txid, ew.clone());
            return Ok(());
        }
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
        match self.cfg.time {
            TimeKind::Processing => {
                crate::state::options::pick(&self.cfg, &["field", "window", "slide"])
            }
            TimeKind::Event => crate::state::options::pick(
                &self.cfg,
                &["field", "window", "slide", "time", "allowed_lateness"],
            ),
        }
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

    /// Columns carry no event time: event time takes tuples.
    fn takes_columns(&self) -> bool {
        self.events.is_none()
    }

    fn execute_columns(
        &mut self,
        _batch: &BatchInfo,
        input: &Columns,
    ) -> Option<Result<Columns, ComponentError>> {
        if self.events.is_some() {
            return None;
        }
        if self.state.is_some() {
            add_key_counts(&mut self.batch, input, self.cfg.field.as_deref())?;
            return Some(Ok(Columns::empty()));
        }
        // Event mode, processing time: each row counts in the open slot, as in `execute`.
        let keys = key_column(input, self.cfg.field.as_deref())?;
        let w = self.window.as_mut()?;
        for k in keys.iter() {
            w.incr(compact_str::CompactString::from(k), 1);
        }
        Some(Ok(Columns::empty()))
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(k) = key_of(&input, self.cfg.field.as_deref()) else {
            return Err(format!("rolling_count: no key field in {}", input.fields()).into());
        };
        let key = key_text(k);
        if self.events.is_some() {
            return self.execute_event(key, &input, out);
        }
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
        if self.events.is_some() {
            return Ok(());
        }
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
        if self.events.is_some() {
            // Every window that holds a count fires (the end of time already did).
            return self.on_watermark(i64::MAX, out);
        }
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
            ..Default::default()
        };
        BoltHarness::new(
            Box::new(RollingCountBolt::with_clock(cfg, Arc::new(clock.clone()))),
            Fields::new(["hashtag"]),
        )
    }

    /// Event time: 30 s windows sliding by 10 s, late tuples update up to `lateness`.
    fn event_harness(lateness: Duration) -> BoltHarness {
        let cfg = RollingCountConfig {
            window: Duration::from_secs(30),
            slide: Duration::from_secs(10),
            time: TimeKind::Event,
            allowed_lateness: lateness,
            ..Default::default()
        };
        BoltHarness::new(
            Box::new(RollingCountBolt::with_clock(cfg, Arc::new(WallClock))),
            Fields::new(["hashtag"]),
        )
    }

    /// (stream, key, count, start, end, update) of what a step emitted.
    type Pane = (String, String, i64, i64, i64, bool);

    fn panes(out: Vec<crate::component::testkit::Emitted>) -> Vec<Pane> {
        out.into_iter()
            .map(|e| {
                let v = &e.values;
                let int = |i: usize| v.get(i).and_then(Value::as_int).unwrap_or(-1);
                (
                    e.stream.clone(),
                    v.first().map(|k| k.to_string()).unwrap_or_default(),
                    int(1),
                    int(2),
                    int(3),
                    v.get(5).and_then(Value::as_bool).unwrap_or(false),
                )
            })
            .collect()
    }

    fn pane(key: &str, count: i64, end_s: i64, update: bool) -> Pane {
        let d = crate::data::tuple::DEFAULT_STREAM.to_string();
        (
            d,
            key.into(),
            count,
            (end_s - 30) * 1000,
            end_s * 1000,
            update,
        )
    }

    #[test]
    fn event_windows_fire_on_the_watermark_in_order_and_out_of_order() {
        use crate::component::testkit::EventStep::{At, Watermark};
        let mut h = event_harness(Duration::ZERO);
        let steps = vec![
            At(crate::values!["a"], 12_000),
            At(crate::values!["b"], 5_000), // out of order, before the watermark passed it
            Watermark(9_999),
            Watermark(10_000),
            At(crate::values!["a"], 21_000),
            Watermark(30_000),
        ];
        let out: Vec<Vec<Pane>> = h
            .run_events(steps)
            .unwrap()
            .into_iter()
            .map(panes)
            .collect();
        assert!(out[0].is_empty() && out[1].is_empty() && out[2].is_empty());
        assert_eq!(out[3], vec![pane("b", 1, 10, false)]);
        assert_eq!(
            out[5],
            vec![
                pane("a", 1, 20, false),
                pane("b", 1, 20, false),
                pane("a", 2, 30, false),
                pane("b", 1, 30, false),
            ]
        );
        // The end of the input fires every window that holds a count.
        let end = panes(h.watermark(i64::MAX).unwrap());
        assert_eq!(end, vec![pane("a", 2, 40, false), pane("a", 1, 50, false)]);
    }

    /// Event time in micro-batch mode: the same bolt, its windows in the state store.
    fn batch_harness(lateness: Duration) -> crate::component::testkit::BatchHarness {
        let cfg = RollingCountConfig {
            window: Duration::from_secs(30),
            slide: Duration::from_secs(10),
            time: TimeKind::Event,
            allowed_lateness: lateness,
            ..Default::default()
        };
        crate::component::testkit::BatchHarness::new(
            move || {
                Box::new(RollingCountBolt::with_clock(
                    cfg.clone(),
                    Arc::new(WallClock),
                ))
            },
            Fields::new(["hashtag"]),
        )
    }

    /// In order, out of order before the watermark, late within lateness (an update),
    /// later than that (to `late`), then the end of the input.
    fn script() -> Vec<crate::component::testkit::EventStep> {
        use crate::component::testkit::EventStep::{At, Watermark};
        vec![
            At(crate::values!["a"], 12_000),
            At(crate::values!["b"], 5_000),
            Watermark(10_000),
            At(crate::values!["a"], 21_000),
            At(crate::values!["b"], 9_000), // late, within lateness: updates 10 s
            Watermark(20_000),
            At(crate::values!["c"], 25_000),
            Watermark(40_000),
            At(crate::values!["b"], 5_000), // every window of it fired > 5 s ago: late
            Watermark(41_000),
        ]
    }

    #[test]
    fn the_same_script_fires_the_same_panes_in_both_modes() {
        let mut event = event_harness(Duration::from_secs(5));
        let mut batch = batch_harness(Duration::from_secs(5));
        let one: Vec<Vec<Pane>> = event
            .run_events(script())
            .unwrap()
            .into_iter()
            .map(panes)
            .collect();
        let other: Vec<Vec<Pane>> = batch
            .run_events(script())
            .unwrap()
            .into_iter()
            .map(panes)
            .collect();
        assert_eq!(one, other);
        assert_eq!(one[2], vec![pane("b", 1, 10, false)]);
        assert_eq!(one[4], vec![pane("b", 2, 10, true)]);
        assert_eq!(one[8].len(), 1);
        assert_eq!(one[8][0].0, LATE_STREAM);
        assert_eq!(
            panes(event.watermark(i64::MAX).unwrap()),
            panes(batch.finish().unwrap())
        );
    }

    /// A failed batch's writes are dropped and the bolt made again from the committed
    /// windows: the replay fires what the failed attempt fired, and so does a restarted
    /// process; the run goes on as if nothing had failed.
    #[test]
    fn a_failed_or_restarted_batch_fires_the_same_panes_again() {
        let batches: Vec<(Vec<(crate::data::tuple::Values, i64)>, i64)> = vec![
            (
                vec![(crate::values!["a"], 3_000), (crate::values!["b"], 12_000)],
                10_000,
            ),
            (
                vec![(crate::values!["a"], 8_000), (crate::values!["a"], 14_000)],
                20_000,
            ),
            (vec![(crate::values!["c"], 21_000)], 40_000),
        ];
        let mut clean = batch_harness(Duration::from_secs(5));
        let want: Vec<_> = batches
            .iter()
            .map(|(t, w)| clean.run_batch(t.clone(), *w).unwrap())
            .collect();
        let mut h = batch_harness(Duration::from_secs(5));
        let mut got = Vec::new();
        for (i, (t, w)) in batches.iter().enumerate() {
            if i == 1 {
                let failed = h.fail_batch(t.clone(), *w).unwrap();
                assert_eq!(failed, want[i], "the failed attempt");
                h.restart().unwrap();
            }
            got.push(h.run_batch(t.clone(), *w).unwrap());
        }
        assert_eq!(got, want);
        assert_eq!(
            want[1].0[0].len(),
            1,
            "an update of the fired window: {want:?}"
        );
        assert_eq!(clean.finish().unwrap(), h.finish().unwrap());
    }

    #[test]
    fn late_tuples_update_within_lateness_and_go_to_the_late_stream_after() {
        let mut h = event_harness(Duration::from_secs(5));
        h.execute_at(crate::values!["a"], 3_000).unwrap();
        assert_eq!(
            panes(h.watermark(10_000).unwrap()),
            vec![pane("a", 1, 10, false)]
        );
        // Late, within lateness: the window is emitted again for its key, marked update.
        let out = panes(h.execute_at(crate::values!["a"], 4_000).unwrap());
        assert_eq!(out, vec![pane("a", 2, 10, true)]);
        // Beyond: every window of this tuple fired more than 5 s ago.
        h.watermark(40_000).unwrap();
        let out = h.execute_at(crate::values!["a"], 1_000).unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].stream, LATE_STREAM);
        assert_eq!(
            out[0].values.as_slice(),
            &[Value::from("a"), Value::Int(1_000)]
        );
        assert_eq!(
            out[0].event_time,
            Some(1_000),
            "late tuples keep their time"
        );
    }

    #[test]
    fn a_tuple_without_event_time_is_late() {
        let mut h = event_harness(Duration::ZERO);
        let out = h.execute(crate::values!["a"]).unwrap();
        assert_eq!(out, vec![crate::values!["a", Value::Null]]);
    }

    #[test]
    fn event_time_options_are_checked() {
        let c = RollingCountConfig {
            allowed_lateness: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(c.build().is_err(), "lateness needs time = event");
        let c: RollingCountConfig =
            toml::from_str("time = \"event\"\nallowed_lateness = \"5s\"").unwrap();
        assert_eq!(c.time, TimeKind::Event);
        assert!(c.build().is_ok());
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

    proptest::proptest! {
        /// Event mode: chunks of keys (the columnar path) count as the same keys one
        /// tuple at a time, across slides.
        #[test]
        fn chunks_count_as_their_rows_do(
            slides in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(0u8..12, 0..20), 0..4),
                1..5),
        ) {
            let (ct, cc) = (ManualClock::new(0), ManualClock::new(0));
            let (mut tuples, mut chunks) = (harness(&ct), harness(&cc));
            for (s, slide) in slides.iter().enumerate() {
                for chunk in slide {
                    let rows: Vec<_> =
                        chunk.iter().map(|k| crate::values![format!("k{k}")]).collect();
                    for r in &rows {
                        proptest::prop_assert!(tuples.execute(r.clone()).is_ok());
                    }
                    let out = chunks.execute_columns(&rows);
                    proptest::prop_assert!(matches!(out, Some(Ok(ref v)) if v.is_empty()));
                }
                let now = (s as u64 + 1) * 10_000;
                ct.set(now);
                cc.set(now);
                let (a, b) = (tuples.tick(), chunks.tick());
                proptest::prop_assert_eq!(
                    a.map(window).map_err(|e| e.to_string()),
                    b.map(window).map_err(|e| e.to_string())
                );
            }
        }
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
                ..Default::default()
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
            ..Default::default()
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
            ..Default::default()
        };
        assert!(cfg.build().is_err());
    }
}
