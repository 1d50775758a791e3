//! Retry delays (e.g. for reconnecting a TCP source): linear, exponential or fixed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors converting a [`BackoffConfig`] into a [`BackoffPolicy`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    /// The multiplier is NaN, infinite or below 1.0.
    #[error("backoff multiplier must be a finite number >= 1.0, got {0}")]
    InvalidMultiplier(f64),
    /// The initial delay is zero (would retry in a busy loop).
    #[error("backoff initial delay must be positive")]
    ZeroInitial,
    /// The maximum delay is below the initial delay.
    #[error("backoff max ({max_ms} ms) is below initial ({initial_ms} ms)")]
    MaxBelowInitial {
        /// Configured initial delay.
        initial_ms: u64,
        /// Configured maximum delay.
        max_ms: u64,
    },
}

/// How the delay grows with each attempt (attempts are counted from 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BackoffPolicy {
    /// `attempt * step`, capped at `max`.
    Linear {
        /// Added on every attempt.
        step: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// `initial * multiplier^(attempt - 1)`, capped at `max`.
    Exponential {
        /// First delay.
        initial: Duration,
        /// Growth factor per attempt.
        multiplier: f64,
        /// Upper bound.
        max: Duration,
    },
    /// Always the same delay.
    Fixed(Duration),
}

impl BackoffPolicy {
    /// The delay for the 1-based `attempt` (attempt 0 is treated as 1).
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        match *self {
            BackoffPolicy::Fixed(d) => d,
            BackoffPolicy::Linear { step, max } => step.checked_mul(n).map_or(max, |d| d.min(max)),
            BackoffPolicy::Exponential {
                initial,
                multiplier,
                max,
            } => exponential(initial, multiplier, max, n),
        }
    }
}

/// `initial * multiplier^(n-1)` rounded to whole nanoseconds, capped at `max`;
/// non-finite or negative results (from a bad multiplier) yield `max`.
fn exponential(initial: Duration, multiplier: f64, max: Duration, n: u32) -> Duration {
    let exp = i32::try_from(n - 1).unwrap_or(i32::MAX);
    let nanos = (initial.as_nanos() as f64 * multiplier.powi(exp)).round();
    if !nanos.is_finite() || nanos < 0.0 || nanos >= max.as_nanos() as f64 {
        return max;
    }
    if nanos >= u64::MAX as f64 {
        return max;
    }
    Duration::from_nanos(nanos as u64).min(max)
}

/// Serde-friendly exponential backoff settings, all fields optional.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay in milliseconds (default 100).
    pub initial_ms: u64,
    /// Growth factor per attempt (default 2.0).
    pub multiplier: f64,
    /// Maximum delay in milliseconds (default 10 000).
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_ms: 100,
            multiplier: 2.0,
            max_ms: 10_000,
        }
    }
}

impl BackoffConfig {
    /// Validates the settings and builds an exponential policy.
    pub fn to_policy(&self) -> Result<BackoffPolicy, BackoffError> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(BackoffError::InvalidMultiplier(self.multiplier));
        }
        if self.initial_ms == 0 {
            return Err(BackoffError::ZeroInitial);
        }
        if self.max_ms < self.initial_ms {
            return Err(BackoffError::MaxBelowInitial {
                initial_ms: self.initial_ms,
                max_ms: self.max_ms,
            });
        }
        Ok(BackoffPolicy::Exponential {
            initial: Duration::from_millis(self.initial_ms),
            multiplier: self.multiplier,
            max: Duration::from_millis(self.max_ms),
        })
    }
}

/// A policy plus the number of attempts made so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// Starts with zero attempts.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// Validates `config` and starts with zero attempts.
    pub fn from_config(config: &BackoffConfig) -> Result<Self, BackoffError> {
        Ok(Self::new(config.to_policy()?))
    }

    /// Counts one more attempt and returns the delay to wait before it.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.policy.delay_for(self.attempt)
    }

    /// Forgets all attempts (call after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Number of `next_delay` calls since creation or the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The policy in use.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as DeError, MapDeserializer};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    fn take(b: &mut Backoff, n: usize) -> Vec<Duration> {
        (0..n).map(|_| b.next_delay()).collect()
    }

    #[test]
    fn linear_250ms_steps_up_to_16s() {
        let mut b = Backoff::new(BackoffPolicy::Linear {
            step: ms(250),
            max: secs(16),
        });
        assert_eq!(take(&mut b, 3), vec![ms(250), ms(500), ms(750)]);
        let rest = take(&mut b, 100);
        // Attempt 64 reaches exactly 16 s; it never goes above.
        assert_eq!(rest[60], secs(16));
        assert_eq!(rest[59], ms(15_750));
        assert!(rest.iter().all(|d| *d <= secs(16)));
        assert!(rest.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(b.attempts(), 103);
    }

    #[test]
    fn exponential_from_5s_doubling_capped_at_320s() {
        let mut b = Backoff::new(BackoffPolicy::Exponential {
            initial: secs(5),
            multiplier: 2.0,
            max: secs(320),
        });
        assert_eq!(
            take(&mut b, 9),
            [5, 10, 20, 40, 80, 160, 320, 320, 320].map(secs).to_vec()
        );
    }

    #[test]
    fn exponential_from_60s_doubling() {
        let mut b = Backoff::new(BackoffPolicy::Exponential {
            initial: secs(60),
            multiplier: 2.0,
            max: secs(320),
        });
        assert_eq!(take(&mut b, 5), [60, 120, 240, 320, 320].map(secs).to_vec());
    }

    #[test]
    fn exponential_survives_huge_attempt_counts() {
        let p = BackoffPolicy::Exponential {
            initial: ms(100),
            multiplier: 2.0,
            max: Duration::MAX,
        };
        assert_eq!(p.delay_for(u32::MAX), Duration::MAX);
        let p = BackoffPolicy::Exponential {
            initial: ms(100),
            multiplier: 1.5,
            max: secs(10),
        };
        assert_eq!(p.delay_for(u32::MAX), secs(10));
        assert_eq!(p.delay_for(2), ms(150));
        assert_eq!(p.delay_for(0), ms(100), "attempt 0 is treated as 1");
    }

    #[test]
    fn exponential_with_bad_multiplier_is_safe() {
        for m in [f64::NAN, f64::INFINITY, -3.0] {
            let p = BackoffPolicy::Exponential {
                initial: ms(100),
                multiplier: m,
                max: secs(1),
            };
            for n in 1..5 {
                assert!(p.delay_for(n) <= secs(1));
            }
        }
    }

    #[test]
    fn linear_overflow_caps_at_max() {
        let p = BackoffPolicy::Linear {
            step: Duration::MAX,
            max: secs(3),
        };
        assert_eq!(p.delay_for(2), secs(3));
    }

    #[test]
    fn fixed_is_constant() {
        let mut b = Backoff::new(BackoffPolicy::Fixed(ms(42)));
        assert_eq!(take(&mut b, 4), vec![ms(42); 4]);
    }

    #[test]
    fn reset_restarts_the_sequence() {
        let mut b = Backoff::new(BackoffPolicy::Exponential {
            initial: secs(5),
            multiplier: 2.0,
            max: secs(320),
        });
        take(&mut b, 4);
        assert_eq!(b.attempts(), 4);
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(), secs(5));
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn config_defaults_and_policy() {
        let c = BackoffConfig::default();
        assert_eq!((c.initial_ms, c.multiplier, c.max_ms), (100, 2.0, 10_000));
        let mut b = Backoff::from_config(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            take(&mut b, 9),
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
                .map(ms)
                .to_vec()
        );
        assert_eq!(
            b.policy(),
            &BackoffPolicy::Exponential {
                initial: ms(100),
                multiplier: 2.0,
                max: ms(10_000)
            }
        );
    }

    #[test]
    fn config_validation() {
        let bad = |initial_ms, multiplier, max_ms| {
            BackoffConfig {
                initial_ms,
                multiplier,
                max_ms,
            }
            .to_policy()
            .err()
        };
        assert!(matches!(
            bad(100, 0.5, 1000),
            Some(BackoffError::InvalidMultiplier(_))
        ));
        assert!(matches!(
            bad(100, f64::NAN, 1000),
            Some(BackoffError::InvalidMultiplier(_))
        ));
        assert_eq!(bad(0, 2.0, 1000), Some(BackoffError::ZeroInitial));
        assert_eq!(
            bad(500, 2.0, 100),
            Some(BackoffError::MaxBelowInitial {
                initial_ms: 500,
                max_ms: 100
            })
        );
        assert_eq!(bad(100, 1.0, 100), None);
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let empty = MapDeserializer::<_, DeError>::new(std::iter::empty::<(&str, u64)>());
        assert_eq!(
            BackoffConfig::deserialize(empty),
            Ok(BackoffConfig::default())
        );
        let partial = MapDeserializer::<_, DeError>::new(
            vec![("initial_ms", 5_000u64), ("max_ms", 320_000)].into_iter(),
        );
        assert_eq!(
            BackoffConfig::deserialize(partial),
            Ok(BackoffConfig {
                initial_ms: 5_000,
                multiplier: 2.0,
                max_ms: 320_000
            })
        );
        let unknown = MapDeserializer::<_, DeError>::new(vec![("bogus", 1u64)].into_iter());
        assert!(BackoffConfig::deserialize(unknown).is_err());
    }
}
