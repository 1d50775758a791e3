//! Tweets and the X/Twitter streaming wire format (API v2 and v1.1).
//!
//! [`parse_line`] turns one line of a streaming response body into a
//! [`StreamMessage`]; [`to_v2_json`] renders a [`Tweet`] as a v2 stream line
//! that [`parse_line`] reads back to the same `Tweet`.
//!
//! Parsing rules:
//! - v2 (`{"data":…}`): username from `includes.users` matched by `author_id`
//!   (without an `author_id`: from a user without an `id`, which is how
//!   [`to_v2_json`] writes an author whose id is not known);
//!   hashtags from `data.entities.hashtags[].tag`; `rule_tags` from
//!   `matching_rules[].tag` (the rule id when a rule has no tag). The text is
//!   kept as sent (v2 retweets keep their `RT @user:` prefix).
//! - v1.1 statuses: `id_str` (or `id`), `user.screen_name`/`user.id_str`;
//!   text and entities from `extended_tweet` when present, and for retweets
//!   from the `retweeted_status`. `created_at` is converted to RFC 3339; it must be
//!   a real date and time in the v1.1 form `Wed May 01 12:00:03 +0000 2024` (or
//!   RFC 3339 already, as in squall's own flat records), else the line is malformed
//!   ([`ParseError::BadDate`]).
//! - Hashtags come from entities when the tweet carries an `entities` object,
//!   otherwise they are extracted from the text; all are normalized.
//! - v1.1 notices (`delete`, `limit`, `disconnect`, `warning`) become
//!   [`Notice`]s; other unrecognized objects become [`StreamMessage::Unknown`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::io::time as dates;

use crate::text::hashtags::{
    extract_hashtags, is_hashtag_token, normalize_entity_tag, normalize_hashtag,
};
use crate::text::tokenize::token_spans;

/// A tweet, reduced to what squall's topologies use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tweet {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub author_id: Option<String>,
    /// The author's username (screen name), without `@`.
    #[serde(default)]
    pub author: Option<String>,
    /// RFC 3339 timestamp, e.g. `2024-05-01T12:00:03.000Z`.
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    /// Normalized hashtags (see `normalize_hashtag`), in order of appearance.
    #[serde(default)]
    pub hashtags: Vec<String>,
    /// Tags of the filtered-stream rules the tweet matched.
    #[serde(default)]
    pub rule_tags: Vec<String>,
}

/// An in-stream error object (`{"errors":[…]}`), e.g. an operational disconnect.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamError {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub disconnect_type: Option<String>,
    /// The problem type URI (`"type"` on the wire).
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
}

/// A v1.1 streaming notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// A status was deleted; consumers should forget it.
    Delete {
        status_id: String,
        user_id: Option<String>,
        timestamp_ms: Option<String>,
    },
    /// `track` statuses matched but were not delivered (rate limit).
    Limit {
        track: u64,
        timestamp_ms: Option<String>,
    },
    /// The server is about to close the stream.
    Disconnect {
        code: u32,
        stream_name: String,
        reason: String,
    },
    /// Stall warning (`FALLING_BEHIND`) and similar.
    Warning {
        code: String,
        message: String,
        percent_full: Option<u32>,
    },
}

/// One parsed line of a streaming response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    Tweet(Tweet),
    Errors(Vec<StreamError>),
    Notice(Notice),
    /// Blank line (`\r\n`) sent to keep the connection alive.
    KeepAlive,
    /// Valid JSON object of a kind this parser does not know.
    Unknown,
}

/// Why a line could not be parsed.
#[derive(Debug, Error)]
pub enum ParseError {
    #[error("stream line is not valid UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("malformed stream message JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tweet is missing required field `{0}`")]
    MissingField(&'static str),
    #[error(
        "v1.1 tweet `created_at` {0:?} is not a date and time in the form `Wed May 01 12:00:03 +0000 2024` (nor RFC 3339)"
    )]
    BadDate(String),
}

// ---------------------------------------------------------------------------
// Wire structs (borrowing from the input where the JSON has no escapes).

/// A string that borrows from the input when possible.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl Str<'_> {
    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

/// An id given either as a JSON string or as an integer.
struct FlexId(String);

impl<'de> Deserialize<'de> for FlexId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = FlexId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (string or integer)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FlexId, E> {
                Ok(FlexId(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FlexId, E> {
                Ok(FlexId(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FlexId, E> {
                Ok(FlexId(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FlexId, E> {
                Ok(FlexId(v))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

#[derive(Deserialize)]
struct HashtagEntity<'a> {
    /// v2 spelling.
    #[serde(borrow)]
    tag: Option<Str<'a>>,
    /// v1.1 spelling.
    #[serde(borrow)]
    text: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Entities<'a> {
    #[serde(borrow)]
    hashtags: Option<Vec<HashtagEntity<'a>>>,
}

#[derive(Deserialize)]
struct V2Data<'a> {
    id: Option<FlexId>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    author_id: Option<FlexId>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    lang: Option<Str<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
}

#[derive(Deserialize)]
struct V2User<'a> {
    id: Option<FlexId>,
    #[serde(borrow)]
    username: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct V2Includes<'a> {
    #[serde(borrow)]
    users: Option<Vec<V2User<'a>>>,
}

#[derive(Deserialize)]
struct V2Rule<'a> {
    id: Option<FlexId>,
    #[serde(borrow)]
    tag: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct V11User<'a> {
    #[serde(borrow)]
    id_str: Option<Str<'a>>,
    id: Option<FlexId>,
    #[serde(borrow)]
    screen_name: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct V11Extended<'a> {
    #[serde(borrow)]
    full_text: Option<Str<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
}

#[derive(Deserialize)]
struct V11DeletedStatus<'a> {
    #[serde(borrow)]
    id_str: Option<Str<'a>>,
    id: Option<FlexId>,
    #[serde(borrow)]
    user_id_str: Option<Str<'a>>,
    user_id: Option<FlexId>,
}

#[derive(Deserialize)]
struct V11Delete<'a> {
    #[serde(borrow)]
    status: Option<V11DeletedStatus<'a>>,
    timestamp_ms: Option<FlexId>,
}

#[derive(Deserialize)]
struct V11Limit {
    track: Option<u64>,
    timestamp_ms: Option<FlexId>,
}

#[derive(Deserialize)]
struct V11Disconnect<'a> {
    code: Option<u32>,
    #[serde(borrow)]
    stream_name: Option<Str<'a>>,
    #[serde(borrow)]
    reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct V11Warning<'a> {
    #[serde(borrow)]
    code: Option<Str<'a>>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
    percent_full: Option<u32>,
}

/// Union of every message shape; unknown fields are skipped.
#[derive(Deserialize)]
struct RawMessage<'a> {
    // v2
    #[serde(borrow)]
    data: Option<V2Data<'a>>,
    #[serde(borrow)]
    includes: Option<V2Includes<'a>>,
    #[serde(borrow)]
    matching_rules: Option<Vec<V2Rule<'a>>>,
    errors: Option<Vec<StreamError>>,
    // v1.1 status
    #[serde(borrow)]
    id_str: Option<Str<'a>>,
    id: Option<FlexId>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    full_text: Option<Str<'a>>,
    #[serde(borrow)]
    extended_tweet: Option<V11Extended<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
    #[serde(borrow)]
    user: Option<V11User<'a>>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    lang: Option<Str<'a>>,
    #[serde(borrow)]
    retweeted_status: Option<Box<RawMessage<'a>>>,
    // v1.1 notices
    #[serde(borrow)]
    delete: Option<V11Delete<'a>>,
    limit: Option<V11Limit>,
    #[serde(borrow)]
    disconnect: Option<V11Disconnect<'a>>,
    #[serde(borrow)]
    warning: Option<V11Warning<'a>>,
}

// ---------------------------------------------------------------------------
// Parsing.

/// Parses one line of a streaming body (with or without its `\r\n`).
pub fn parse_line(line: &[u8]) -> Result<StreamMessage, ParseError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(StreamMessage::KeepAlive);
    }
    let text = std::str::from_utf8(line).map_err(|e| ParseError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let raw: RawMessage<'_> = serde_json::from_str(text)?;
    raw.into_message()
}

/// Normalized hashtags from entities when present, else from the text.
fn hashtags_of(entities: Option<Entities<'_>>, text: &str) -> Vec<String> {
    match entities {
        Some(e) => e
            .hashtags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|h| h.tag.or(h.text))
            .filter_map(|t| normalize_entity_tag(&t.0))
            .collect(),
        None => extract_hashtags(text),
    }
}

impl<'a> RawMessage<'a> {
    fn into_message(self) -> Result<StreamMessage, ParseError> {
        if self.data.is_some() {
            return self.into_v2_tweet().map(StreamMessage::Tweet);
        }
        if let Some(errors) = self.errors {
            return Ok(StreamMessage::Errors(errors));
        }
        if self.text.is_some() || self.full_text.is_some() {
            return self.into_v11_tweet().map(StreamMessage::Tweet);
        }
        Ok(self
            .into_notice()
            .map_or(StreamMessage::Unknown, StreamMessage::Notice))
    }

    fn into_v2_tweet(self) -> Result<Tweet, ParseError> {
        let data = self.data.ok_or(ParseError::MissingField("data"))?;
        let id = data.id.ok_or(ParseError::MissingField("data.id"))?.0;
        let text = data
            .text
            .ok_or(ParseError::MissingField("data.text"))?
            .into_string();
        let author_id = data.author_id.map(|a| a.0);
        // The author is the user whose id is `author_id`; a tweet without an
        // `author_id` (a v1.1 user with a screen name and no id, rendered by
        // `to_v2_json`) has its author as a user without an id.
        let author = self.includes.and_then(|i| i.users).and_then(|users| {
            users
                .into_iter()
                .find(|u| u.id.as_ref().map(|id| &id.0) == author_id.as_ref())
                .and_then(|u| u.username)
                .map(Str::into_string)
        });
        let hashtags = hashtags_of(data.entities, &text);
        let rule_tags = self
            .matching_rules
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.tag.map(Str::into_string).or(r.id.map(|id| id.0)))
            .collect();
        Ok(Tweet {
            id,
            text,
            author_id,
            author,
            created_at: data.created_at.map(Str::into_string),
            lang: data.lang.map(Str::into_string),
            hashtags,
            rule_tags,
        })
    }

    /// Full text and its entities of a v1.1 status (extended when truncated).
    fn v11_text(&mut self) -> Option<(String, Option<Entities<'a>>)> {
        if let Some(ext) = self.extended_tweet.take()
            && let Some(full) = ext.full_text
        {
            return Some((full.into_string(), ext.entities));
        }
        let text = self.full_text.take().or(self.text.take())?;
        Some((text.into_string(), self.entities.take()))
    }

    fn into_v11_tweet(mut self) -> Result<Tweet, ParseError> {
        let id = match (self.id_str.take(), self.id.take()) {
            (Some(s), _) => s.into_string(),
            (None, Some(id)) => id.0,
            (None, None) => return Err(ParseError::MissingField("id_str")),
        };
        let source = match self.retweeted_status.take() {
            Some(rt) if rt.text.is_some() || rt.full_text.is_some() => Some(*rt),
            _ => None,
        };
        let (text, entities) = match source {
            Some(mut rt) => rt.v11_text(),
            None => self.v11_text(),
        }
        .ok_or(ParseError::MissingField("text"))?;
        let (author_id, author) = match self.user {
            Some(u) => (
                u.id_str.map(Str::into_string).or(u.id.map(|id| id.0)),
                u.screen_name.map(Str::into_string),
            ),
            None => (None, None),
        };
        let hashtags = hashtags_of(entities, &text);
        Ok(Tweet {
            id,
            text,
            author_id,
            author,
            created_at: match self.created_at {
                Some(c) => Some(match v11_date_to_rfc3339(&c.0) {
                    Some(d) => d,
                    // squall's own flat records (`twitter to-kafka`, the `tweet` format)
                    // carry RFC 3339 already.
                    None if is_rfc3339(&c.0) => c.into_string(),
                    None => return Err(ParseError::BadDate(c.into_string())),
                }),
                None => None,
            },
            lang: self.lang.map(Str::into_string),
            hashtags,
            rule_tags: Vec::new(),
        })
    }

    fn into_notice(self) -> Option<Notice> {
        if let Some(d) = self.delete {
            let status = d.status?;
            let status_id = status
                .id_str
                .map(Str::into_string)
                .or(status.id.map(|i| i.0))?;
            return Some(Notice::Delete {
                status_id,
                user_id: status
                    .user_id_str
                    .map(Str::into_string)
                    .or(status.user_id.map(|i| i.0)),
                timestamp_ms: d.timestamp_ms.map(|t| t.0),
            });
        }
        if let Some(l) = self.limit {
            return Some(Notice::Limit {
                track: l.track.unwrap_or(0),
                timestamp_ms: l.timestamp_ms.map(|t| t.0),
            });
        }
        if let Some(d) = self.disconnect {
            return Some(Notice::Disconnect {
                code: d.code.unwrap_or(0),
                stream_name: d.stream_name.map(Str::into_string).unwrap_or_default(),
                reason: d.reason.map(Str::into_string).unwrap_or_default(),
            });
        }
        if let Some(w) = self.warning {
            return Some(Notice::Warning {
                code: w.code.map(Str::into_string).unwrap_or_default(),
                message: w.message.map(Str::into_string).unwrap_or_default(),
                percent_full: w.percent_full,
            });
        }
        None
    }
}

/// Whether `s` is an RFC 3339 date and time that exists.
fn is_rfc3339(s: &str) -> bool {
    dates::parse_rfc3339_ms(s).is_ok()
}

/// `"Wed May 01 12:00:03 +0000 2024"` -> `"2024-05-01T12:00:03.000Z"`; `None` unless it is
/// a real date and time of day in that form, in UTC as the v1.1 API writes them (no
/// `Feb 31`, no `99:99:99`).
fn v11_date_to_rfc3339(s: &str) -> Option<String> {
    let ms = dates::parse_twitter_date_ms(s).ok()?;
    dates::rfc3339(ms, dates::Precision::Millis).ok()
}

// ---------------------------------------------------------------------------
// Rendering as a v2 stream line.

#[derive(Serialize)]
struct OutHashtag<'a> {
    start: usize,
    end: usize,
    tag: &'a str,
}

#[derive(Serialize)]
struct OutEntities<'a> {
    hashtags: Vec<OutHashtag<'a>>,
}

#[derive(Serialize)]
struct OutData<'a> {
    id: &'a str,
    text: &'a str,
    edit_history_tweet_ids: [&'a str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    author_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
    entities: OutEntities<'a>,
}

#[derive(Serialize)]
struct OutUser<'a> {
    /// Absent when the author's id is not known (see [`to_v2_json`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
struct OutIncludes<'a> {
    users: [OutUser<'a>; 1],
}

#[derive(Serialize)]
struct OutRule<'a> {
    id: String,
    tag: &'a str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    data: OutData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    includes: Option<OutIncludes<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    matching_rules: Vec<OutRule<'a>>,
}

/// Hashtag entities with character offsets, matching `tweet.hashtags` in order
/// against the hashtag tokens of the text. A tag not found in the text is
/// emitted as an empty span at the end of the text.
fn hashtag_entities(tweet: &Tweet) -> Vec<OutHashtag<'_>> {
    let text = tweet.text.as_str();
    let text_chars = text.chars().count();
    let mut spans = token_spans(text).filter_map(|r| {
        let tok = text.get(r.clone())?;
        is_hashtag_token(tok).then_some((r, tok))
    });
    // (byte, char) position of the last offset computed.
    let (mut byte_pos, mut char_pos) = (0usize, 0usize);
    let mut out = Vec::with_capacity(tweet.hashtags.len());
    for tag in &tweet.hashtags {
        let found = spans
            .by_ref()
            .find(|(_, tok)| normalize_hashtag(tok).as_deref() == Some(tag.as_str()));
        match found {
            Some((range, tok)) => {
                char_pos += text
                    .get(byte_pos..range.start)
                    .map_or(0, |s| s.chars().count());
                byte_pos = range.start;
                let len = tok.chars().count();
                let body = tok.trim_start_matches(['#', '\u{FF03}']);
                out.push(OutHashtag {
                    start: char_pos,
                    end: char_pos + len,
                    tag: body,
                });
            }
            None => out.push(OutHashtag {
                start: text_chars,
                end: text_chars,
                tag,
            }),
        }
    }
    out
}

/// Renders `tweet` as one v2 filtered-stream message line (no line ending).
///
/// `parse_line(to_v2_json(t))` gives back `t` provided its hashtags are
/// normalized. The author is written as the API does, a user in
/// `includes.users` whose `id` is `author_id`; an author whose id is not known
/// (a v1.1 `user` with a `screen_name` and no `id`) is a user without an `id`,
/// and the tweet has no `author_id`.
pub fn to_v2_json(tweet: &Tweet) -> String {
    let includes = tweet.author.as_deref().map(|username| OutIncludes {
        users: [OutUser {
            id: tweet.author_id.as_deref(),
            name: username,
            username,
        }],
    });
    let msg = OutMessage {
        data: OutData {
            id: &tweet.id,
            text: &tweet.text,
            edit_history_tweet_ids: [&tweet.id],
            author_id: tweet.author_id.as_deref(),
            created_at: tweet.created_at.as_deref(),
            lang: tweet.lang.as_deref(),
            entities: OutEntities {
                hashtags: hashtag_entities(tweet),
            },
        },
        includes,
        matching_rules: tweet
            .rule_tags
            .iter()
            .enumerate()
            .map(|(i, tag)| OutRule {
                id: (i + 1).to_string(),
                tag,
            })
            .collect(),
    };
    // Serializing plain strings, numbers and arrays into a String cannot fail.
    serde_json::to_string(&msg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures: copies of the reference payloads (X API v2 / v1.1 shapes).
    const V2_MINIMAL: &str = r##"{
      "data": {"id": "1900000000000000001",
        "text": "Shipping a new #rustlang stream processor today #dataengineering",
        "edit_history_tweet_ids": ["1900000000000000001"]},
      "matching_rules": [{"id": "1800000000000000001", "tag": "rust posts"}]
    }"##;

    const V2_EXPANDED: &str = r##"{"data":{"id":"1900000000000000002","text":"RT @ferris_dev: Zero-copy parsing of #json with #rustlang is fun https://t.co/AbCdEf1234","edit_history_tweet_ids":["1900000000000000002"],"author_id":"1000000000000000011","created_at":"2024-05-01T12:00:03.000Z","lang":"en","conversation_id":"1900000000000000002","referenced_tweets":[{"type":"retweeted","id":"1900000000000000000"}],"entities":{"hashtags":[{"start":37,"end":42,"tag":"json"},{"start":48,"end":57,"tag":"rustlang"}],"mentions":[{"start":3,"end":14,"username":"ferris_dev","id":"1000000000000000012"}],"urls":[{"start":65,"end":88,"url":"https://t.co/AbCdEf1234","expanded_url":"https://example.org/zero-copy","display_url":"example.org/zero-copy"}]},"public_metrics":{"retweet_count":3,"reply_count":0,"like_count":0,"quote_count":0,"bookmark_count":0,"impression_count":0}},"includes":{"users":[{"id":"1000000000000000011","name":"Stream Tester","username":"stream_tester"},{"id":"1000000000000000012","name":"Ferris Dev","username":"ferris_dev"}],"tweets":[{"id":"1900000000000000000","text":"Zero-copy parsing of #json with #rustlang is fun https://t.co/AbCdEf1234","edit_history_tweet_ids":["1900000000000000000"],"author_id":"1000000000000000012","created_at":"2024-05-01T11:58:41.000Z","entities":{"hashtags":[{"start":21,"end":26,"tag":"json"},{"start":32,"end":41,"tag":"rustlang"}],"urls":[{"start":49,"end":72,"url":"https://t.co/AbCdEf1234","expanded_url":"https://example.org/zero-copy","display_url":"example.org/zero-copy"}]}}]},"matching_rules":[{"id":"1800000000000000001","tag":"rust posts"},{"id":"1800000000000000002","tag":"json posts"}]}"##;

    const V2_SAMPLE: &str = r##"{"data":{"id":"1900000000000000003","text":"Morning coffee and a 1% sample of the world #MondayMotivation","edit_history_tweet_ids":["1900000000000000003"],"author_id":"1000000000000000013","created_at":"2024-05-01T12:00:04.000Z","entities":{"hashtags":[{"start":44,"end":61,"tag":"MondayMotivation"}]}},"includes":{"users":[{"id":"1000000000000000013","name":"Sample Person","username":"sample_person"}]}}"##;

    const V2_ERROR: &str = r##"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"##;

    /// v2_filtered_stream_session.wire, byte for byte (CRLF framing).
    const V2_SESSION: &str = concat!(
        "\r\n",
        r##"{"data":{"id":"1900000000000000001","text":"Shipping a new #rustlang stream processor today #dataengineering","edit_history_tweet_ids":["1900000000000000001"]},"matching_rules":[{"id":"1800000000000000001","tag":"rust posts"}]}"##,
        "\r\n\r\n\r\n",
        r##"{"data":{"id":"1900000000000000002","text":"RT @ferris_dev: Zero-copy parsing of #json with #rustlang is fun https://t.co/AbCdEf1234","edit_history_tweet_ids":["1900000000000000002"],"author_id":"1000000000000000011","created_at":"2024-05-01T12:00:03.000Z","lang":"en","conversation_id":"1900000000000000002","referenced_tweets":[{"type":"retweeted","id":"1900000000000000000"}],"entities":{"hashtags":[{"start":37,"end":42,"tag":"json"},{"start":48,"end":57,"tag":"rustlang"}],"mentions":[{"start":3,"end":14,"username":"ferris_dev","id":"1000000000000000012"}],"urls":[{"start":65,"end":88,"url":"https://t.co/AbCdEf1234","expanded_url":"https://example.org/zero-copy","display_url":"example.org/zero-copy"}]},"public_metrics":{"retweet_count":3,"reply_count":0,"like_count":0,"quote_count":0,"bookmark_count":0,"impression_count":0}},"includes":{"users":[{"id":"1000000000000000011","name":"Stream Tester","username":"stream_tester"},{"id":"1000000000000000012","name":"Ferris Dev","username":"ferris_dev"}]},"matching_rules":[{"id":"1800000000000000001","tag":"rust posts"},{"id":"1800000000000000002","tag":"json posts"}]}"##,
        "\r\n\r\n",
        r##"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"##,
        "\r\n",
    );

    const V11_SHORT: &str = r##"{"created_at":"Wed May 01 12:00:03 +0000 2024","id":1900000000000000010,"id_str":"1900000000000000010","text":"A short v1.1 tweet about #rustlang and #streams","source":"<a href=\"https://example.org\" rel=\"nofollow\">example client</a>","truncated":false,"in_reply_to_status_id":null,"in_reply_to_status_id_str":null,"in_reply_to_user_id":null,"in_reply_to_user_id_str":null,"in_reply_to_screen_name":null,"user":{"id":1000000000000000011,"id_str":"1000000000000000011","name":"Stream Tester","screen_name":"stream_tester","location":null,"description":null,"protected":false,"verified":false,"followers_count":10,"friends_count":5,"statuses_count":100,"created_at":"Mon Nov 29 21:18:15 +0000 2010","lang":null},"geo":null,"coordinates":null,"place":null,"is_quote_status":false,"quote_count":0,"reply_count":0,"retweet_count":0,"favorite_count":0,"entities":{"hashtags":[{"text":"rustlang","indices":[25,34]},{"text":"streams","indices":[39,47]}],"symbols":[],"user_mentions":[],"urls":[]},"favorited":false,"retweeted":false,"filter_level":"low","lang":"en","timestamp_ms":"1714564803000"}"##;

    const V11_EXTENDED: &str = r##"{"created_at":"Wed May 01 12:00:03 +0000 2024","id":1900000000000000011,"id_str":"1900000000000000011","text":"This is a deliberately long synthetic tweet that runs past the classic one hundred and forty character limit so tha… https://t.co/TrUnC8ted0","source":"<a href=\"https://example.org\" rel=\"nofollow\">example client</a>","truncated":true,"user":{"id":1000000000000000011,"id_str":"1000000000000000011","name":"Stream Tester","screen_name":"stream_tester","lang":null},"geo":null,"entities":{"hashtags":[],"symbols":[],"user_mentions":[],"urls":[{"url":"https://t.co/TrUnC8ted0","expanded_url":"https://twitter.com/i/web/status/1900000000000000011","display_url":"twitter.com/i/web/status/1…","indices":[117,140]}]},"favorited":false,"retweeted":false,"filter_level":"low","lang":"en","timestamp_ms":"1714564804000","display_text_range":[0,140],"extended_tweet":{"full_text":"This is a deliberately long synthetic tweet that runs past the classic one hundred and forty character limit so that the root text gets cut off and the hashtags only live in extended_tweet #documentation #parsingJSON #rustlang","display_text_range":[0,226],"entities":{"hashtags":[{"text":"documentation","indices":[189,203]},{"text":"parsingJSON","indices":[204,216]},{"text":"rustlang","indices":[217,226]}],"symbols":[],"user_mentions":[],"urls":[]}}}"##;

    const V11_RETWEET: &str = r##"{"created_at":"Wed May 01 12:00:03 +0000 2024","id":1900000000000000012,"id_str":"1900000000000000012","text":"RT @ferris_dev: A short v1.1 tweet about #rustlang and #streams","truncated":false,"user":{"id":1000000000000000013,"id_str":"1000000000000000013","name":"Sample Person","screen_name":"sample_person","lang":null},"entities":{"hashtags":[{"text":"rustlang","indices":[41,50]},{"text":"streams","indices":[55,63]}],"symbols":[],"user_mentions":[{"screen_name":"ferris_dev","name":"Ferris_Dev","id":1000000000000000012,"id_str":"1000000000000000012","indices":[3,14]}],"urls":[]},"lang":"en","timestamp_ms":"1714564805000","retweeted_status":{"created_at":"Wed May 01 12:00:03 +0000 2024","id":1900000000000000010,"id_str":"1900000000000000010","text":"A short v1.1 tweet about #rustlang and #streams","truncated":false,"user":{"id":1000000000000000012,"id_str":"1000000000000000012","name":"Ferris Dev","screen_name":"ferris_dev","lang":null},"retweet_count":1,"entities":{"hashtags":[{"text":"rustlang","indices":[25,34]},{"text":"streams","indices":[39,47]}],"symbols":[],"user_mentions":[],"urls":[]},"lang":"en","timestamp_ms":"1714564803000"}}"##;

    const V11_DELETE: &str = r##"{"delete":{"status":{"id":1900000000000000010,"id_str":"1900000000000000010","user_id":1000000000000000011,"user_id_str":"1000000000000000011"},"timestamp_ms":"1714564900000"}}"##;
    const V11_LIMIT: &str = r##"{"limit":{"track":1234,"timestamp_ms":"1714564901000"}}"##;
    const V11_WARNING: &str = r##"{"warning":{"code":"FALLING_BEHIND","message":"Your connection is falling behind and messages are being queued for delivery to you. Your queue is now over 60% full. You will be disconnected when the queue is full.","percent_full":60}}"##;
    const V11_DISCONNECT: &str = r##"{
      "disconnect": {"code": 4, "stream_name": "", "reason": ""}
    }"##;

    fn tweet(line: &str) -> Tweet {
        match parse_line(line.as_bytes()) {
            Ok(StreamMessage::Tweet(t)) => t,
            other => panic!("expected a tweet, got {other:?}"),
        }
    }

    fn notice(line: &str) -> Notice {
        match parse_line(line.as_bytes()) {
            Ok(StreamMessage::Notice(n)) => n,
            other => panic!("expected a notice, got {other:?}"),
        }
    }

    #[test]
    fn v2_minimal_extracts_hashtags_from_text() {
        let t = tweet(V2_MINIMAL);
        assert_eq!(t.id, "1900000000000000001");
        assert_eq!(
            t.text,
            "Shipping a new #rustlang stream processor today #dataengineering"
        );
        assert_eq!(t.author_id, None);
        assert_eq!(t.author, None);
        assert_eq!(t.created_at, None);
        assert_eq!(t.hashtags, ["rustlang", "dataengineering"]);
        assert_eq!(t.rule_tags, ["rust posts"]);
    }

    #[test]
    fn v2_expanded() {
        let t = tweet(V2_EXPANDED);
        assert_eq!(t.id, "1900000000000000002");
        assert!(t.text.starts_with("RT @ferris_dev: Zero-copy"));
        assert_eq!(t.author_id.as_deref(), Some("1000000000000000011"));
        assert_eq!(t.author.as_deref(), Some("stream_tester"));
        assert_eq!(t.created_at.as_deref(), Some("2024-05-01T12:00:03.000Z"));
        assert_eq!(t.lang.as_deref(), Some("en"));
        assert_eq!(t.hashtags, ["json", "rustlang"]);
        assert_eq!(t.rule_tags, ["rust posts", "json posts"]);
    }

    #[test]
    fn v2_sample_stream_lowercases_entity_tags() {
        let t = tweet(V2_SAMPLE);
        assert_eq!(t.author.as_deref(), Some("sample_person"));
        assert_eq!(t.hashtags, ["mondaymotivation"]);
        assert!(t.rule_tags.is_empty());
        assert_eq!(t.lang, None);
    }

    #[test]
    fn v2_author_without_matching_user() {
        let line = r#"{"data":{"id":"1","text":"x","author_id":"9"},"includes":{"users":[{"id":"8","username":"other"}]}}"#;
        let t = tweet(line);
        assert_eq!(t.author_id.as_deref(), Some("9"));
        assert_eq!(t.author, None);
    }

    /// Found by `fuzz_parse_line_near_valid`: a v1.1 user with a `screen_name` and no
    /// `id`/`id_str` gives a tweet with an author and no author id, which `to_v2_json`
    /// wrote without the author.
    #[test]
    fn v11_user_without_id_keeps_its_author_through_v2() {
        let mut v: serde_json::Value = serde_json::from_str(V11_SHORT).unwrap();
        let user = v["user"].as_object_mut().unwrap();
        user.remove("id");
        user.remove("id_str");
        let t = tweet(&v.to_string());
        assert_eq!(t.author_id, None);
        assert_eq!(t.author.as_deref(), Some("stream_tester"));
        let line = to_v2_json(&t);
        assert!(!line.contains("author_id"), "{line}");
        assert_eq!(tweet(&line), t, "line: {line}");
        // An id without a screen name: no user at all.
        let no_name = r#"{"id_str":"5","text":"x","user":{"id_str":"7"}}"#;
        let t = tweet(no_name);
        assert_eq!(
            (t.author_id.as_deref(), t.author.as_deref()),
            (Some("7"), None)
        );
        assert_eq!(tweet(&to_v2_json(&t)), t);
    }

    /// A v2 message without `author_id` takes its author from a user without an `id`
    /// (never from a user that has one).
    #[test]
    fn v2_author_without_an_id() {
        let line = r#"{"data":{"id":"1","text":"x"},"includes":{"users":[{"id":"8","username":"other"},{"username":"anon"}]}}"#;
        let t = tweet(line);
        assert_eq!((t.author_id, t.author.as_deref()), (None, Some("anon")));
        let line = r#"{"data":{"id":"1","text":"x"},"includes":{"users":[{"id":"8","username":"other"}]}}"#;
        assert_eq!(tweet(line).author, None);
    }

    /// Found by `fuzz_parse_line_near_valid`: an entity tag with whitespace after its
    /// `#` normalized to a tag starting with that whitespace, which normalized again
    /// (read back from `to_v2_json`) without it.
    #[test]
    fn entity_tags_normalize_to_themselves() {
        let line = r##"{"data":{"id":"1","text":"x","entities":{"hashtags":[{"tag":"#\u000b\u000e"},{"tag":"# #Rust"},{"tag":" ＃ Ünï "}]}}}"##;
        let t = tweet(line);
        assert_eq!(t.hashtags, ["\u{e}", "rust", "ünï"]);
        assert_eq!(tweet(&to_v2_json(&t)), t);
    }

    #[test]
    fn v2_entities_without_hashtags_means_none() {
        let line = r##"{"data":{"id":"1","text":"has #tag","entities":{"mentions":[]}}}"##;
        assert!(tweet(line).hashtags.is_empty());
    }

    #[test]
    fn v2_rule_without_tag_uses_id_and_numeric_ids() {
        let line = r#"{"matching_rules":[{"id":77}],"data":{"text":"t","id":5}}"#;
        let t = tweet(line);
        assert_eq!(t.id, "5");
        assert_eq!(t.rule_tags, ["77"]);
    }

    #[test]
    fn v2_escapes_and_unicode() {
        let line = r##"{"data":{"id":"1","text":"caf\u00e9 \"q\" \ud83d\ude00 #Ca\u0301fe\n2"}}"##;
        let t = tweet(line);
        assert_eq!(t.text, "café \"q\" 😀 #Ca\u{301}fe\n2");
        assert_eq!(t.hashtags, ["ca\u{301}fe"]);
    }

    #[test]
    fn v2_stream_error() {
        match parse_line(V2_ERROR.as_bytes()).unwrap() {
            StreamMessage::Errors(errs) => {
                assert_eq!(errs.len(), 1);
                assert_eq!(errs[0].title, "operational-disconnect");
                assert_eq!(
                    errs[0].disconnect_type.as_deref(),
                    Some("UpstreamOperationalDisconnect")
                );
                assert!(errs[0].detail.as_deref().unwrap().contains("operational"));
                assert_eq!(
                    errs[0].error_type.as_deref(),
                    Some("https://api.twitter.com/2/problems/operational-disconnect")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v2_session_wire() {
        let msgs: Vec<_> = V2_SESSION
            .split('\n')
            .map(|l| parse_line(l.as_bytes()).unwrap())
            .collect();
        let kinds: Vec<&str> = msgs
            .iter()
            .map(|m| match m {
                StreamMessage::Tweet(_) => "tweet",
                StreamMessage::Errors(_) => "errors",
                StreamMessage::KeepAlive => "keepalive",
                StreamMessage::Notice(_) => "notice",
                StreamMessage::Unknown => "unknown",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "keepalive",
                "tweet",
                "keepalive",
                "keepalive",
                "tweet",
                "keepalive",
                "errors",
                "keepalive"
            ]
        );
    }

    #[test]
    fn v11_short() {
        let t = tweet(V11_SHORT);
        assert_eq!(t.id, "1900000000000000010");
        assert_eq!(t.text, "A short v1.1 tweet about #rustlang and #streams");
        assert_eq!(t.author.as_deref(), Some("stream_tester"));
        assert_eq!(t.author_id.as_deref(), Some("1000000000000000011"));
        assert_eq!(t.created_at.as_deref(), Some("2024-05-01T12:00:03.000Z"));
        assert_eq!(t.lang.as_deref(), Some("en"));
        assert_eq!(t.hashtags, ["rustlang", "streams"]);
        assert!(t.rule_tags.is_empty());
    }

    #[test]
    fn v11_extended_uses_full_text() {
        let t = tweet(V11_EXTENDED);
        assert_eq!(t.id, "1900000000000000011");
        assert!(t.text.ends_with("#documentation #parsingJSON #rustlang"));
        assert_eq!(t.hashtags, ["documentation", "parsingjson", "rustlang"]);
    }

    #[test]
    fn v11_retweet_takes_original_text() {
        let t = tweet(V11_RETWEET);
        assert_eq!(t.id, "1900000000000000012");
        assert_eq!(t.text, "A short v1.1 tweet about #rustlang and #streams");
        assert_eq!(t.author.as_deref(), Some("sample_person"));
        assert_eq!(t.author_id.as_deref(), Some("1000000000000000013"));
        assert_eq!(t.hashtags, ["rustlang", "streams"]);
    }

    #[test]
    fn v11_without_entities_and_numeric_id_only() {
        let t = tweet(r##"{"id":42,"text":"#One two #THREE"}"##);
        assert_eq!(t.id, "42");
        assert_eq!(t.hashtags, ["one", "three"]);
        assert_eq!(t.created_at, None);
        assert_eq!(t.author, None);
    }

    #[test]
    fn v11_dates_that_do_not_exist_make_the_line_malformed() {
        for bad in [
            "Wed May 01 99:99:99 +0000 2024",
            "Wed May 01 24:00:00 +0000 2024",
            "Wed May 01 12:60:00 +0000 2024",
            "Sat Feb 31 12:00:03 +0000 2024",
            "Thu Feb 29 12:00:03 +0000 2023",
            "Wed May 00 12:00:03 +0000 2024",
            "Wed Mai 01 12:00:03 +0000 2024",
            "Wed May 01 12:00:03 +0100 2024",
            "Wed May 01 12:00:03 +0000 24",
            "Wed May 1 12:00:03 +0000 2024",
            "Wed May 01 12:00:03 +0000 2024 extra",
            "odd date",
            "",
        ] {
            let line = format!(r#"{{"id":42,"text":"hi","created_at":"{bad}"}}"#);
            let r = parse_line(line.as_bytes());
            assert!(
                matches!(&r, Err(ParseError::BadDate(d)) if d == bad),
                "{bad:?}: {r:?}"
            );
        }
        for bad in ["2024-02-31T12:00:03.000Z", "2024-05-01T99:00:03Z"] {
            let line = format!(r#"{{"id":42,"text":"hi","created_at":"{bad}"}}"#);
            assert!(
                matches!(parse_line(line.as_bytes()), Err(ParseError::BadDate(_))),
                "{bad:?}"
            );
        }
        // squall's own flat records carry RFC 3339: kept as written.
        let flat = tweet(r#"{"id":42,"text":"hi","created_at":"2024-05-01T12:00:03.000Z"}"#);
        assert_eq!(flat.created_at.as_deref(), Some("2024-05-01T12:00:03.000Z"));
        let leap = tweet(r#"{"id":42,"text":"hi","created_at":"Thu Feb 29 23:59:59 +0000 2024"}"#);
        assert_eq!(leap.created_at.as_deref(), Some("2024-02-29T23:59:59.000Z"));
    }

    mod dates {
        use crate::tweet::wire::v11_date_to_rfc3339;
        use proptest::prelude::*;

        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];

        fn days_in(month: usize, year: u32) -> u32 {
            let leap =
                year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
            [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][month]
        }

        proptest! {
            /// A v1.1 date is taken exactly when its day exists in its month and year and
            /// its time of day exists, and then it is the same instant in RFC 3339.
            #[test]
            fn taken_exactly_when_the_date_exists(
                month in 0usize..12,
                day in 0u32..=33,
                year in 1990u32..2040,
                h in 0u32..30,
                m in 0u32..65,
                s in 0u32..65,
            ) {
                let v11 = format!(
                    "Mon {} {day:02} {h:02}:{m:02}:{s:02} +0000 {year}",
                    MONTHS[month]
                );
                let exists =
                    (1..=days_in(month, year)).contains(&day) && h < 24 && m < 60 && s < 60;
                let want = exists.then(|| {
                    format!("{year}-{:02}-{day:02}T{h:02}:{m:02}:{s:02}.000Z", month + 1)
                });
                prop_assert_eq!(v11_date_to_rfc3339(&v11), want, "{}", v11);
            }
        }
    }

    #[test]
    fn v11_notices() {
        assert_eq!(
            notice(V11_DELETE),
            Notice::Delete {
                status_id: "1900000000000000010".into(),
                user_id: Some("1000000000000000011".into()),
                timestamp_ms: Some("1714564900000".into()),
            }
        );
        assert_eq!(
            notice(V11_LIMIT),
            Notice::Limit {
                track: 1234,
                timestamp_ms: Some("1714564901000".into())
            }
        );
        assert_eq!(
            notice(V11_DISCONNECT),
            Notice::Disconnect {
                code: 4,
                stream_name: String::new(),
                reason: String::new()
            }
        );
        match notice(V11_WARNING) {
            Notice::Warning {
                code, percent_full, ..
            } => {
                assert_eq!(code, "FALLING_BEHIND");
                assert_eq!(percent_full, Some(60));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keepalives_and_unknown() {
        for line in ["", "\r", "\r\n", "  \r\n", "\n"] {
            assert_eq!(
                parse_line(line.as_bytes()).unwrap(),
                StreamMessage::KeepAlive
            );
        }
        for line in ["{}", r#"{"scrub_geo":{"user_id":1}}"#, r#"{"data":null}"#] {
            assert_eq!(parse_line(line.as_bytes()).unwrap(), StreamMessage::Unknown);
        }
        // Trailing CRLF on a real message is fine.
        let with_crlf = format!("{V11_LIMIT}\r\n");
        assert!(matches!(
            parse_line(with_crlf.as_bytes()).unwrap(),
            StreamMessage::Notice(Notice::Limit { .. })
        ));
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            parse_line(b"{\"data\":{\"id\":\"1\",\"text\":\"\xff\"}}"),
            Err(ParseError::InvalidUtf8 { valid_up_to: 26 })
        ));
        for bad in [
            "{",
            "not json",
            "[1,2]",
            "42",
            r#"{"data":{"id":"1","text":"x"}"#,
        ] {
            assert!(
                matches!(parse_line(bad.as_bytes()), Err(ParseError::Json(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_line(br#"{"data":{"text":"no id"}}"#),
            Err(ParseError::MissingField("data.id"))
        ));
        assert!(matches!(
            parse_line(br#"{"data":{"id":"1"}}"#),
            Err(ParseError::MissingField("data.text"))
        ));
        assert!(matches!(
            parse_line(br#"{"text":"v1 without id"}"#),
            Err(ParseError::MissingField("id_str"))
        ));
        let msg = parse_line(b"{").unwrap_err().to_string();
        assert!(msg.contains("malformed"), "{msg}");
    }

    #[test]
    fn v11_date_conversion() {
        assert_eq!(
            v11_date_to_rfc3339("Mon Nov 29 21:18:15 +0000 2010").as_deref(),
            Some("2010-11-29T21:18:15.000Z")
        );
        for bad in [
            "",
            "Mon Nov 29 21:18:15 +0100 2010",
            "Mon Foo 29 21:18:15 +0000 2010",
            "Mon Nov 32 21:18:15 +0000 2010",
            "Mon Nov 29 21-18-15 +0000 2010",
            "Mon Nov 29 21:18:15 +0000 2010 extra",
        ] {
            assert_eq!(v11_date_to_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn to_v2_json_offsets_are_characters() {
        let t = Tweet {
            id: "7".into(),
            text: "héllo 😀 #Rust and ＃Ünï!".into(),
            author_id: Some("3".into()),
            author: Some("bob".into()),
            created_at: Some("2024-05-01T12:00:03.000Z".into()),
            lang: Some("en".into()),
            hashtags: vec!["rust".into(), "ünï".into()],
            rule_tags: vec!["r1".into()],
        };
        let line = to_v2_json(&t);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let tags = &v["data"]["entities"]["hashtags"];
        assert_eq!(tags[0]["start"], 8);
        assert_eq!(tags[0]["end"], 13);
        assert_eq!(tags[0]["tag"], "Rust");
        assert_eq!(tags[1]["start"], 18);
        assert_eq!(tags[1]["end"], 22);
        assert_eq!(tags[1]["tag"], "Ünï");
        let chars: Vec<char> = t.text.chars().collect();
        let slice: String = chars[8..13].iter().collect();
        assert_eq!(slice, "#Rust");
        assert_eq!(v["includes"]["users"][0]["username"], "bob");
        assert_eq!(v["matching_rules"][0]["tag"], "r1");
        assert!(!line.contains('\n'));
        assert_eq!(tweet(&line), t);
    }

    #[test]
    fn to_v2_json_matches_fixture_offsets() {
        let t = tweet(V2_EXPANDED);
        let v: serde_json::Value = serde_json::from_str(&to_v2_json(&t)).unwrap();
        let tags = &v["data"]["entities"]["hashtags"];
        assert_eq!(
            (tags[0]["start"].as_u64(), tags[0]["end"].as_u64()),
            (Some(37), Some(42))
        );
        assert_eq!(
            (tags[1]["start"].as_u64(), tags[1]["end"].as_u64()),
            (Some(48), Some(57))
        );
    }

    #[test]
    fn to_v2_json_tag_missing_from_text_still_round_trips() {
        let t = Tweet {
            id: "1".into(),
            text: "no tags here".into(),
            hashtags: vec!["ghost".into(), "ghost".into()],
            ..Tweet::default()
        };
        assert_eq!(tweet(&to_v2_json(&t)), t);
    }

    /// Small deterministic PRNG so the round-trip loop needs no dependencies.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    #[test]
    fn round_trip_generated_tweets() {
        const PIECES: [&str; 16] = [
            "word",
            "Ünï",
            "日本語",
            "😀",
            "\"quoted\"",
            "back\\slash",
            "line\nbreak",
            "tab\t",
            "#Tag",
            "#ΟΔΟΣ",
            "＃Full",
            "@user",
            "https://t.co/x#y",
            "a#b",
            "#",
            "\u{0}ctl",
        ];
        let mut rng = Lcg(7);
        for i in 0..500 {
            let n = rng.below(12);
            let text = (0..n)
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect::<Vec<_>>()
                .join(if rng.below(2) == 0 { " " } else { ", " });
            // An author id and a username each, both or neither (a v1.1 user can
            // lack either).
            let author = rng.below(4);
            let t = Tweet {
                id: i.to_string(),
                hashtags: extract_hashtags(&text),
                text,
                author_id: (author & 1 == 1).then(|| format!("{}", rng.below(1000))),
                author: (author & 2 == 2).then(|| format!("user{}", rng.below(1000))),
                created_at: (rng.below(2) == 0).then(|| "2024-01-01T00:00:00.001Z".into()),
                lang: (rng.below(2) == 0).then(|| "en".into()),
                rule_tags: (0..rng.below(3)).map(|k| format!("rule {k}")).collect(),
            };
            let line = to_v2_json(&t);
            assert_eq!(tweet(&line), t, "line: {line}");
        }
    }

    #[test]
    fn tweet_serde_roundtrip_and_defaults() {
        let t = tweet(V2_EXPANDED);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Tweet>(&s).unwrap(), t);
        let min: Tweet = serde_json::from_str(r#"{"id":"1","text":"x"}"#).unwrap();
        assert_eq!(min.hashtags, Vec::<String>::new());
        assert_eq!(min.author, None);
    }

    /// `cargo test --release --lib -- --ignored --nocapture parse_speed`
    #[test]
    #[ignore]
    fn parse_speed() {
        let small = to_v2_json(&tweet(V2_EXPANDED));
        for (name, line) in [
            ("v2 expanded", V2_EXPANDED),
            ("v2 compact", &small),
            ("v1.1 short", V11_SHORT),
        ] {
            let rounds = 300_000;
            let start = std::time::Instant::now();
            let mut ok = 0usize;
            for _ in 0..rounds {
                if let Ok(StreamMessage::Tweet(t)) =
                    parse_line(std::hint::black_box(line.as_bytes()))
                {
                    ok += t.hashtags.len();
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "parse_line({name}, {} bytes): {:.2} M lines/s, {:.0} ns/line ({ok})",
                line.len(),
                rounds as f64 / secs / 1e6,
                secs * 1e9 / rounds as f64
            );
        }
    }

    /// Fuzz properties (see `crate::fuzz_support`): any bytes, and near-valid messages
    /// (every fixture with fields removed, retyped, wrapped or added, then cut or
    /// bit-flipped), parse to a message or a typed error, never a panic; a tweet parsed
    /// from any of them renders with `to_v2_json` to a line that parses back to it.
    mod fuzz {
        use super::*;
        use crate::fuzz_support::{
            byte_mutation, config, framing_bytes, json_mutation, mutate_bytes, mutate_json,
        };
        use proptest::prelude::*;

        const SEEDS: [&str; 11] = [
            V2_MINIMAL,
            V2_EXPANDED,
            V2_SAMPLE,
            V2_ERROR,
            V11_SHORT,
            V11_EXTENDED,
            V11_RETWEET,
            V11_DELETE,
            V11_LIMIT,
            V11_WARNING,
            V11_DISCONNECT,
        ];

        /// Parses `line`; a tweet must survive a render and parse again unchanged.
        fn check(line: &[u8]) -> Result<(), TestCaseError> {
            if let Ok(StreamMessage::Tweet(t)) = parse_line(line) {
                let again = to_v2_json(&t);
                match parse_line(again.as_bytes()) {
                    Ok(StreamMessage::Tweet(back)) => prop_assert_eq!(back, t),
                    other => prop_assert!(false, "{again} parsed as {other:?}"),
                }
            }
            Ok(())
        }

        /// A document as large as a line may be (1 MiB): thousands of hashtag entities,
        /// a large unknown field, nesting just inside the parser's depth limit. It parses,
        /// keeping only the tweet's fields.
        #[test]
        fn fuzz_parse_line_a_huge_document() {
            let tags: Vec<String> = (0..20_000)
                .map(|i| format!(r#"{{"start":0,"end":2,"tag":"t{i}"}}"#))
                .collect();
            let nested = format!("{}1{}", "[".repeat(120), "]".repeat(120));
            let line = format!(
                r#"{{"data":{{"id":"1","text":"{}","entities":{{"hashtags":[{}]}},"x":{nested}}},"padding":"{}"}}"#,
                "#a ".repeat(50_000),
                tags.join(","),
                "x".repeat(100_000)
            );
            assert!(line.len() < crate::io::lines::DEFAULT_MAX_LINE_BYTES);
            assert!(line.len() > 700_000, "{}", line.len());
            let t = tweet(&line);
            assert_eq!(t.hashtags.len(), 20_000);
            assert_eq!(t.text.len(), 150_000);
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn fuzz_parse_line_any_bytes(line in framing_bytes(256)) {
                check(&line)?;
            }

            #[test]
            fn fuzz_parse_line_near_valid(
                seed in 0..SEEDS.len(),
                muts in prop::collection::vec(json_mutation(), 0..5),
                bytes in prop::collection::vec(byte_mutation(), 0..3),
            ) {
                let v: serde_json::Value = serde_json::from_str(SEEDS[seed])
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let line = serde_json::to_vec(&mutate_json(v, &muts))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                check(&line)?;
                check(&mutate_bytes(line, &bytes))?;
            }

            /// Deep nesting (retweets of retweets, arrays in arrays) is refused by the
            /// JSON parser's depth limit, never a stack overflow.
            #[test]
            fn fuzz_parse_line_deep_nesting(depth in 1usize..2_000, kind in 0u8..3) {
                let line = match kind {
                    0 => {
                        let mut s = String::new();
                        for _ in 0..depth {
                            s.push_str(r#"{"id":"1","text":"t","retweeted_status":"#);
                        }
                        s.push_str(r#"{"id":"2","text":"x"}"#);
                        s.push_str(&"}".repeat(depth));
                        s
                    }
                    1 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                    _ => format!(r#"{{"data":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth)),
                };
                check(line.as_bytes())?;
            }
        }
    }
}
