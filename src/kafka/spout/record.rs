//! A fetched Kafka record, owned, and the tuple values it becomes.

use std::sync::Arc;

use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use serde::{Deserialize, Serialize};

use crate::data::tuple::{Fields, Value, Values};
use crate::kafka::TopicPartition;
use crate::tweet::fields::{tweet_fields, tweet_values};
use crate::tweet::wire::{StreamMessage, parse_line};

/// What the spout emits for a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// `topic, partition, offset, key, value, timestamp`.
    #[default]
    Raw,
    /// The value is tweet JSON (v2 or v1.1): the standard tweet fields.
    Tweet,
}

/// How `key` and `value` are emitted in the raw format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueEncoding {
    /// UTF-8 text (invalid sequences replaced by U+FFFD, and counted).
    #[default]
    String,
    /// The bytes as they are.
    Bytes,
}

/// A record, detached from the consumer.
#[derive(Clone, Debug)]
pub struct Record {
    pub tp: TopicPartition,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Milliseconds since the epoch, if the record has a timestamp.
    pub timestamp: Option<i64>,
    /// The key and value were longer than `max_record_bytes` together: their length.
    /// They were not copied (`key` and `payload` are `None`); the record gives no tuple.
    pub oversized: Option<u64>,
}

impl Record {
    /// Copies `m`; `topic` is the shared name of its topic. A key and value longer than
    /// `max_bytes` together are not copied: the record is marked [`Record::oversized`].
    pub fn from_message(m: &BorrowedMessage<'_>, topic: Arc<str>, max_bytes: usize) -> Record {
        Record::new(
            TopicPartition::new(topic, m.partition()),
            m.offset(),
            m.key(),
            m.payload(),
            m.timestamp().to_millis(),
            max_bytes,
        )
    }

    /// A record of `key` and `payload`, copied unless longer than `max_bytes` together.
    pub fn new(
        tp: TopicPartition,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        timestamp: Option<i64>,
        max_bytes: usize,
    ) -> Record {
        let len = key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len);
        let fits = len <= max_bytes;
        Record {
            tp,
            offset,
            key: key.filter(|_| fits).map(<[u8]>::to_vec),
            payload: payload.filter(|_| fits).map(<[u8]>::to_vec),
            timestamp,
            oversized: (!fits).then_some(len as u64),
        }
    }
}

/// The output fields of a format.
pub fn fields_of(format: RecordFormat) -> Fields {
    match format {
        RecordFormat::Raw => {
            Fields::new(["topic", "partition", "offset", "key", "value", "timestamp"])
        }
        RecordFormat::Tweet => tweet_fields(),
    }
}

/// Why a record gives no tuple.
#[derive(Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Not a tweet: malformed JSON, or JSON without the tweet's fields.
    BadTweet(String),
    /// A stream notice (delete, limit, errors) or keep-alive: nothing to count.
    Notice,
    /// The key and value were longer than `max_record_bytes` (their length).
    Oversized(u64),
}

/// The values of a record, and whether a text field needed UTF-8 replacement.
pub fn to_values(
    r: &Record,
    format: RecordFormat,
    encoding: ValueEncoding,
) -> Result<(Values, bool), Unusable> {
    if let Some(len) = r.oversized {
        return Err(Unusable::Oversized(len));
    }
    match format {
        RecordFormat::Raw => {
            let mut lossy = false;
            let mut bytes = |b: &Option<Vec<u8>>| match (b, encoding) {
                (None, _) => Value::Null,
                (Some(b), ValueEncoding::Bytes) => Value::Bytes(Arc::from(b.as_slice())),
                (Some(b), ValueEncoding::String) => match std::str::from_utf8(b) {
                    Ok(s) => Value::from(s),
                    Err(_) => {
                        lossy = true;
                        Value::from(String::from_utf8_lossy(b).into_owned())
                    }
                },
            };
            let key = bytes(&r.key);
            let value = bytes(&r.payload);
            let values = Values::from_iter([
                Value::from(&*r.tp.topic),
                Value::Int(i64::from(r.tp.partition)),
                Value::Int(r.offset),
                key,
                value,
                r.timestamp.map_or(Value::Null, Value::Int),
            ]);
            Ok((values, lossy))
        }
        RecordFormat::Tweet => {
            let payload = r.payload.as_deref().unwrap_or_default();
            match parse_line(payload) {
                Ok(StreamMessage::Tweet(t)) => Ok((tweet_values(t), false)),
                Ok(StreamMessage::Unknown) => {
                    Err(Unusable::BadTweet("JSON that is not a tweet".into()))
                }
                Ok(_) => Err(Unusable::Notice),
                Err(e) => Err(Unusable::BadTweet(e.to_string())),
            }
        }
    }
}

/// A partition as a source of event time: its own key in the task's watermark.
pub(crate) fn source_key(tp: &TopicPartition) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64(tp.topic.as_bytes());
    (h << 20) ^ u64::from(tp.partition as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(payload: &[u8]) -> Record {
        Record {
            tp: TopicPartition::new("t", 2),
            offset: 7,
            key: Some(b"k".to_vec()),
            payload: Some(payload.to_vec()),
            timestamp: Some(1000),
            oversized: None,
        }
    }

    #[test]
    fn raw_records_carry_their_coordinates() {
        let (v, lossy) =
            to_values(&rec(b"hello"), RecordFormat::Raw, ValueEncoding::String).unwrap();
        assert!(!lossy);
        assert_eq!(v.len(), fields_of(RecordFormat::Raw).len());
        assert_eq!(v[0].as_str(), Some("t"));
        assert_eq!(v[1], Value::Int(2));
        assert_eq!(v[2], Value::Int(7));
        assert_eq!(v[3].as_str(), Some("k"));
        assert_eq!(v[4].as_str(), Some("hello"));
        assert_eq!(v[5], Value::Int(1000));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_reported_or_kept_as_bytes() {
        let (v, lossy) =
            to_values(&rec(b"a\xffb"), RecordFormat::Raw, ValueEncoding::String).unwrap();
        assert!(lossy);
        assert_eq!(v[4].as_str(), Some("a\u{FFFD}b"));
        let (v, lossy) =
            to_values(&rec(b"a\xffb"), RecordFormat::Raw, ValueEncoding::Bytes).unwrap();
        assert!(!lossy);
        assert_eq!(v[4], Value::Bytes(Arc::from(&b"a\xffb"[..])));
    }

    #[test]
    fn tweets_parse_and_bad_json_is_reported() {
        let v2 = br##"{"data":{"id":"1","text":"hi #Rust","lang":"en"}}"##;
        let (v, _) = to_values(&rec(v2), RecordFormat::Tweet, ValueEncoding::String).unwrap();
        assert_eq!(v.len(), tweet_fields().len());
        assert_eq!(v[1].as_str(), Some("hi #Rust"));
        assert!(matches!(
            to_values(
                &rec(b"{not json"),
                RecordFormat::Tweet,
                ValueEncoding::String
            ),
            Err(Unusable::BadTweet(_))
        ));
    }

    #[test]
    fn a_record_longer_than_the_limit_is_not_copied_and_gives_no_tuple() {
        let tp = TopicPartition::new("t", 0);
        let r = Record::new(tp.clone(), 1, Some(b"kk"), Some(&[b'x'; 99]), None, 100);
        assert_eq!(r.oversized, Some(101));
        assert_eq!((r.key, r.payload), (None, None));
        let r = Record::new(tp.clone(), 1, Some(b"k"), Some(&[b'x'; 99]), None, 100);
        for format in [RecordFormat::Raw, RecordFormat::Tweet] {
            let mut big = r.clone();
            big.key = None;
            big.payload = None;
            big.oversized = Some(101);
            assert_eq!(
                to_values(&big, format, ValueEncoding::String).err(),
                Some(Unusable::Oversized(101))
            );
        }
        assert_eq!(r.oversized, None);
        assert!(to_values(&r, RecordFormat::Raw, ValueEncoding::Bytes).is_ok());
    }

    /// Fuzz properties (see `crate::fuzz_support`): a record of any key and value, in
    /// either format and encoding, gives values or a reason, never a panic; it is copied
    /// only within the limit; near-valid tweet JSON gives a tweet, a notice or a reason.
    mod fuzz {
        use super::*;
        use crate::fuzz_support::{
            byte_mutation, config, framing_bytes, json_mutation, mutate_bytes, mutate_json,
        };
        use crate::kafka::spout::config::DEFAULT_MAX_RECORD_BYTES;
        use proptest::prelude::*;

        fn format() -> impl Strategy<Value = (RecordFormat, ValueEncoding)> {
            (
                prop_oneof![Just(RecordFormat::Raw), Just(RecordFormat::Tweet)],
                prop_oneof![Just(ValueEncoding::String), Just(ValueEncoding::Bytes)],
            )
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn fuzz_record_any_bytes(
                key in prop::option::of(framing_bytes(40)),
                payload in prop::option::of(framing_bytes(300)),
                max in prop_oneof![1usize..64, Just(DEFAULT_MAX_RECORD_BYTES)],
                (format, encoding) in format(),
            ) {
                let len = key.as_ref().map_or(0, Vec::len) + payload.as_ref().map_or(0, Vec::len);
                let r = Record::new(
                    TopicPartition::new("t", 0), 5, key.as_deref(), payload.as_deref(), None, max,
                );
                let held = r.key.as_ref().map_or(0, Vec::len) + r.payload.as_ref().map_or(0, Vec::len);
                prop_assert!(held <= max);
                match to_values(&r, format, encoding) {
                    Err(Unusable::Oversized(n)) => prop_assert!(n as usize == len && len > max),
                    Ok((values, lossy)) => {
                        prop_assert!(len <= max);
                        prop_assert_eq!(values.len(), fields_of(format).len());
                        if format == RecordFormat::Raw {
                            let bad = |b: &Option<Vec<u8>>| {
                                b.as_deref().is_some_and(|b| std::str::from_utf8(b).is_err())
                            };
                            prop_assert_eq!(
                                lossy,
                                encoding == ValueEncoding::String && (bad(&key) || bad(&payload))
                            );
                        }
                    }
                    Err(Unusable::BadTweet(_) | Unusable::Notice) => {
                        prop_assert!(format == RecordFormat::Tweet && len <= max)
                    }
                }
            }

            #[test]
            fn fuzz_record_near_valid_tweets(
                muts in prop::collection::vec(json_mutation(), 0..5),
                bytes in prop::collection::vec(byte_mutation(), 0..3),
            ) {
                let seed = serde_json::json!({
                    "data": {"id": "1", "text": "hi #Rust", "lang": "en", "author_id": "7",
                             "created_at": "2024-05-01T12:00:03.000Z",
                             "entities": {"hashtags": [{"start": 3, "end": 8, "tag": "Rust"}]}},
                    "includes": {"users": [{"id": "7", "username": "ann"}]},
                    "matching_rules": [{"id": "9", "tag": "rust"}]
                });
                let json = serde_json::to_vec(&mutate_json(seed, &muts))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                for payload in [json.clone(), mutate_bytes(json, &bytes)] {
                    let r = rec(&payload);
                    match to_values(&r, RecordFormat::Tweet, ValueEncoding::String) {
                        Ok((v, _)) => prop_assert_eq!(v.len(), tweet_fields().len()),
                        Err(Unusable::BadTweet(why)) => prop_assert!(!why.is_empty()),
                        Err(Unusable::Notice) => {}
                        Err(Unusable::Oversized(_)) => prop_assert!(false, "not oversized"),
                    }
                }
            }
        }
    }
}
