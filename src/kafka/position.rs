//! Where the Kafka spout starts and stops reading, as written in a topology file, and how
//! a start timestamp is resolved to offsets.
//!
//! Accepted forms (keywords are case-insensitive, blanks around parts are ignored):
//!
//! | form                                | start | end | meaning                               |
//! |-------------------------------------|:-----:|:---:|---------------------------------------|
//! | `earliest`                          | yes   | no  | the log start offset                  |
//! | `latest`                            | yes   | yes | the log end offset (at start-up)      |
//! | `committed`                         | yes   | no  | the consumer group's committed offset |
//! | `offsets:0:100,1:250`, `0:100,1:250` | yes   | yes | explicit `partition:offset` pairs     |
//! | `timestamp:2026-11-21T10:00:00Z`    | yes   | yes | RFC 3339, any UTC offset (`+02:00`)   |
//! | `timestamp:1763719200000`           | yes   | yes | milliseconds since the Unix epoch     |
//!
//! Both types (de)serialize from and to that string form, so they can be topology-file
//! options; [`Display`](std::fmt::Display) prints a form that parses back to the same
//! value (timestamps as RFC 3339 in UTC, with milliseconds when needed).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::io::time::{self as dates, DateError, MAX_RFC3339_MS, Precision};

/// The forms a start position may take, for error messages.
const START_FORMS: &str =
    "earliest, latest, committed, offsets:P:O[,P:O...] or timestamp:RFC3339|EPOCH_MS";
/// The forms an end position may take, for error messages.
const END_FORMS: &str = "latest, offsets:P:O[,P:O...] or timestamp:RFC3339|EPOCH_MS";

/// Where a Kafka spout starts reading each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The log start offset (oldest retained record).
    Earliest,
    /// The log end offset: only records produced from now on.
    Latest,
    /// The consumer group's committed offset.
    Committed,
    /// Explicit `(partition, offset)` pairs, in the order given; partitions are distinct
    /// and both numbers are non-negative.
    Offsets(Vec<(i32, i64)>),
    /// The first record whose timestamp is at or after this many milliseconds since the
    /// Unix epoch (non-negative when parsed).
    Timestamp(i64),
}

/// Where a Kafka spout stops reading each partition (call sites use
/// `Option<EndPosition>`, `None` meaning "never stop").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPosition {
    /// The log end offset as of start-up.
    Latest,
    /// Explicit `(partition, offset)` pairs: stop before these offsets.
    Offsets(Vec<(i32, i64)>),
    /// Stop at the first record whose timestamp is at or after this many milliseconds
    /// since the Unix epoch.
    Timestamp(i64),
}

/// A position string that does not parse; each variant names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    /// Nothing but blanks.
    #[error("empty position (expected {expected})")]
    Empty {
        /// The accepted forms.
        expected: &'static str,
    },
    /// Not a keyword, nor a known `prefix:` form.
    #[error("unknown position `{value}` (expected {expected})")]
    Unknown {
        /// The rejected text.
        value: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// A start-only keyword (`earliest`, `committed`) used as an end position.
    #[error("`{0}` is not a valid end position (expected {END_FORMS})")]
    NotAnEnd(String),
    /// `offsets:` with nothing after it.
    #[error("no partition:offset pairs (expected P:O[,P:O...])")]
    NoPairs,
    /// A list item that is not two numbers separated by a colon.
    #[error("bad partition:offset pair `{0}` (expected P:O)")]
    BadPair(String),
    /// The partition of a pair is not an integer in `0..=i32::MAX`.
    #[error("bad partition `{partition}` in pair `{pair}` (expected an integer >= 0)")]
    BadPartition {
        /// The whole pair.
        pair: String,
        /// Its partition part.
        partition: String,
    },
    /// The offset of a pair is not an integer in `0..=i64::MAX`.
    #[error("bad offset `{offset}` in pair `{pair}` (expected an integer >= 0)")]
    BadOffset {
        /// The whole pair.
        pair: String,
        /// Its offset part.
        offset: String,
    },
    /// The same partition appears in two pairs.
    #[error("partition {0} is listed twice")]
    DuplicatePartition(i32),
    /// The value after `timestamp:` is not a usable time.
    #[error("bad timestamp `{value}`: {problem}")]
    BadTimestamp {
        /// The rejected text.
        value: String,
        /// What is wrong with it.
        problem: TimestampProblem,
    },
}

/// Why a timestamp was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampProblem {
    /// Neither RFC 3339 nor a number.
    #[error("expected RFC 3339 (e.g. 2026-11-21T10:00:00Z) or milliseconds since the epoch")]
    Format,
    /// An RFC 3339 date-time without `Z` or `±HH:MM`.
    #[error("missing time zone (end it with Z or an offset such as +02:00)")]
    MissingZone,
    /// A `±HH:MM` suffix with hours above 23 or minutes above 59.
    #[error("bad UTC offset (expected ±HH:MM)")]
    BadZone,
    /// Before 1970-01-01T00:00:00Z, after year 9999, or an out-of-range field.
    #[error("out of range (must be between 1970 and 9999 with valid fields)")]
    OutOfRange,
}

/// Any position form, before start/end validation.
enum Parsed {
    Earliest,
    Latest,
    Committed,
    Offsets(Vec<(i32, i64)>),
    Timestamp(i64),
}

impl FromStr for StartPosition {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match parse_any(s, START_FORMS)? {
            Parsed::Earliest => Self::Earliest,
            Parsed::Latest => Self::Latest,
            Parsed::Committed => Self::Committed,
            Parsed::Offsets(pairs) => Self::Offsets(pairs),
            Parsed::Timestamp(ms) => Self::Timestamp(ms),
        })
    }
}

impl FromStr for EndPosition {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_any(s, END_FORMS)? {
            Parsed::Earliest | Parsed::Committed => Err(PositionError::NotAnEnd(s.trim().into())),
            Parsed::Latest => Ok(Self::Latest),
            Parsed::Offsets(pairs) => Ok(Self::Offsets(pairs)),
            Parsed::Timestamp(ms) => Ok(Self::Timestamp(ms)),
        }
    }
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::Committed => f.write_str("committed"),
            Self::Offsets(pairs) => write_offsets(f, pairs),
            Self::Timestamp(ms) => write_timestamp(f, *ms),
        }
    }
}

impl fmt::Display for EndPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Offsets(pairs) => write_offsets(f, pairs),
            Self::Timestamp(ms) => write_timestamp(f, *ms),
        }
    }
}

impl Serialize for StartPosition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for EndPosition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EndPosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Parses every form; `expected` lists the forms valid for the caller, for errors.
fn parse_any(s: &str, expected: &'static str) -> Result<Parsed, PositionError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(PositionError::Empty { expected });
    }
    for (word, parsed) in [
        ("earliest", Parsed::Earliest),
        ("latest", Parsed::Latest),
        ("committed", Parsed::Committed),
    ] {
        if s.eq_ignore_ascii_case(word) {
            return Ok(parsed);
        }
    }
    if let Some((head, rest)) = s.split_once(':') {
        let head = head.trim();
        if head.eq_ignore_ascii_case("offsets") {
            return parse_pairs(rest).map(Parsed::Offsets);
        }
        if head.eq_ignore_ascii_case("timestamp") {
            return parse_timestamp(rest).map(Parsed::Timestamp);
        }
    }
    if s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return parse_pairs(s).map(Parsed::Offsets);
    }
    Err(PositionError::Unknown {
        value: s.into(),
        expected,
    })
}

/// `P:O[,P:O...]` with distinct, non-negative partitions and non-negative offsets.
fn parse_pairs(list: &str) -> Result<Vec<(i32, i64)>, PositionError> {
    if list.trim().is_empty() {
        return Err(PositionError::NoPairs);
    }
    let mut seen = BTreeSet::new();
    let mut pairs = Vec::new();
    for item in list.split(',') {
        let (partition, offset) = parse_pair(item.trim())?;
        if !seen.insert(partition) {
            return Err(PositionError::DuplicatePartition(partition));
        }
        pairs.push((partition, offset));
    }
    Ok(pairs)
}

/// One `P:O` pair.
fn parse_pair(pair: &str) -> Result<(i32, i64), PositionError> {
    let Some((p, o)) = pair.split_once(':') else {
        return Err(PositionError::BadPair(pair.into()));
    };
    let (p, o) = (p.trim(), o.trim());
    if p.is_empty() || o.is_empty() || o.contains(':') {
        return Err(PositionError::BadPair(pair.into()));
    }
    let partition =
        p.parse::<i32>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| PositionError::BadPartition {
                pair: pair.into(),
                partition: p.into(),
            })?;
    let offset =
        o.parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| PositionError::BadOffset {
                pair: pair.into(),
                offset: o.into(),
            })?;
    Ok((partition, offset))
}

/// Epoch milliseconds (all digits) or an RFC 3339 date-time with a zone.
fn parse_timestamp(value: &str) -> Result<i64, PositionError> {
    let v = value.trim();
    let bad = |problem| PositionError::BadTimestamp {
        value: v.into(),
        problem,
    };
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().map_err(|_| bad(TimestampProblem::OutOfRange));
    }
    if v.starts_with('-') && v.len() > 1 && v[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(TimestampProblem::OutOfRange));
    }
    parse_rfc3339_ms(v).map_err(bad)
}

/// An RFC 3339 date-time (`T` or a blank between date and time, any fraction, `Z` or
/// `±HH:MM`) as milliseconds since the epoch; sub-millisecond digits are truncated.
fn parse_rfc3339_ms(v: &str) -> Result<i64, TimestampProblem> {
    let ms = dates::parse_rfc3339_ms(v).map_err(|e| match e {
        DateError::MissingZone => TimestampProblem::MissingZone,
        DateError::BadZone => TimestampProblem::BadZone,
        DateError::NoSuchDate | DateError::OutOfRange => TimestampProblem::OutOfRange,
        DateError::NotRfc3339 | DateError::NotTwitterDate => TimestampProblem::Format,
    })?;
    if !(0..=MAX_RFC3339_MS).contains(&ms) {
        return Err(TimestampProblem::OutOfRange);
    }
    Ok(ms)
}

/// `offsets:P:O,P:O`.
fn write_offsets(f: &mut fmt::Formatter<'_>, pairs: &[(i32, i64)]) -> fmt::Result {
    f.write_str("offsets:")?;
    for (i, (p, o)) in pairs.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(f, "{sep}{p}:{o}")?;
    }
    Ok(())
}

/// `timestamp:` then RFC 3339 in UTC (milliseconds only when not whole seconds), or the
/// raw number when RFC 3339 cannot represent it.
fn write_timestamp(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    let precision = if ms % 1000 == 0 {
        Precision::Seconds
    } else {
        Precision::Millis
    };
    match dates::rfc3339(ms, precision) {
        Ok(text) if ms >= 0 => write!(f, "timestamp:{text}"),
        _ => write!(f, "timestamp:{ms}"),
    }
}

/// How one partition starts at a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampResolution {
    /// Seek to this offset.
    Resolved(i64),
    /// Seek to `from` (the log start) and filter with a [`TimestampScan`]: skip records
    /// until the first one whose timestamp is at or after `skip_before_ts`, or until
    /// offset `until` (the log end when resolved), whichever comes first; emit everything
    /// from there on.
    ScanFrom {
        /// Where to start reading: the low watermark.
        from: i64,
        /// The requested start timestamp (epoch milliseconds).
        skip_before_ts: i64,
        /// The high watermark when resolved: records from here on are emitted unfiltered.
        until: i64,
    },
}

/// A partition's low and high watermarks (log start and log end offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Offset of the oldest retained record.
    pub low: i64,
    /// Offset the next produced record will get.
    pub high: i64,
}

/// A partition with no offset answer from the broker and no watermarks to fall back on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("partition {0}: no offset for the start timestamp and no watermarks to scan from")]
pub struct MissingWatermarks(pub i32);

/// Resolves a start timestamp for every partition in `answers` or `watermarks`.
///
/// `answers` holds the broker's offsets-for-times results: `None` or a negative value
/// (`-1`, OFFSET_END) when it gave no offset. A negative answer is ambiguous: a real broker
/// answers it when no record is at or after the timestamp, while some brokers (librdkafka's
/// mock cluster) answer it for every lookup by time. Hence the rule, correct in both cases:
///
/// - a concrete answer (`>= 0`) is trusted: [`Resolved`](TimestampResolution::Resolved)
///   (raised to the low watermark if retention has since moved past it);
/// - otherwise, an empty partition (`low >= high`) resolves to its end, `high`, which is
///   what the broker would answer;
/// - otherwise the partition is [scanned](TimestampResolution::ScanFrom) from its low
///   watermark. The scan finds the same first record as the broker would, and when there
///   truly is none before `high` it skips up to `high` and emits everything after, exactly
///   like seeking to the end. It only costs reading the partition once.
///
/// Partitions without a concrete answer must have watermarks, or [`MissingWatermarks`]
/// names the first one missing.
pub fn resolve_timestamp_fallback(
    timestamp_ms: i64,
    answers: &BTreeMap<i32, Option<i64>>,
    watermarks: &BTreeMap<i32, Watermarks>,
) -> Result<BTreeMap<i32, TimestampResolution>, MissingWatermarks> {
    let partitions: BTreeSet<i32> = answers.keys().chain(watermarks.keys()).copied().collect();
    let mut resolved = BTreeMap::new();
    for p in partitions {
        let answer = answers.get(&p).copied().flatten().filter(|o| *o >= 0);
        let resolution = match (answer, watermarks.get(&p)) {
            (_, Some(w)) => resolve_partition(timestamp_ms, answer, *w),
            (Some(offset), None) => TimestampResolution::Resolved(offset),
            (None, None) => return Err(MissingWatermarks(p)),
        };
        resolved.insert(p, resolution);
    }
    Ok(resolved)
}

/// The rule of [`resolve_timestamp_fallback`] for one partition; `answer` is the broker's
/// offset for the timestamp (`None` or negative: no answer).
pub fn resolve_partition(
    timestamp_ms: i64,
    answer: Option<i64>,
    watermarks: Watermarks,
) -> TimestampResolution {
    match answer.filter(|o| *o >= 0) {
        Some(offset) => TimestampResolution::Resolved(offset.max(watermarks.low)),
        None if watermarks.low >= watermarks.high => TimestampResolution::Resolved(watermarks.high),
        None => TimestampResolution::ScanFrom {
            from: watermarks.low,
            skip_before_ts: timestamp_ms,
            until: watermarks.high,
        },
    }
}

/// The record filter of a [`ScanFrom`](TimestampResolution::ScanFrom) start: skips
/// records until the first one at or after the start timestamp (or at or after the scan
/// end), then admits that one and every later offset, whatever their timestamps (Kafka's
/// semantics: start at an offset, not filter by time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampScan {
    skip_before_ts: i64,
    until: i64,
    started_at: Option<i64>,
}

impl TimestampScan {
    /// A filter skipping records older than `skip_before_ts` below offset `until`.
    pub fn new(skip_before_ts: i64, until: i64) -> Self {
        Self {
            skip_before_ts,
            until,
            started_at: None,
        }
    }

    /// The filter for a resolution, if it needs one.
    pub fn for_resolution(resolution: &TimestampResolution) -> Option<Self> {
        match *resolution {
            TimestampResolution::Resolved(_) => None,
            TimestampResolution::ScanFrom {
                skip_before_ts,
                until,
                ..
            } => Some(Self::new(skip_before_ts, until)),
        }
    }

    /// Whether to emit the fetched record at `offset` with `timestamp` (`None` or negative:
    /// the record has none, which never matches). Records not admitted should be reported
    /// with [`PartitionOffsets::skipped`](crate::kafka::spout::offsets::PartitionOffsets::skipped).
    ///
    /// Once started, offsets below the first admitted one (re-fetched after a seek) stay
    /// skipped and all others are admitted.
    pub fn admit(&mut self, offset: i64, timestamp: Option<i64>) -> bool {
        if let Some(start) = self.started_at {
            return offset >= start;
        }
        let on_time = timestamp.is_some_and(|ts| ts >= 0 && ts >= self.skip_before_ts);
        if on_time || offset >= self.until {
            self.started_at = Some(offset);
            return true;
        }
        false
    }

    /// The first admitted offset, once the scan found it.
    pub fn started_at(&self) -> Option<i64> {
        self.started_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21T10:00:00Z in epoch milliseconds.
    const NOV_21: i64 = 1_795_255_200_000;

    fn start(s: &str) -> StartPosition {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn end(s: &str) -> EndPosition {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn start_err(s: &str) -> PositionError {
        match s.parse::<StartPosition>() {
            Ok(p) => panic!("{s:?} parsed as {p:?}"),
            Err(e) => e,
        }
    }

    fn end_err(s: &str) -> PositionError {
        match s.parse::<EndPosition>() {
            Ok(p) => panic!("{s:?} parsed as {p:?}"),
            Err(e) => e,
        }
    }

    fn ts_err(value: &str, problem: TimestampProblem) -> PositionError {
        PositionError::BadTimestamp {
            value: value.into(),
            problem,
        }
    }

    #[test]
    fn keywords() {
        assert_eq!(start("earliest"), StartPosition::Earliest);
        assert_eq!(start("latest"), StartPosition::Latest);
        assert_eq!(start("committed"), StartPosition::Committed);
        assert_eq!(start("  Earliest \n"), StartPosition::Earliest);
        assert_eq!(start("LATEST"), StartPosition::Latest);
        assert_eq!(end("latest"), EndPosition::Latest);
    }

    #[test]
    fn offsets_with_and_without_prefix() {
        let want = StartPosition::Offsets(vec![(0, 100), (1, 250)]);
        assert_eq!(start("offsets:0:100,1:250"), want);
        assert_eq!(start("0:100,1:250"), want);
        assert_eq!(start("OFFSETS: 0:100 , 1 : 250 "), want);
        assert_eq!(start("7:0"), StartPosition::Offsets(vec![(7, 0)]));
        assert_eq!(
            start("3:1,1:2"),
            StartPosition::Offsets(vec![(3, 1), (1, 2)]),
            "order kept"
        );
        assert_eq!(
            end("offsets:0:9223372036854775807"),
            EndPosition::Offsets(vec![(0, i64::MAX)])
        );
        assert_eq!(end("2:5"), EndPosition::Offsets(vec![(2, 5)]));
    }

    #[test]
    fn bad_offsets_name_the_bad_part() {
        assert_eq!(start_err("0-100"), PositionError::BadPair("0-100".into()));
        assert_eq!(
            start_err("0-100").to_string(),
            "bad partition:offset pair `0-100` (expected P:O)"
        );
        assert_eq!(
            start_err("offsets:0:1,2"),
            PositionError::BadPair("2".into())
        );
        assert_eq!(start_err("0:1,"), PositionError::BadPair(String::new()));
        assert_eq!(start_err("0:1:2"), PositionError::BadPair("0:1:2".into()));
        assert_eq!(start_err("offsets::5"), PositionError::BadPair(":5".into()));
        assert_eq!(start_err("offsets:"), PositionError::NoPairs);
        assert_eq!(start_err("offsets:  "), PositionError::NoPairs);
        assert_eq!(
            start_err("offsets:x:1"),
            PositionError::BadPartition {
                pair: "x:1".into(),
                partition: "x".into()
            }
        );
        assert_eq!(
            start_err("-1:5"),
            PositionError::BadPartition {
                pair: "-1:5".into(),
                partition: "-1".into()
            }
        );
        assert_eq!(
            start_err("0:-5").to_string(),
            "bad offset `-5` in pair `0:-5` (expected an integer >= 0)"
        );
        assert_eq!(
            start_err("0:99999999999999999999"),
            PositionError::BadOffset {
                pair: "0:99999999999999999999".into(),
                offset: "99999999999999999999".into()
            }
        );
        assert_eq!(
            start_err("4294967296:1"),
            PositionError::BadPartition {
                pair: "4294967296:1".into(),
                partition: "4294967296".into()
            }
        );
        assert_eq!(
            start_err("1:5,0:3,1:6"),
            PositionError::DuplicatePartition(1)
        );
        assert_eq!(
            end_err("1:5,1:5").to_string(),
            "partition 1 is listed twice"
        );
    }

    #[test]
    fn rfc3339_timestamps() {
        let want = StartPosition::Timestamp(NOV_21);
        assert_eq!(start("timestamp:2026-11-21T10:00:00Z"), want);
        assert_eq!(start("timestamp:2026-11-21T10:00:00+00:00"), want);
        assert_eq!(start("timestamp:2026-11-21T10:00:00-00:00"), want);
        assert_eq!(start("timestamp:2026-11-21T12:00:00+02:00"), want);
        assert_eq!(start("timestamp:2026-11-21T04:30:00-05:30"), want);
        assert_eq!(start("timestamp:2026-11-21t10:00:00z"), want, "lower case");
        assert_eq!(
            start("timestamp:2026-11-21 10:00:00Z"),
            want,
            "blank separator"
        );
        assert_eq!(start("Timestamp: 2026-11-21T10:00:00Z "), want);
        assert_eq!(
            start("timestamp:2026-11-21T10:00:00.1239Z"),
            StartPosition::Timestamp(NOV_21 + 123),
            "sub-millisecond digits are truncated"
        );
        assert_eq!(
            start("timestamp:2026-11-22T00:00:00.5+14:00"),
            StartPosition::Timestamp(NOV_21 + 500)
        );
        assert_eq!(
            end("timestamp:1970-01-01T00:00:00Z"),
            EndPosition::Timestamp(0)
        );
        assert_eq!(
            end("timestamp:9999-12-31T23:59:59.999Z"),
            EndPosition::Timestamp(MAX_RFC3339_MS)
        );
    }

    #[test]
    fn epoch_millisecond_timestamps() {
        assert_eq!(
            start("timestamp:1795255200000"),
            StartPosition::Timestamp(NOV_21)
        );
        assert_eq!(start("timestamp:0"), StartPosition::Timestamp(0));
        assert_eq!(
            end("timestamp:9223372036854775807"),
            EndPosition::Timestamp(i64::MAX)
        );
    }

    #[test]
    fn bad_timestamps_name_the_problem() {
        use TimestampProblem::*;
        assert_eq!(start_err("timestamp:"), ts_err("", Format));
        assert_eq!(
            start_err("timestamp:yesterday"),
            ts_err("yesterday", Format)
        );
        assert_eq!(
            start_err("timestamp:2026-11-21"),
            ts_err("2026-11-21", Format)
        );
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:00"),
            ts_err("2026-11-21T10:00:00", MissingZone)
        );
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:00+24:00"),
            ts_err("2026-11-21T10:00:00+24:00", BadZone)
        );
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:00+0a:00"),
            ts_err("2026-11-21T10:00:00+0a:00", BadZone)
        );
        assert_eq!(
            start_err("timestamp:2026-13-21T10:00:00Z"),
            ts_err("2026-13-21T10:00:00Z", OutOfRange)
        );
        assert_eq!(
            start_err("timestamp:2026-02-30T10:00:00Z"),
            ts_err("2026-02-30T10:00:00Z", OutOfRange)
        );
        assert_eq!(
            start_err("timestamp:1969-12-31T23:59:59Z"),
            ts_err("1969-12-31T23:59:59Z", OutOfRange)
        );
        assert_eq!(
            start_err("timestamp:1970-01-01T00:30:00+01:00"),
            ts_err("1970-01-01T00:30:00+01:00", OutOfRange),
            "before the epoch once converted to UTC"
        );
        assert_eq!(start_err("timestamp:-5"), ts_err("-5", OutOfRange));
        assert_eq!(
            start_err("timestamp:99999999999999999999"),
            ts_err("99999999999999999999", OutOfRange)
        );
        for junk in [
            "2026-11-21T10:00:00Zjunk",
            "2026-11-21T10:00:00ZZ",
            "2026-11-21T10:00:00Z+02:00",
            "2026-11-21T10:00:00+00:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00Z",
        ] {
            assert_eq!(
                start_err(&format!("timestamp:{junk}")),
                ts_err(junk, Format)
            );
        }
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:00.12x4Z"),
            ts_err("2026-11-21T10:00:00.12x4Z", Format)
        );
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:00é"),
            ts_err("2026-11-21T10:00:00é", Format)
        );
        assert_eq!(
            start_err("timestamp:2026-11").to_string(),
            "bad timestamp `2026-11`: expected RFC 3339 (e.g. 2026-11-21T10:00:00Z) or \
             milliseconds since the epoch"
        );
    }

    #[test]
    fn a_time_of_day_that_does_not_exist_is_refused() {
        // A second 60 that is no leap second (humantime's reader, used here before, took
        // it as second 59).
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:60Z"),
            ts_err("2026-11-21T10:00:60Z", TimestampProblem::OutOfRange)
        );
        assert_eq!(
            start_err("timestamp:2026-11-21T10:00:60+02:00"),
            ts_err("2026-11-21T10:00:60+02:00", TimestampProblem::OutOfRange)
        );
        // A local time before 1970 that is after the epoch in UTC is a usable start.
        assert_eq!(
            start("timestamp:1969-12-31T23:30:00-01:00"),
            StartPosition::Timestamp(30 * 60_000)
        );
    }

    #[test]
    fn unknown_and_empty() {
        assert_eq!(
            start_err("beginning").to_string(),
            format!("unknown position `beginning` (expected {START_FORMS})")
        );
        assert_eq!(
            start_err(" "),
            PositionError::Empty {
                expected: START_FORMS
            }
        );
        assert_eq!(
            end_err(""),
            PositionError::Empty {
                expected: END_FORMS
            }
        );
        assert!(matches!(
            start_err("offset:0:1"),
            PositionError::Unknown { .. }
        ));
        assert!(matches!(start_err("time:0"), PositionError::Unknown { .. }));
    }

    #[test]
    fn start_only_keywords_are_not_ends() {
        assert_eq!(
            end_err("earliest"),
            PositionError::NotAnEnd("earliest".into())
        );
        assert_eq!(
            end_err(" Committed ").to_string(),
            format!("`Committed` is not a valid end position (expected {END_FORMS})")
        );
    }

    #[test]
    fn display_parses_back() {
        let starts = [
            StartPosition::Earliest,
            StartPosition::Latest,
            StartPosition::Committed,
            StartPosition::Offsets(vec![(0, 100), (1, 250)]),
            StartPosition::Timestamp(NOV_21),
            StartPosition::Timestamp(NOV_21 + 7),
            StartPosition::Timestamp(MAX_RFC3339_MS + 1),
        ];
        let shown: Vec<String> = starts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "earliest",
                "latest",
                "committed",
                "offsets:0:100,1:250",
                "timestamp:2026-11-21T10:00:00Z",
                "timestamp:2026-11-21T10:00:00.007Z",
                "timestamp:253402300800000",
            ]
        );
        for (p, s) in starts.iter().zip(&shown) {
            assert_eq!(&start(s), p);
        }
        for p in [
            EndPosition::Latest,
            EndPosition::Offsets(vec![(5, 0)]),
            EndPosition::Timestamp(0),
        ] {
            assert_eq!(end(&p.to_string()), p);
        }
        assert_eq!(
            StartPosition::Timestamp(-1).to_string(),
            "timestamp:-1",
            "unparsable, but printable"
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Opts {
            start: StartPosition,
            end: Option<EndPosition>,
        }
        let parsed: Opts = toml::from_str(
            "start = \"timestamp:2026-11-21T12:00:00+02:00\"\nend = \"0:10,1:20\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parsed,
            Opts {
                start: StartPosition::Timestamp(NOV_21),
                end: Some(EndPosition::Offsets(vec![(0, 10), (1, 20)])),
            }
        );
        let json = serde_json::to_string(&parsed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            r#"{"start":"timestamp:2026-11-21T10:00:00Z","end":"offsets:0:10,1:20"}"#
        );
        let back: Opts = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, parsed);
        let none: Opts = serde_json::from_str(r#"{"start":"latest","end":null}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.end, None);
    }

    #[test]
    fn serde_errors_name_the_bad_part() {
        let err = serde_json::from_str::<StartPosition>(r#""0-100""#)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("bad partition:offset pair `0-100` (expected P:O)")),
            "{err:?}"
        );
        let err = serde_json::from_str::<EndPosition>(r#""earliest""#)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("not a valid end position")),
            "{err:?}"
        );
        assert!(serde_json::from_str::<StartPosition>("5").is_err());
    }

    fn wm(low: i64, high: i64) -> Watermarks {
        Watermarks { low, high }
    }

    #[test]
    fn concrete_answers_are_trusted() {
        assert_eq!(
            resolve_partition(NOV_21, Some(42), wm(0, 100)),
            TimestampResolution::Resolved(42)
        );
        assert_eq!(
            resolve_partition(NOV_21, Some(0), wm(0, 100)),
            TimestampResolution::Resolved(0)
        );
        assert_eq!(
            resolve_partition(NOV_21, Some(3), wm(10, 100)),
            TimestampResolution::Resolved(10),
            "retention moved past the answer"
        );
    }

    #[test]
    fn no_answer_scans_from_the_low_watermark() {
        let scan = TimestampResolution::ScanFrom {
            from: 5,
            skip_before_ts: NOV_21,
            until: 100,
        };
        // librdkafka's mock answers -1 (end); a real broker does too when nothing is at or
        // after the timestamp; other sentinels and missing answers are the same.
        for answer in [None, Some(-1), Some(-2)] {
            assert_eq!(resolve_partition(NOV_21, answer, wm(5, 100)), scan);
        }
    }

    #[test]
    fn empty_partitions_resolve_to_their_end() {
        assert_eq!(
            resolve_partition(NOV_21, Some(-1), wm(100, 100)),
            TimestampResolution::Resolved(100)
        );
        assert_eq!(
            resolve_partition(NOV_21, None, wm(0, 0)),
            TimestampResolution::Resolved(0)
        );
    }

    #[test]
    fn resolves_every_partition() {
        let answers = BTreeMap::from([(0, Some(17)), (1, Some(-1)), (2, None), (4, Some(9))]);
        let watermarks = BTreeMap::from([
            (0, wm(0, 50)),
            (1, wm(3, 60)),
            (2, wm(7, 7)),
            (3, wm(0, 10)),
        ]);
        let got = resolve_timestamp_fallback(NOV_21, &answers, &watermarks);
        let scan = |from, until| TimestampResolution::ScanFrom {
            from,
            skip_before_ts: NOV_21,
            until,
        };
        assert_eq!(
            got,
            Ok(BTreeMap::from([
                (0, TimestampResolution::Resolved(17)),
                (1, scan(3, 60)),
                (2, TimestampResolution::Resolved(7)),
                (3, scan(0, 10)),
                (4, TimestampResolution::Resolved(9)),
            ]))
        );
    }

    #[test]
    fn unanswered_partition_without_watermarks_is_an_error() {
        let answers = BTreeMap::from([(0, Some(1)), (1, Some(-1)), (2, None)]);
        let err = resolve_timestamp_fallback(0, &answers, &BTreeMap::new());
        assert_eq!(err, Err(MissingWatermarks(1)));
        assert_eq!(
            MissingWatermarks(1).to_string(),
            "partition 1: no offset for the start timestamp and no watermarks to scan from"
        );
        assert_eq!(
            resolve_timestamp_fallback(0, &BTreeMap::new(), &BTreeMap::new()),
            Ok(BTreeMap::new())
        );
    }

    #[test]
    fn scan_starts_at_the_first_record_on_time() {
        let mut scan = TimestampScan::new(1_000, 100);
        let records = [(0, 10), (1, 999), (2, 1_000), (3, 5), (4, 2_000)];
        let admitted: Vec<bool> = records
            .iter()
            .map(|&(o, ts)| scan.admit(o, Some(ts)))
            .collect();
        assert_eq!(
            admitted,
            [false, false, true, true, true],
            "older records after the start are kept"
        );
        assert_eq!(scan.started_at(), Some(2));
        assert!(!scan.admit(1, Some(5_000)), "re-fetched below the start");
        assert!(scan.admit(2, Some(0)));
    }

    #[test]
    fn scan_emits_everything_from_the_old_log_end() {
        // Nothing at or after T existed when resolved: like seeking to the end.
        let mut scan = TimestampScan::new(i64::MAX, 3);
        assert!(!scan.admit(0, Some(1)));
        assert!(!scan.admit(2, None));
        assert!(scan.admit(3, Some(1)));
        assert!(scan.admit(4, None));
        assert_eq!(scan.started_at(), Some(3));
    }

    #[test]
    fn records_without_timestamps_never_match() {
        let mut scan = TimestampScan::new(0, 10);
        assert!(!scan.admit(0, None));
        assert!(!scan.admit(1, Some(-1)));
        assert!(scan.admit(2, Some(0)));
    }

    #[test]
    fn scan_filter_for_a_resolution() {
        assert_eq!(
            TimestampScan::for_resolution(&TimestampResolution::Resolved(3)),
            None
        );
        let r = TimestampResolution::ScanFrom {
            from: 0,
            skip_before_ts: 7,
            until: 9,
        };
        assert_eq!(
            TimestampScan::for_resolution(&r),
            Some(TimestampScan::new(7, 9))
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn start_position() -> impl Strategy<Value = StartPosition> {
            prop_oneof![
                Just(StartPosition::Earliest),
                Just(StartPosition::Latest),
                Just(StartPosition::Committed),
                proptest::collection::btree_map(0..i32::MAX, 0..i64::MAX, 1..5)
                    .prop_map(|m| StartPosition::Offsets(m.into_iter().collect())),
                (0..i64::MAX).prop_map(StartPosition::Timestamp),
                (0..=MAX_RFC3339_MS).prop_map(StartPosition::Timestamp),
            ]
        }

        proptest! {
            #[test]
            fn display_round_trips(p in start_position()) {
                prop_assert_eq!(p.to_string().parse::<StartPosition>(), Ok(p));
            }

            #[test]
            fn parsing_never_panics(s in "\\PC{0,40}") {
                let _ = s.parse::<StartPosition>();
                let _ = s.parse::<EndPosition>();
                let _ = format!("timestamp:{s}").parse::<StartPosition>();
            }

            /// The scan admits exactly the offsets from the first on-time record (or the
            /// old log end) onwards, like a broker's answer would.
            #[test]
            fn scan_matches_the_broker_rule(ts in proptest::collection::vec(0..100i64, 0..30),
                                            t in 0..110i64) {
                let until = ts.len() as i64;
                let first = ts.iter().position(|x| *x >= t).map_or(until, |i| i as i64);
                let mut scan = TimestampScan::new(t, until);
                for (o, x) in ts.iter().enumerate() {
                    prop_assert_eq!(scan.admit(o as i64, Some(*x)), o as i64 >= first);
                }
                prop_assert!(scan.admit(until, Some(0)));
            }
        }
    }
}
