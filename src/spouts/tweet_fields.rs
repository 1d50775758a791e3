//! The fields every tweet source emits, and the conversion of a tweet to them.

use compact_str::CompactString;

use crate::text::tweet::Tweet;
use crate::tuple::{Fields, Value, Values};

/// `id, text, author, created_at, lang, hashtags, author_id` (author: the username;
/// hashtags: a list of normalized tags).
pub fn tweet_fields() -> Fields {
    Fields::new([
        "id",
        "text",
        "author",
        "created_at",
        "lang",
        "hashtags",
        "author_id",
    ])
}

fn opt(s: Option<String>) -> Value {
    s.map(Value::from).unwrap_or(Value::Null)
}

pub fn tweet_values(t: Tweet) -> Values {
    let tags: Vec<Value> = t
        .hashtags
        .into_iter()
        .map(|h| Value::Str(CompactString::from(h)))
        .collect();
    crate::values![
        Value::from(t.id),
        Value::from(t.text),
        opt(t.author),
        opt(t.created_at),
        opt(t.lang),
        Value::from(tags),
        opt(t.author_id),
    ]
}
