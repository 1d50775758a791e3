//! Dates and times as text, on the `time` crate: a UTC instant in milliseconds since the
//! Unix epoch written as RFC 3339 (`2024-05-01T12:00:03.042Z`, or to the second), RFC 3339
//! read back (any UTC offset), and the `created_at` of the X API v1.1
//! (`Wed Oct 10 20:19:24 +0000 2018`).
//!
//! A date or time of day that does not exist (month 13, February 30, `24:00:00`,
//! `99:99:99`, a second 60 that is no leap second) is an error, never carried over into
//! the next minute, day or month.
//!
//! [`push_rfc3339_millis`] is on the tweet generator's hot path (one date a tweet): the
//! calendar date comes from `time`, the digits are written directly, and a test holds
//! the output to `time`'s own formatting over the whole range.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// The first millisecond RFC 3339 can write (four-digit years): 0000-01-01T00:00:00.000Z.
pub const MIN_RFC3339_MS: i64 = -62_167_219_200_000;
/// The last millisecond RFC 3339 can write (four-digit years): 9999-12-31T23:59:59.999Z.
pub const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

const MS_PER_DAY: i64 = 86_400_000;
/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Why a date and time was not read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not laid out as RFC 3339.
    #[error("expected RFC 3339 (e.g. 2026-11-21T10:00:00Z)")]
    NotRfc3339,
    /// Not laid out as a v1.1 `created_at`.
    #[error("expected a date and time in the form `Wed Oct 10 20:19:24 +0000 2018`")]
    NotTwitterDate,
    /// An RFC 3339 date-time without `Z` or `±HH:MM`.
    #[error("missing time zone (end it with Z or an offset such as +02:00)")]
    MissingZone,
    /// A `±HH:MM` suffix that is not digits, or with hours above 23 or minutes above 59.
    #[error("bad UTC offset (expected ±HH:MM)")]
    BadZone,
    /// Laid out right, but no such day or time of day (month 13, February 30, 24:00).
    #[error("no such date or time of day")]
    NoSuchDate,
    /// Outside the years RFC 3339 can write (0000 to 9999).
    #[error("outside the years 0000 to 9999")]
    OutOfRange,
}

/// How much of the time of day RFC 3339 text carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `2026-11-21T10:00:00Z` (milliseconds dropped).
    Seconds,
    /// `2026-11-21T10:00:00.000Z`.
    Millis,
}

/// Appends `ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC with
/// milliseconds, e.g. `2024-05-01T12:00:03.042Z`.
pub fn push_rfc3339_millis(out: &mut String, ms: i64) -> Result<(), DateError> {
    push_rfc3339(out, ms, Precision::Millis)
}

/// Appends `ms` as RFC 3339 in UTC to the given precision.
pub fn push_rfc3339(out: &mut String, ms: i64, precision: Precision) -> Result<(), DateError> {
    if !(MIN_RFC3339_MS..=MAX_RFC3339_MS).contains(&ms) {
        return Err(DateError::OutOfRange);
    }
    let days = ms.div_euclid(MS_PER_DAY);
    let of_day = ms.rem_euclid(MS_PER_DAY);
    let julian = i32::try_from(days + UNIX_EPOCH_JULIAN_DAY).map_err(|_| DateError::OutOfRange)?;
    let date = Date::from_julian_day(julian).map_err(|_| DateError::OutOfRange)?;
    let (year, month, day) = date.to_calendar_date();
    let year = u32::try_from(year).map_err(|_| DateError::OutOfRange)?;
    let mut b = *b"YYYY-MM-DDTHH:MM:SS.mmmZ";
    put_2(&mut b[0..], year / 100);
    put_2(&mut b[2..], year);
    put_2(&mut b[5..], u32::from(u8::from(month)));
    put_2(&mut b[8..], u32::from(day));
    let of_day = of_day as u32; // 0 ..= 86_399_999
    put_2(&mut b[11..], of_day / 3_600_000);
    put_2(&mut b[14..], of_day / 60_000 % 60);
    put_2(&mut b[17..], of_day / 1_000 % 60);
    let text: &[u8] = match precision {
        Precision::Millis => {
            b[20] = b'0' + (of_day / 100 % 10) as u8;
            put_2(&mut b[21..], of_day);
            &b
        }
        Precision::Seconds => {
            b[19] = b'Z';
            &b[..20]
        }
    };
    // Digits and punctuation only: always UTF-8.
    out.push_str(std::str::from_utf8(text).map_err(|_| DateError::OutOfRange)?);
    Ok(())
}

/// `ms` as RFC 3339 in UTC to the given precision (see [`push_rfc3339`]).
pub fn rfc3339(ms: i64, precision: Precision) -> Result<String, DateError> {
    let mut out = String::with_capacity(24);
    push_rfc3339(&mut out, ms, precision)?;
    Ok(out)
}

/// Writes `v % 100` as two digits.
fn put_2(out: &mut [u8], v: u32) {
    let v = (v % 100) as u8;
    if let [a, b, ..] = out {
        *a = b'0' + v / 10;
        *b = b'0' + v % 10;
    }
}

/// An RFC 3339 date-time as milliseconds since the Unix epoch (negative before it);
/// digits below the millisecond are dropped.
///
/// Takes `T`, `t` or a blank between date and time, any number of fraction digits, and
/// `Z`, `z` or `±HH:MM`. A second 60 is taken only where a leap second can be (the last
/// second of a month in UTC), as the millisecond before the next minute.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, DateError> {
    if !text.is_ascii() {
        return Err(DateError::NotRfc3339);
    }
    let mut v = text.to_ascii_uppercase();
    let zone = split_zone(&v)?;
    let local = zone.map_or(v.as_str(), |z| &v[..v.len() - z]);
    if !is_plain_date_time(local) {
        return Err(DateError::NotRfc3339);
    }
    // The layout is right: what `time` refuses from here on is a value that does not exist.
    v.replace_range(10..11, "T");
    if zone.is_none() {
        v.push('Z');
    }
    let at = OffsetDateTime::parse(&v, &Rfc3339).map_err(|_| DateError::NoSuchDate)?;
    if zone.is_none() {
        return Err(DateError::MissingZone);
    }
    epoch_ms(at)
}

/// Milliseconds since the epoch, rounded down.
fn epoch_ms(at: OffsetDateTime) -> Result<i64, DateError> {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000))
        .map_err(|_| DateError::OutOfRange)
}

/// The length of the zone suffix of an upper-cased ASCII date-time (`Z` or `±HH:MM`),
/// `None` if it has none.
fn split_zone(v: &str) -> Result<Option<usize>, DateError> {
    if v.ends_with('Z') {
        return Ok(Some(1));
    }
    let b = v.as_bytes();
    let n = b.len();
    // `YYYY-MM-DDTHH:MM:SS` is 19 bytes: shorter strings cannot carry a zone too.
    if n < 25 || !matches!(b[n - 6], b'+' | b'-') || b[n - 3] != b':' {
        return Ok(None);
    }
    let hours = two_digits(b[n - 5], b[n - 4]).ok_or(DateError::BadZone)?;
    let minutes = two_digits(b[n - 2], b[n - 1]).ok_or(DateError::BadZone)?;
    if hours > 23 || minutes > 59 {
        return Err(DateError::BadZone);
    }
    Ok(Some(6))
}

/// Two ASCII digits as a number.
fn two_digits(a: u8, b: u8) -> Option<u8> {
    let digit = |c: u8| c.is_ascii_digit().then(|| c - b'0');
    Some(digit(a)? * 10 + digit(b)?)
}

/// Whether `v` is laid out as `YYYY-MM-DD?HH:MM:SS` (`?`: `T` or a blank), optionally
/// followed by `.` and digits.
fn is_plain_date_time(v: &str) -> bool {
    let b = v.as_bytes();
    let Some(head) = b.get(..19) else {
        return false;
    };
    let laid_out = head.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T' || c == b' ',
        13 | 16 => c == b':',
        _ => c.is_ascii_digit(),
    });
    laid_out
        && match &b[19..] {
            [] => true,
            [b'.', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// A v1.1 `created_at` (`Wed Oct 10 20:19:24 +0000 2018`, always UTC) as milliseconds
/// since the Unix epoch. The weekday is read but not checked against the date.
pub fn parse_twitter_date_ms(text: &str) -> Result<i64, DateError> {
    let v11 = format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] +0000 [year]"
    );
    let at = PrimitiveDateTime::parse(text, v11).map_err(|e| match e {
        time::error::Parse::TryFromParsed(_) => DateError::NoSuchDate,
        _ => DateError::NotTwitterDate,
    })?;
    // Four-digit years, as the API writes them.
    if !(1000..=9999).contains(&at.year()) {
        return Err(DateError::NotTwitterDate);
    }
    epoch_ms(at.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn millis(ms: i64) -> String {
        rfc3339(ms, Precision::Millis).unwrap_or_else(|e| panic!("{ms}: {e}"))
    }

    fn seconds(ms: i64) -> String {
        rfc3339(ms, Precision::Seconds).unwrap_or_else(|e| panic!("{ms}: {e}"))
    }

    /// What `time` itself writes for `ms`.
    fn time_writes(ms: i64, precision: Precision) -> String {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or_else(|e| panic!("{ms}: {e}"));
        let written = match precision {
            Precision::Millis => at.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            )),
            Precision::Seconds => at.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            )),
        };
        written.unwrap_or_else(|e| panic!("{ms}: {e}"))
    }

    #[test]
    fn writes_rfc3339_in_utc() {
        assert_eq!(millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(millis(1_704_067_200_000), "2024-01-01T00:00:00.000Z");
        assert_eq!(
            millis(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert_eq!(millis(1_714_564_803_042), "2024-05-01T12:00:03.042Z");
        assert_eq!(millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(millis(MAX_RFC3339_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(millis(MIN_RFC3339_MS), "0000-01-01T00:00:00.000Z");
        assert_eq!(seconds(1_795_255_200_999), "2026-11-21T10:00:00Z");
        assert_eq!(seconds(-1), "1969-12-31T23:59:59Z");
        for ms in [MAX_RFC3339_MS + 1, MIN_RFC3339_MS - 1, i64::MAX, i64::MIN] {
            assert_eq!(rfc3339(ms, Precision::Millis), Err(DateError::OutOfRange));
            assert_eq!(rfc3339(ms, Precision::Seconds), Err(DateError::OutOfRange));
        }
        let mut out = String::from("at ");
        assert_eq!(push_rfc3339_millis(&mut out, 5), Ok(()));
        assert_eq!(out, "at 1970-01-01T00:00:00.005Z");
    }

    #[test]
    fn reads_rfc3339_with_any_offset() {
        let nov_21 = 1_795_255_200_000;
        for text in [
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00+00:00",
            "2026-11-21T10:00:00-00:00",
            "2026-11-21T12:00:00+02:00",
            "2026-11-21T04:30:00-05:30",
            "2026-11-21t10:00:00z",
            "2026-11-21 10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(text), Ok(nov_21), "{text}");
        }
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T10:00:00.1239Z"),
            Ok(nov_21 + 123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T10:00:00.123456789012Z"),
            Ok(nov_21 + 123)
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(
            parse_rfc3339_ms("9999-12-31T23:59:59.999Z"),
            Ok(MAX_RFC3339_MS)
        );
        // A leap second, where one can be: the millisecond before the next minute.
        assert_eq!(
            parse_rfc3339_ms("2016-12-31T23:59:60Z"),
            Ok(1_483_228_799_999)
        );
    }

    #[test]
    fn dates_and_times_that_do_not_exist_are_refused() {
        // humantime's reader, used for Kafka start positions before, took a second 60
        // anywhere (as second 59).
        for text in [
            "2026-11-21T10:00:60Z",
            "2026-11-21T10:30:60+02:00",
            "2026-13-21T10:00:00Z",
            "2026-00-21T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2024-02-30T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-11-00T10:00:00Z",
            "2026-11-32T10:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:60:00Z",
            "2026-11-21T99:99:99Z",
            "2026-11-21T99:99:99",
        ] {
            assert_eq!(parse_rfc3339_ms(text), Err(DateError::NoSuchDate), "{text}");
        }
        assert_eq!(
            DateError::NoSuchDate.to_string(),
            "no such date or time of day"
        );
    }

    #[test]
    fn other_layouts_name_the_problem() {
        use DateError::*;
        assert_eq!(parse_rfc3339_ms("2026-11-21T10:00:00"), Err(MissingZone));
        assert_eq!(parse_rfc3339_ms("2026-11-21T10:00:00+24:00"), Err(BadZone));
        assert_eq!(parse_rfc3339_ms("2026-11-21T10:00:00+0a:00"), Err(BadZone));
        assert_eq!(parse_rfc3339_ms("2026-11-21T10:00:00+02:60"), Err(BadZone));
        for text in [
            "",
            "yesterday",
            "2026-11-21",
            "2026-11-21X10:00:00Z",
            "2026-1x-21T10:00:00Z",
            "26-11-21T10:00:00Z",
            "2026-11-21T10:00:00Zjunk",
            "2026-11-21T10:00:00ZZ",
            "2026-11-21T10:00:00Z+02:00",
            "2026-11-21T10:00:00+00:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00Z",
            "2026-11-21T10:00:00.12x4Z",
            "2026-11-21T10:00:00é",
            "+2026-11-21T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(text), Err(NotRfc3339), "{text:?}");
        }
    }

    #[test]
    fn reads_the_v11_created_at() {
        assert_eq!(
            parse_twitter_date_ms("Wed Oct 10 20:19:24 +0000 2018"),
            Ok(1_539_202_764_000)
        );
        assert_eq!(
            parse_twitter_date_ms("Thu Feb 29 23:59:59 +0000 2024").map(millis),
            Ok("2024-02-29T23:59:59.000Z".to_owned())
        );
        for text in [
            "Wed Oct 10 99:99:99 +0000 2018",
            "Wed Oct 10 24:00:00 +0000 2018",
            "Wed Oct 10 20:60:24 +0000 2018",
            "Wed Oct 10 20:19:60 +0000 2018",
            "Sat Feb 31 12:00:03 +0000 2024",
            "Thu Feb 29 12:00:03 +0000 2023",
            "Wed Oct 00 20:19:24 +0000 2018",
            "Wed Oct 32 20:19:24 +0000 2018",
            "Wed Mai 01 12:00:03 +0000 2024",
            "Wed May 01 12:00:03 +0100 2024",
            "Wed May 01 12:00:03 +0000 24",
            "Wed May 01 12:00:03 +0000 0024",
            "Wed May 1 12:00:03 +0000 2024",
            "Wed May 01 12:00:03 +0000 2024 extra",
            "2018-10-10T20:19:24Z",
            "",
        ] {
            assert!(parse_twitter_date_ms(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_twitter_date_ms("Sat Feb 31 12:00:03 +0000 2024"),
            Err(DateError::NoSuchDate)
        );
        assert_eq!(parse_twitter_date_ms("odd"), Err(DateError::NotTwitterDate));
    }

    proptest! {
        /// The digits written directly are `time`'s own, over the whole range.
        #[test]
        fn writes_what_time_writes(ms in MIN_RFC3339_MS..=MAX_RFC3339_MS) {
            prop_assert_eq!(millis(ms), time_writes(ms, Precision::Millis));
            prop_assert_eq!(seconds(ms), time_writes(ms, Precision::Seconds));
        }

        /// Around today, where the generator and Kafka timestamps live.
        #[test]
        fn writes_what_time_writes_near_now(ms in 0i64..4_102_444_800_000) {
            prop_assert_eq!(millis(ms), time_writes(ms, Precision::Millis));
        }

        /// What is written reads back to the same millisecond.
        #[test]
        fn reads_back_what_it_writes(ms in MIN_RFC3339_MS..=MAX_RFC3339_MS) {
            prop_assert_eq!(parse_rfc3339_ms(&millis(ms)), Ok(ms));
            prop_assert_eq!(parse_rfc3339_ms(&seconds(ms)), Ok(ms.div_euclid(1000) * 1000));
        }
    }

    /// `cargo test --release --lib -- --ignored --nocapture rfc3339_speed`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn rfc3339_speed() {
        use std::hint::black_box;
        use std::time::Instant;
        let n = 5_000_000i64;
        let start_ms = 1_704_067_200_000i64;
        let mut out = String::with_capacity(32);
        let t = Instant::now();
        for i in 0..n {
            out.clear();
            let _ = push_rfc3339_millis(&mut out, black_box(start_ms + i));
            black_box(&out);
        }
        let direct = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        let description = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let t = Instant::now();
        for i in 0..n {
            let ms = black_box(start_ms + i);
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
            let s = at.map(|at| at.format(description));
            black_box(&s);
        }
        let by_time = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        println!(
            "RFC 3339 with ms: {direct:.1} ns written directly, {by_time:.1} ns by time's format"
        );
    }
}
