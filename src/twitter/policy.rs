//! The documented reconnect policy of the X API v2 streaming endpoints, as a pure state
//! machine: it is told how each connection (or attempt) ended and answers how long to
//! wait before the next attempt, or that retrying cannot help.
//!
//! The rules (`TWITTER_API.md`, "Reconnecting"), one back-off family per kind of failure:
//!
//! | how it ended | wait before the next attempt |
//! | --- | --- |
//! | an established connection dropped (closed, read error, stall, in-stream error) after it delivered data | none: reconnect at once, and every back-off is reset |
//! | a TCP/IP, TLS or timeout error, or a connection that ended before delivering anything | linear: +250 ms per attempt, up to 16 s |
//! | HTTP 500, 502, 503, 504 (and any other 5xx) | exponential: 5 s, doubling, up to 320 s |
//! | HTTP 429 (and the v1.1 420 "enhance your calm") | exponential: 60 s, doubling, up to 960 s |
//! | HTTP 401, 403 | fatal: the credentials or the app's access are wrong |
//! | HTTP 409 on the filtered stream | fatal: the stream has no rules |
//! | any other status | fatal, with the API's error text |
//!
//! The 429 back-off has no documented cap; 960 s (16 minutes) is used because it outlasts
//! the API's 15-minute rate-limit window, so one capped wait always reaches a fresh window.
//!
//! A connection that got `200 OK` but ended before sending a single line is treated as a
//! network error rather than a drop: otherwise a server that accepts and closes at once
//! would be hammered in a tight loop (and the connect limit, 50 per 15 minutes, spent).
//!
//! Each family counts its own attempts; all of them restart after a connection has
//! delivered data. The base durations live in [`PolicyConfig`]: `documented()` gives the
//! values above and [`PolicyConfig::scaled`] shrinks them for tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::io::backoff::{Backoff, BackoffPolicy};

/// The base durations of the policy. The defaults are the documented ones.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Added per attempt after network errors (250 ms).
    #[serde(with = "humantime_serde")]
    pub network_step: Duration,
    /// Cap of the network back-off (16 s).
    #[serde(with = "humantime_serde")]
    pub network_max: Duration,
    /// First wait after an HTTP 5xx (5 s), doubling.
    #[serde(with = "humantime_serde")]
    pub http_initial: Duration,
    /// Cap of the HTTP back-off (320 s).
    #[serde(with = "humantime_serde")]
    pub http_max: Duration,
    /// First wait after an HTTP 429 (60 s), doubling.
    #[serde(with = "humantime_serde")]
    pub rate_limit_initial: Duration,
    /// Cap of the 429 back-off (960 s: longer than the 15-minute rate-limit window).
    #[serde(with = "humantime_serde")]
    pub rate_limit_max: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::documented()
    }
}

/// Why a [`PolicyConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyConfigError {
    #[error("reconnect.{0} must be positive (a zero wait would retry in a busy loop)")]
    Zero(&'static str),
    #[error("reconnect.{max} must not be below reconnect.{base}")]
    MaxBelowBase {
        base: &'static str,
        max: &'static str,
    },
}

impl PolicyConfig {
    /// The documented values: 250 ms / 16 s, 5 s / 320 s, 60 s / 960 s.
    pub const fn documented() -> Self {
        PolicyConfig {
            network_step: Duration::from_millis(250),
            network_max: Duration::from_secs(16),
            http_initial: Duration::from_secs(5),
            http_max: Duration::from_secs(320),
            rate_limit_initial: Duration::from_secs(60),
            rate_limit_max: Duration::from_secs(960),
        }
    }

    /// Every duration multiplied by `factor` (e.g. `0.01` in tests: 2.5 ms, 50 ms, 600 ms
    /// first waits). A factor that is not finite and positive leaves the config as is.
    pub fn scaled(self, factor: f64) -> Self {
        if !factor.is_finite() || factor <= 0.0 {
            return self;
        }
        let s = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() * factor);
        PolicyConfig {
            network_step: s(self.network_step),
            network_max: s(self.network_max),
            http_initial: s(self.http_initial),
            http_max: s(self.http_max),
            rate_limit_initial: s(self.rate_limit_initial),
            rate_limit_max: s(self.rate_limit_max),
        }
    }

    /// Checks that no wait is zero and no cap is below its base.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        let pairs = [
            (
                "network_step",
                self.network_step,
                "network_max",
                self.network_max,
            ),
            ("http_initial", self.http_initial, "http_max", self.http_max),
            (
                "rate_limit_initial",
                self.rate_limit_initial,
                "rate_limit_max",
                self.rate_limit_max,
            ),
        ];
        for (base, b, max, m) in pairs {
            if b.is_zero() {
                return Err(PolicyConfigError::Zero(base));
            }
            if m < b {
                return Err(PolicyConfigError::MaxBelowBase { base, max });
            }
        }
        Ok(())
    }
}

/// How one connection attempt ended: what the policy decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `200 OK`, then the connection ended (closed by the server, read error, stall,
    /// in-stream error message). `delivered` tells whether it delivered any line first
    /// (a tweet, a keep-alive, a notice).
    Dropped { delivered: bool },
    /// No response: DNS, TCP, TLS, connect or header timeout.
    Network,
    /// A status other than 200, with the API's error text (`title: detail`) if any.
    Status { status: u16, detail: Option<String> },
}

/// The kind of back-off a wait belongs to (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// After a dropped established connection: no wait.
    Immediate,
    /// Linear network back-off.
    Network,
    /// Exponential HTTP error back-off.
    Http,
    /// Exponential 429 back-off.
    RateLimit,
}

/// What to do after an [`Ending`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then connect again.
    Reconnect { wait: Duration, kind: WaitKind },
    /// Stop: retrying cannot help. The message says what to check.
    Fatal(String),
}

/// Which streaming endpoint a policy guards (409 means "no rules" only on the filtered
/// stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `GET /2/tweets/search/stream`: tweets matching the stream's rules.
    #[default]
    Filtered,
    /// `GET /2/tweets/sample/stream`: about 1% of all tweets.
    Sample,
}

impl Endpoint {
    /// The request path under the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Filtered => "/2/tweets/search/stream",
            Endpoint::Sample => "/2/tweets/sample/stream",
        }
    }

    /// `filtered` or `sample`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Filtered => "filtered",
            Endpoint::Sample => "sample",
        }
    }
}

/// The reconnect state machine (see the module docs).
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    endpoint: Endpoint,
    network: Backoff,
    http: Backoff,
    rate_limit: Backoff,
}

impl ReconnectPolicy {
    /// A fresh policy (no attempts counted) for `endpoint`.
    pub fn new(config: PolicyConfig, endpoint: Endpoint) -> Self {
        let exp = |initial, max| BackoffPolicy::Exponential {
            initial,
            multiplier: 2.0,
            max,
        };
        ReconnectPolicy {
            endpoint,
            network: Backoff::new(BackoffPolicy::Linear {
                step: config.network_step,
                max: config.network_max,
            }),
            http: Backoff::new(exp(config.http_initial, config.http_max)),
            rate_limit: Backoff::new(exp(config.rate_limit_initial, config.rate_limit_max)),
        }
    }

    /// Forgets every attempt (a connection delivered data).
    pub fn reset(&mut self) {
        self.network.reset();
        self.http.reset();
        self.rate_limit.reset();
    }

    /// Attempts counted so far per family: (network, http, rate limit).
    pub fn attempts(&self) -> (u32, u32, u32) {
        (
            self.network.attempts(),
            self.http.attempts(),
            self.rate_limit.attempts(),
        )
    }

    /// Decides what follows `ending`, counting the attempt in its family.
    pub fn on_end(&mut self, ending: &Ending) -> Decision {
        match ending {
            Ending::Dropped { delivered: true } => {
                self.reset();
                Decision::Reconnect {
                    wait: Duration::ZERO,
                    kind: WaitKind::Immediate,
                }
            }
            Ending::Dropped { delivered: false } | Ending::Network => {
                wait(&mut self.network, WaitKind::Network)
            }
            Ending::Status { status, detail } => self.on_status(*status, detail.as_deref()),
        }
    }

    fn on_status(&mut self, status: u16, detail: Option<&str>) -> Decision {
        match status {
            429 | 420 => wait(&mut self.rate_limit, WaitKind::RateLimit),
            500..=599 => wait(&mut self.http, WaitKind::Http),
            _ => Decision::Fatal(fatal_message(status, detail, self.endpoint)),
        }
    }
}

fn wait(backoff: &mut Backoff, kind: WaitKind) -> Decision {
    Decision::Reconnect {
        wait: backoff.next_delay(),
        kind,
    }
}

/// `" (title: detail)"`, or nothing.
fn api_says(detail: Option<&str>) -> String {
    match detail {
        Some(d) if !d.trim().is_empty() => format!(" (the API says: {})", d.trim()),
        _ => String::new(),
    }
}

/// What to tell the user when retrying cannot help.
fn fatal_message(status: u16, detail: Option<&str>, endpoint: Endpoint) -> String {
    let says = api_says(detail);
    match status {
        401 => format!(
            "HTTP 401 Unauthorized{says}: the bearer token was refused; check that the \
             token variable holds the app-only bearer token of your X developer app \
             (not an API key, secret or user access token) and that it was not regenerated \
             or revoked"
        ),
        403 => format!(
            "HTTP 403 Forbidden{says}: the token is valid but may not use this endpoint; \
             check that the app is attached to a Project in the developer portal and that \
             the project's access level includes the v2 streaming endpoints"
        ),
        409 if endpoint == Endpoint::Filtered => format!(
            "HTTP 409 Conflict{says}: the stream has no rules: add one with \
             `squall twitter rules add VALUE`"
        ),
        _ => format!("HTTP {status}{says}: not retryable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy::new(PolicyConfig::documented(), Endpoint::Filtered)
    }

    fn status(code: u16) -> Ending {
        Ending::Status {
            status: code,
            detail: None,
        }
    }

    /// The waits of `n` consecutive `ending`s (panics on a fatal decision).
    fn waits(p: &mut ReconnectPolicy, ending: &Ending, n: usize) -> Vec<Duration> {
        (0..n)
            .map(|_| match p.on_end(ending) {
                Decision::Reconnect { wait, .. } => wait,
                Decision::Fatal(m) => panic!("unexpected fatal: {m}"),
            })
            .collect()
    }

    fn fatal(p: &mut ReconnectPolicy, ending: &Ending) -> String {
        match p.on_end(ending) {
            Decision::Fatal(m) => m,
            other => panic!("expected fatal, got {other:?}"),
        }
    }

    #[test]
    fn network_errors_back_off_linearly_by_250ms_up_to_16s() {
        let mut p = policy();
        let got = waits(&mut p, &Ending::Network, 70);
        let want: Vec<Duration> = (1..=70u64).map(|n| ms((250 * n).min(16_000))).collect();
        assert_eq!(got, want);
        assert_eq!(got[63], secs(16), "attempt 64 reaches the cap");
        assert_eq!(got[62], ms(15_750));
    }

    #[test]
    fn http_5xx_back_off_exponentially_from_5s_up_to_320s() {
        for code in [500, 502, 503, 504] {
            let mut p = policy();
            assert_eq!(
                waits(&mut p, &status(code), 9),
                [5, 10, 20, 40, 80, 160, 320, 320, 320].map(secs),
                "HTTP {code}"
            );
        }
        // Other 5xx are server trouble too: same family.
        let mut p = policy();
        assert_eq!(waits(&mut p, &status(501), 2), [secs(5), secs(10)]);
    }

    #[test]
    fn http_429_backs_off_exponentially_from_60s_capped_at_960s() {
        let mut p = policy();
        assert_eq!(
            waits(&mut p, &status(429), 7),
            [60, 120, 240, 480, 960, 960, 960].map(secs)
        );
        let mut p = policy();
        assert_eq!(waits(&mut p, &status(420), 2), [secs(60), secs(120)]);
    }

    #[test]
    fn a_dropped_connection_that_delivered_data_reconnects_at_once_and_resets_all() {
        let mut p = policy();
        waits(&mut p, &Ending::Network, 3);
        waits(&mut p, &status(503), 2);
        waits(&mut p, &status(429), 2);
        assert_eq!(p.attempts(), (3, 2, 2));
        assert_eq!(
            p.on_end(&Ending::Dropped { delivered: true }),
            Decision::Reconnect {
                wait: Duration::ZERO,
                kind: WaitKind::Immediate
            }
        );
        assert_eq!(p.attempts(), (0, 0, 0));
        assert_eq!(waits(&mut p, &Ending::Network, 1), [ms(250)]);
        assert_eq!(waits(&mut p, &status(503), 1), [secs(5)]);
        assert_eq!(waits(&mut p, &status(429), 1), [secs(60)]);
        // Repeated drops after data never wait.
        for _ in 0..5 {
            assert!(matches!(
                p.on_end(&Ending::Dropped { delivered: true }),
                Decision::Reconnect { wait, .. } if wait.is_zero()
            ));
        }
    }

    #[test]
    fn a_connection_that_delivered_nothing_counts_as_a_network_error() {
        let mut p = policy();
        let empty = Ending::Dropped { delivered: false };
        assert_eq!(waits(&mut p, &empty, 3), [ms(250), ms(500), ms(750)]);
        assert!(matches!(
            p.on_end(&empty),
            Decision::Reconnect {
                kind: WaitKind::Network,
                ..
            }
        ));
    }

    #[test]
    fn families_count_their_own_attempts() {
        let mut p = policy();
        let seq = [
            (status(503), secs(5)),
            (Ending::Network, ms(250)),
            (status(503), secs(10)),
            (status(429), secs(60)),
            (Ending::Network, ms(500)),
            (status(429), secs(120)),
            (status(502), secs(20)),
        ];
        for (i, (ending, want)) in seq.iter().enumerate() {
            assert_eq!(waits(&mut p, ending, 1), [*want], "step {i}: {ending:?}");
        }
    }

    #[test]
    fn auth_errors_are_fatal_and_say_what_to_check() {
        let mut p = policy();
        let m = fatal(
            &mut p,
            &Ending::Status {
                status: 401,
                detail: Some("Unauthorized: Unauthorized".into()),
            },
        );
        assert!(m.contains("401") && m.contains("bearer token"), "{m}");
        assert!(m.contains("the API says: Unauthorized"), "{m}");
        let m = fatal(&mut p, &status(403));
        assert!(m.contains("403") && m.contains("Project"), "{m}");
        assert!(m.contains("v2"), "{m}");
        assert_eq!(p.attempts(), (0, 0, 0), "fatal decisions count nothing");
    }

    #[test]
    fn http_409_on_the_filtered_stream_means_no_rules() {
        let mut p = policy();
        let m = fatal(&mut p, &status(409));
        assert!(
            m.contains("the stream has no rules: add one with `squall twitter rules add VALUE`"),
            "{m}"
        );
        let mut sample = ReconnectPolicy::new(PolicyConfig::documented(), Endpoint::Sample);
        let m = fatal(&mut sample, &status(409));
        assert!(!m.contains("rules"), "{m}");
    }

    #[test]
    fn other_client_errors_are_fatal_with_the_api_text() {
        let mut p = policy();
        for code in [400, 404, 410, 413] {
            let m = fatal(
                &mut p,
                &Ending::Status {
                    status: code,
                    detail: Some("Invalid Request: bad tweet.fields".into()),
                },
            );
            assert!(m.starts_with(&format!("HTTP {code}")), "{m}");
            assert!(m.contains("Invalid Request: bad tweet.fields"), "{m}");
        }
        let m = fatal(&mut p, &status(400));
        assert_eq!(m, "HTTP 400: not retryable");
    }

    #[test]
    fn scaled_waits_keep_the_sequence_shape() {
        let cfg = PolicyConfig::documented().scaled(0.01);
        assert_eq!(cfg.network_step, Duration::from_micros(2_500));
        assert_eq!(cfg.http_initial, ms(50));
        assert_eq!(cfg.rate_limit_initial, ms(600));
        assert_eq!(cfg.rate_limit_max, ms(9_600));
        let mut p = ReconnectPolicy::new(cfg, Endpoint::Sample);
        assert_eq!(
            waits(&mut p, &status(503), 8),
            [50, 100, 200, 400, 800, 1600, 3200, 3200].map(ms)
        );
        assert_eq!(
            waits(&mut p, &status(429), 6),
            [600, 1200, 2400, 4800, 9600, 9600].map(ms)
        );
        let net = waits(&mut p, &Ending::Network, 66);
        assert_eq!(net[0], Duration::from_micros(2_500));
        assert_eq!(net[1], Duration::from_micros(5_000));
        assert_eq!(net[65], ms(160));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                PolicyConfig::documented().scaled(bad),
                PolicyConfig::documented()
            );
        }
    }

    #[test]
    fn config_validation_and_serde() {
        assert_eq!(PolicyConfig::documented().validate(), Ok(()));
        let zero = PolicyConfig {
            http_initial: Duration::ZERO,
            ..PolicyConfig::documented()
        };
        assert_eq!(
            zero.validate(),
            Err(PolicyConfigError::Zero("http_initial"))
        );
        let below = PolicyConfig {
            rate_limit_max: secs(1),
            ..PolicyConfig::documented()
        };
        assert!(matches!(
            below.validate(),
            Err(PolicyConfigError::MaxBelowBase {
                base: "rate_limit_initial",
                ..
            })
        ));
        let c: PolicyConfig = toml::from_str("http_initial = \"50ms\"\nnetwork_max = \"1s\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.http_initial, ms(50));
        assert_eq!(c.network_max, secs(1));
        assert_eq!(c.rate_limit_initial, secs(60));
        assert!(toml::from_str::<PolicyConfig>("bogus = 1").is_err());
    }

    #[test]
    fn endpoint_paths() {
        assert_eq!(Endpoint::Filtered.path(), "/2/tweets/search/stream");
        assert_eq!(Endpoint::Sample.path(), "/2/tweets/sample/stream");
        assert_eq!(Endpoint::default(), Endpoint::Filtered);
    }
}
