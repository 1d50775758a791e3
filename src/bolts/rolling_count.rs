//! `rolling_count`: counts per key over a sliding time window (length and slide), emitting
//! `(key, count)` for every key of the window at each slide boundary, as Storm's
//! RollingCountBolt. Keys that left the window are emitted once with count 0, so
//! downstream rankings drop them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::key_field::{key_of, key_text};
use crate::clock::{Clock, SystemClock};
use crate::component::{Bolt, ComponentResult, OutputDeclarer};
use crate::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::runtime::BoltCollector;
use crate::topology::BoltFactory;
use crate::tuple::{Fields, Tuple, Value};
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
                Arc::new(SystemClock::new()),
            ))
        }))
    }
}

pub struct RollingCountBolt {
    cfg: RollingCountConfig,
    clock: Arc<dyn Clock>,
    window: Option<SlidingWindowCounter<CompactString>>,
    last_emitted: HashSet<CompactString>,
}

impl RollingCountBolt {
    /// A bolt reading time from `clock` (tests inject a manual clock).
    pub fn with_clock(cfg: RollingCountConfig, clock: Arc<dyn Clock>) -> Self {
        let start = clock.now_ms();
        let window = SlidingWindowCounter::new(
            cfg.window.as_millis() as u64,
            cfg.slide.as_millis() as u64,
            start,
        )
        .ok();
        RollingCountBolt {
            cfg,
            clock,
            window,
            last_emitted: HashSet::new(),
        }
    }

    /// Emits `counts` plus a 0 for every key emitted last time and absent now.
    fn emit_counts(
        &mut self,
        mut counts: Vec<(CompactString, u64)>,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        counts.sort_unstable();
        let now: HashSet<CompactString> = counts.iter().map(|(k, _)| k.clone()).collect();
        let mut gone: Vec<CompactString> = self.last_emitted.difference(&now).cloned().collect();
        gone.sort_unstable();
        for (k, c) in counts {
            out.emit_unanchored(
                crate::DEFAULT_STREAM,
                crate::values![Value::Str(k), Value::Int(c as i64)],
            )?;
        }
        for k in gone {
            out.emit_unanchored(
                crate::DEFAULT_STREAM,
                crate::values![Value::Str(k), Value::Int(0)],
            )?;
        }
        self.last_emitted = now;
        Ok(())
    }
}

impl Bolt for RollingCountBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["key", "count"]));
    }

    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(k) = key_of(&input, self.cfg.field.as_deref()) else {
            return Err(format!("rolling_count: no key field in {}", input.fields()).into());
        };
        let key = key_text(k);
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
        self.emit_counts(e.counts, out)
    }

    /// The final window: everything still in it, including the open slide.
    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        let counts = self
            .window
            .as_ref()
            .map(|w| w.snapshot())
            .unwrap_or_default();
        self.emit_counts(counts, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::testkit::BoltHarness;

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

    fn pairs(v: Vec<crate::Values>) -> Vec<(String, i64)> {
        v.into_iter()
            .map(|t| (t[0].to_string(), t[1].as_int().unwrap_or(-1)))
            .collect()
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
        assert_eq!(pairs(h.tick().unwrap_or_default()), [("rust".into(), 3)]);
        assert!(
            h.tick().unwrap_or_default().is_empty(),
            "same boundary: no second emission"
        );
        h.execute(crate::values!["go"]).ok();
        // A tick 2 slides late emits once, for the latest boundary.
        clock.set(30_000);
        assert_eq!(
            pairs(h.tick().unwrap_or_default()),
            [("go".into(), 1), ("rust".into(), 3)]
        );
        // rust was counted in [0,10s): it leaves the 30 s window at 40 s, and is emitted
        // once with 0 so rankings drop it.
        clock.set(40_000);
        assert_eq!(
            pairs(h.tick().unwrap_or_default()),
            [("go".into(), 1), ("rust".into(), 0)]
        );
    }

    #[test]
    fn finish_flushes_the_open_slide() {
        let clock = ManualClock::new(0);
        let mut h = harness(&clock);
        h.execute(crate::values!["a"]).ok();
        clock.set(5_000);
        assert_eq!(pairs(h.finish().unwrap_or_default()), [("a".into(), 1)]);
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
