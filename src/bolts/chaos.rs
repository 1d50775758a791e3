//! `chaos`: fault injection for drills — fails (or panics on) a seeded random share of
//! its inputs (event mode) or of its batches (micro-batch mode), so users can watch the
//! guarantees hold on their own topology. It emits nothing: subscribe it beside the real
//! consumer of a stream; a failure there fails the tuple's tree (or the whole batch).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            fail_tuples: 0.0,
            fail_batches: 0.0,
            panic: false,
            seed: 1,
        }
    }
}

impl ComponentConfig for ChaosConfig {
    const NAME: &'static str = "chaos";
    const DESCRIPTION: &'static str =
        "fault injection: fails a seeded share of its inputs (event) or batches (micro-batch)";
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
        Ok(Arc::new(move || {
            Box::new(ChaosBolt {
                cfg: cfg.clone(),
                rng: Xoshiro256PlusPlus::seed_from_u64(cfg.seed),
                failures: None,
            })
        }))
    }
}

pub struct ChaosBolt {
    cfg: ChaosConfig,
    rng: Xoshiro256PlusPlus,
    failures: Option<Arc<std::sync::atomic::AtomicU64>>,
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
        Ok(())
    }

    fn execute(&mut self, _input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.cfg.fail_tuples > 0.0 && self.draw() < self.cfg.fail_tuples {
            return self.strike("failing a tuple".into());
        }
        Ok(())
    }

    fn execute_batch(
        &mut self,
        _batch: &BatchInfo,
        _tuples: Vec<Tuple>,
        _out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        Ok(())
    }

    fn finish_batch(&mut self, batch: &BatchInfo, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.cfg.fail_batches > 0.0 && self.draw() < self.cfg.fail_batches {
            return self.strike(format!("failing batch {}", batch.txid));
        }
        Ok(())
    }
}
