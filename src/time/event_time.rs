//! The `event_time` option of a spout and the reading of a message's time.
//!
//! A spout with `event_time = { field = "created_at", lag = "5s", idle_timeout = "10s" }`
//! takes each message's time from `field`: RFC 3339 text (any UTC offset, any number of
//! fraction digits; below the millisecond is dropped), an integer of epoch milliseconds, or
//! text holding one in decimal. See docs/event-time.md.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::data::tuple::Value;
use crate::io::time::{DateError, parse_rfc3339_ms};

/// The default `idle_timeout`: an input silent this long stops holding the watermark back.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a value an error quotes.
const QUOTED_CHARS: usize = 64;

fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}

/// A spout's `event_time` option: where each message's time is, how far out of order
/// messages may come (`lag`), and how long a silent input holds the watermark back
/// (`idle_timeout`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventTimeConfig {
    /// The field (or, for the Kafka spout, `timestamp`: the record's own) holding the time.
    pub field: String,
    /// Bounded out-of-orderness: the watermark is the largest time seen minus `lag`.
    #[serde(default, with = "humantime_serde")]
    pub lag: Duration,
    /// An input with no message for this long does not hold the watermark back.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl EventTimeConfig {
    /// `field` and the defaults (`lag` 0 s, `idle_timeout` 10 s).
    pub fn new(field: impl Into<String>) -> Self {
        EventTimeConfig {
            field: field.into(),
            lag: Duration::ZERO,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Checks that `field` is named, `idle_timeout` is above zero and both durations fit
    /// in milliseconds.
    pub fn validate(&self) -> Result<(), EventTimeError> {
        if self.field.trim().is_empty() {
            return Err(EventTimeError::NoField);
        }
        millis("lag", self.lag)?;
        if self.idle_timeout.is_zero() {
            return Err(EventTimeError::ZeroIdleTimeout);
        }
        millis("idle_timeout", self.idle_timeout)?;
        Ok(())
    }

    /// `lag` in milliseconds (saturating; [`validate`](Self::validate) refuses what does not fit).
    pub fn lag_ms(&self) -> i64 {
        millis("lag", self.lag).unwrap_or(i64::MAX)
    }

    /// `idle_timeout` in milliseconds (saturating).
    pub fn idle_timeout_ms(&self) -> u64 {
        u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// A [`WatermarkTracker`](super::WatermarkTracker) with this `lag` and `idle_timeout`,
    /// started at `now_ms`.
    pub fn tracker(&self, now_ms: u64) -> super::WatermarkTracker {
        super::WatermarkTracker::new(self.lag_ms(), self.idle_timeout_ms(), now_ms)
    }
}

/// Whole milliseconds of `d`, or an error naming `option` if they do not fit an `i64`.
fn millis(option: &'static str, d: Duration) -> Result<i64, EventTimeError> {
    i64::try_from(d.as_millis()).map_err(|_| EventTimeError::TooLong {
        option,
        value: humantime::format_duration(d).to_string(),
    })
}

/// A bad `event_time` option, or a message time that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTimeError {
    #[error("event_time: `field` must name the field that holds each message's time")]
    NoField,
    #[error("event_time: `idle_timeout` must be above 0 s")]
    ZeroIdleTimeout,
    #[error("event_time: `{option}` = {value} is too long")]
    TooLong { option: &'static str, value: String },
    /// Text that is neither RFC 3339 nor decimal epoch milliseconds.
    #[error(
        "event time: {quoted} is not RFC 3339 (e.g. 2026-11-21T10:00:00Z) nor epoch milliseconds: {reason}"
    )]
    BadText { quoted: String, reason: DateError },
    /// A value of another kind than an integer or text.
    #[error("event time: expected RFC 3339 text or integer epoch milliseconds, found {found}")]
    NotATime { found: String },
}

/// A message's time in milliseconds since the Unix epoch: [`Value::Int`] (epoch ms), or
/// [`Value::Str`] holding RFC 3339 text (any offset, fractional seconds; below the
/// millisecond is dropped) or decimal epoch milliseconds. Anything else is an error that
/// says what was found.
pub fn parse_event_time(v: &Value) -> Result<i64, EventTimeError> {
    match v {
        Value::Int(ms) => Ok(*ms),
        Value::Str(s) => parse_event_time_text(s),
        other => Err(EventTimeError::NotATime {
            found: describe(other),
        }),
    }
}

/// [`parse_event_time`] of text.
pub fn parse_event_time_text(s: &str) -> Result<i64, EventTimeError> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| EventTimeError::BadText {
            quoted: quote(s),
            reason: DateError::OutOfRange,
        });
    }
    parse_rfc3339_ms(s).map_err(|reason| EventTimeError::BadText {
        quoted: quote(s),
        reason,
    })
}

/// `s` in quotes, cut to [`QUOTED_CHARS`] characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTED_CHARS) {
        Some((at, _)) => format!("{:?}…", &s[..at]),
        None => format!("{s:?}"),
    }
}

/// What kind of value `v` is, for an error.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null (the field is missing or empty)".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Int(i) => format!("an integer ({i})"),
        Value::Float(f) => format!("a float ({f})"),
        Value::Str(s) => format!("text ({})", quote(s)),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::List(l) => format!("a list of {} values", l.len()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::*;

    fn text(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn integers_and_decimal_text_are_epoch_ms() {
        assert_eq!(
            parse_event_time(&Value::Int(1_700_000_000_123)),
            Ok(1_700_000_000_123)
        );
        assert_eq!(parse_event_time(&Value::Int(-5)), Ok(-5));
        assert_eq!(
            parse_event_time(&text("1700000000123")),
            Ok(1_700_000_000_123)
        );
        assert_eq!(parse_event_time(&text("-1000")), Ok(-1_000));
        assert_eq!(parse_event_time(&text("0")), Ok(0));
        let too_big = parse_event_time(&text("99999999999999999999"));
        assert!(
            matches!(&too_big, Err(EventTimeError::BadText { quoted, .. }) if quoted.contains("9999")),
            "{too_big:?}"
        );
    }

    #[test]
    fn rfc3339_in_any_offset_with_fractions() {
        let cases = [
            ("2024-01-01T00:00:00Z", 1_704_067_200_000),
            ("2024-01-01T00:00:00.001Z", 1_704_067_200_001),
            ("2024-01-01T00:00:00.0019999Z", 1_704_067_200_001),
            ("2024-01-01T02:00:00+02:00", 1_704_067_200_000),
            ("2023-12-31T19:30:00.5-04:30", 1_704_067_200_500),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2024-02-29t12:00:00z", 1_709_208_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_event_time(&text(s)), Ok(want), "{s}");
        }
    }

    #[test]
    fn errors_say_what_was_found() {
        let msg = |v: Value| match parse_event_time(&v) {
            Err(e) => e.to_string(),
            Ok(t) => panic!("{v:?} read as {t}"),
        };
        assert!(msg(Value::Null).contains("found null"));
        assert!(msg(Value::Float(1.5)).contains("found a float (1.5)"));
        assert!(msg(Value::Bool(true)).contains("found a boolean (true)"));
        assert!(msg(Value::from(vec![Value::Int(1)])).contains("a list of 1 values"));
        let m = msg(text("yesterday"));
        assert!(m.contains("\"yesterday\"") && m.contains("RFC 3339"), "{m}");
        let m = msg(text("2024-02-30T00:00:00Z"));
        assert!(m.contains("no such date"), "{m}");
        let m = msg(text("2024-01-01T00:00:00"));
        assert!(m.contains("missing time zone"), "{m}");
        let long = "x".repeat(500);
        let m = msg(text(&long));
        assert!(m.len() < 200 && m.contains('…'), "{m}");
        assert!(msg(text("")).contains("\"\""));
    }

    #[test]
    fn options_parse_with_defaults_and_validate() {
        let c: EventTimeConfig = toml::from_str(r#"field = "created_at""#).unwrap();
        assert_eq!(c, EventTimeConfig::new("created_at"));
        assert_eq!((c.lag_ms(), c.idle_timeout_ms()), (0, 10_000));
        assert_eq!(c.validate(), Ok(()));
        let c: EventTimeConfig =
            toml::from_str("field = \"t\"\nlag = \"5s\"\nidle_timeout = \"1m\"").unwrap();
        assert_eq!((c.lag_ms(), c.idle_timeout_ms()), (5_000, 60_000));
        assert!(toml::from_str::<EventTimeConfig>(r#"lag = "5s""#).is_err());
        assert!(toml::from_str::<EventTimeConfig>("field = \"t\"\nlate = \"5s\"").is_err());
        assert!(toml::from_str::<EventTimeConfig>("field = \"t\"\nlag = \"soon\"").is_err());
        assert_eq!(
            EventTimeConfig::new(" ").validate(),
            Err(EventTimeError::NoField)
        );
        let zero = EventTimeConfig {
            idle_timeout: Duration::ZERO,
            ..EventTimeConfig::new("t")
        };
        assert_eq!(zero.validate(), Err(EventTimeError::ZeroIdleTimeout));
        let huge = EventTimeConfig {
            lag: Duration::MAX,
            ..EventTimeConfig::new("t")
        };
        assert!(matches!(
            huge.validate(),
            Err(EventTimeError::TooLong { option: "lag", .. })
        ));
        // Round trip through the serialized form (state options, `topology show`).
        let c = EventTimeConfig {
            lag: Duration::from_millis(1_500),
            ..EventTimeConfig::new("created_at")
        };
        let back: EventTimeConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    proptest! {
        #[test]
        fn rfc3339_written_by_time_round_trips(
            secs in -62_135_596_800i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            offset_min in -1439i32..=1439,
        ) {
            let at = OffsetDateTime::from_unix_timestamp(secs)
                .unwrap()
                .replace_nanosecond(nanos)
                .unwrap();
            let offset = time::UtcOffset::from_whole_seconds(offset_min * 60).unwrap();
            let local = at.to_offset(offset);
            // Years 0000 to 9999 only (what RFC 3339 writes).
            prop_assume!((0..=9999).contains(&local.year()));
            let s = local.format(&Rfc3339).unwrap();
            let want = i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap();
            prop_assert_eq!(parse_event_time(&Value::from(s.as_str())), Ok(want), "{}", s);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = parse_event_time(&Value::from(s.as_str()));
        }

        #[test]
        fn date_like_text_never_panics(s in "[0-9]{0,5}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9:.]{0,20}[Zz+-]?[0-9:]{0,6}") {
            let _ = parse_event_time(&Value::from(s.as_str()));
        }
    }
}
