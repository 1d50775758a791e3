//! `chaos`: fault injection for drills — fails (or panics on) a seeded random share of
//! its inputs (event mode) or of its batches (micro-batch mode), or stalls (a stuck sink:
//! it blocks once for `stall_for`), so users can watch the guarantees hold on their own
//! topology. It emits nothing: subscribe it beside the real consumer of a stream; a
//! failure there fails the tuple's tree (or the whole batch), a stall backs everything
//! upstream up behind it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{Bolt, ComponentResult, TaskContext};
use crate::data::tuple::Tuple;

/// Options of the `chaos` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Share of inputs whose `execute` fails (event mode), 0..=1.
    pub fail_tuples: f64,
    /// Share of batches that fail (micro-batch mode), 0..=1. Every attempt draws anew,
    /// so a replayed batch eventually passes.
    pub fail_batches: f64,
    /// Panic instead of returning an error (tests supervision).
    pub panic: bool,
    pub seed: u64,
    /// Stall: block in `execute` (or `execute_batch`) for this long, once per task and
    /// run (a restarted task does not stall again), like a sink whose destination hangs.
    /// 0s: never.
    #[serde(with = "humantime_serde")]
    pub stall_for: Duration,
    /// When to stall: at the first input this long after the task's first input.
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            fail_tuples: 0.0,
            fail_batches: 0.0,
            panic: false,
            seed: 1,
            stall_for: Duration::ZERO,
            stall_after: Duration::ZERO,
        }
    }
}

impl ComponentConfig for ChaosConfig {
    const NAME: &'static str = "chaos";
    const DESCRIPTION: &'static str = "fault injection: fails a seeded share of its inputs (event) or batches (micro-batch), or stalls once";
}

impl BoltConfig for ChaosConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        for (k, v) in [
            ("fail_tuples", self.fail_tuples),
            ("fail_batches", self.fail_batches),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(BuildError::Invalid(format!(
                    "{k} must be between 0 and 1, got {v}"
                )));
            }
        }
        let cfg = self.clone();
        // The tasks that have stalled, shared by every instance the factory makes: a task
        // restarted after its stall (a reset in micro-batch mode) does not stall again.
        let stalled: Arc<Mutex<HashSet<u32>>> = Arc::default();
        Ok(Arc::new(move || {
            Box::new(ChaosBolt {
                cfg: cfg.clone(),
                rng: Xoshiro256PlusPlus::seed_from_u64(cfg.seed),
                failures: None,
                stall: (!cfg.stall_for.is_zero()).then(|| Stall {
                    tasks: stalled.clone(),
                    task: 0,
                    first_input: None,
                    done: false,
                    count: None,
                }),
            })
        }))
    }
}

pub struct ChaosBolt {
    cfg: ChaosConfig,
    rng: Xoshiro256PlusPlus,
    failures: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// `None` without `stall_for`.
    stall: Option<Stall>,
}

/// The stall of one task.
struct Stall {
    tasks: Arc<Mutex<HashSet<u32>>>,
    task: u32,
    first_input: Option<Instant>,
    done: bool,
    /// The `stalls` counter.
    count: Option<Arc<AtomicU64>>,
}

impl Stall {
    /// Blocks for `stall_for` if the time has come and this task has not stalled yet.
    fn input(&mut self, cfg: &ChaosConfig) {
        if self.done {
            return;
        }
        let now = Instant::now();
        let first = *self.first_input.get_or_insert(now);
        if now.duration_since(first) < cfg.stall_after {
            return;
        }
        self.done = true;
        let first_time = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.task);
        if first_time {
            if let Some(c) = &self.count {
                crate::component::incr(c);
            }
            tracing::warn!(
                "chaos: task {} stalls for {:?} (stall_for)",
                self.task,
                cfg.stall_for
            );
            std::thread::sleep(cfg.stall_for);
        }
    }
}

impl ChaosBolt {
    /// A uniform draw in [0, 1).
    fn draw(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn strike(&mut self, what: String) -> ComponentResult {
        if let Some(f) = &self.failures {
            crate::component::incr(f);
        }
        if self.cfg.panic {
            panic!("chaos: {what}");
        }
        Err(format!("chaos: {what}").into())
    }
}

impl Bolt for ChaosBolt {
    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        // Each task, and each restart of it (a reset after a failed batch), draws its own
        // sequence: a replay must not meet the same failure for ever.
        static PREPARES: AtomicU64 = AtomicU64::new(0);
        let n = PREPARES.fetch_add(1, Ordering::Relaxed);
        let salt = ((ctx.task_id() as u64) << 32)
            ^ std::process::id() as u64
            ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.rng = Xoshiro256PlusPlus::seed_from_u64(self.cfg.seed ^ salt);
        self.failures = Some(ctx.counter("injected_failures"));
        if let Some(s) = &mut self.stall {
            s.task = ctx.task_id();
            s.count = Some(ctx.counter("stalls"));
            s.done = s
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&s.task);
        }
        Ok(())
    }

    fn execute(&mut self, _input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(s) = &mut self.stall {
            s.input(&self.cfg);
        }
        if self.cfg.fail_tuples > 0.0 && self.draw() < self.cfg.fail_tuples {
            return self.strike("failing a tuple".into());
        }
        Ok(())
    }

    fn execute_batch(
        &mut self,
        _batch: &BatchInfo,
        tuples: Vec<Tuple>,
        _out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        if let Some(s) = &mut self.stall
            && !tuples.is_empty()
        {
            s.input(&self.cfg);
        }
        Ok(())
    }

    fn finish_batch(&mut self, batch: &BatchInfo, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.cfg.fail_batches > 0.0 && self.draw() < self.cfg.fail_batches {
            return self.strike(format!("failing batch {}", batch.txid));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::testkit::BoltHarness;
    use crate::data::tuple::{Fields, Value};

    fn timed(h: &mut BoltHarness) -> Duration {
        let t = Instant::now();
        let r = h.execute(vec![Value::from("x")]);
        assert!(r.is_ok(), "{r:?}");
        t.elapsed()
    }

    #[test]
    fn a_stall_blocks_once_per_task_and_not_again_after_a_restart() {
        let stall = Duration::from_millis(200);
        let cfg = ChaosConfig {
            stall_for: stall,
            ..Default::default()
        };
        let factory = cfg.build().unwrap_or_else(|e| panic!("{e}"));
        let mut h = BoltHarness::new(factory(), Fields::new(["k"]));
        assert!(timed(&mut h) >= stall, "the first input stalls");
        assert!(timed(&mut h) < stall, "only once");
        // A fresh instance of the same task (a restart) does not stall again.
        let mut again = BoltHarness::new(factory(), Fields::new(["k"]));
        assert!(timed(&mut again) < stall);
    }

    #[test]
    fn no_stall_before_stall_after_nor_without_stall_for() {
        let cfg = ChaosConfig {
            stall_for: Duration::from_secs(60),
            stall_after: Duration::from_secs(3600),
            ..Default::default()
        };
        let mut h = BoltHarness::new(
            cfg.build().unwrap_or_else(|e| panic!("{e}"))(),
            Fields::new(["k"]),
        );
        assert!(timed(&mut h) < Duration::from_secs(1));
        let mut plain = BoltHarness::new(
            ChaosConfig::default()
                .build()
                .unwrap_or_else(|e| panic!("{e}"))(),
            Fields::new(["k"]),
        );
        assert!(timed(&mut plain) < Duration::from_secs(1));
    }

    #[test]
    fn stall_options_parse_from_toml() {
        let c: ChaosConfig = toml::from_str("stall_for = \"30s\"\nstall_after = \"1500ms\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.stall_for, Duration::from_secs(30));
        assert_eq!(c.stall_after, Duration::from_millis(1500));
    }
}
