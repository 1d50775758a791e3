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
}

impl Record {
    /// Copies `m`; `topic` is the shared name of its topic.
    pub fn from_message(m: &BorrowedMessage<'_>, topic: Arc<str>) -> Record {
        Record {
            tp: TopicPartition::new(topic, m.partition()),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            timestamp: m.timestamp().to_millis(),
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
}

/// The values of a record, and whether a text field needed UTF-8 replacement.
pub fn to_values(
    r: &Record,
    format: RecordFormat,
    encoding: ValueEncoding,
) -> Result<(Values, bool), Unusable> {
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
}
