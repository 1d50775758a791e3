//! The fields every tweet source emits, and the conversion of a tweet to them.

use compact_str::CompactString;

use crate::columns::{Column, Columns, ColumnsError, StrColumn, StrListColumn};
use crate::text::generator::{EPOCH_MS, TweetGenerator, push_rfc3339, push_u64};
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

/// Generated tweets, built column by column (the generator's micro-batch fast path):
/// the same fields and values as [`tweet_values`] of [`TweetGenerator::tweet_at`],
/// without an allocation per tweet.
pub struct TweetColumns {
    id: StrColumn,
    text: StrColumn,
    author: StrColumn,
    created_at: StrColumn,
    lang: Column,
    hashtags: StrListColumn,
    author_id: StrColumn,
}

impl TweetColumns {
    pub fn with_capacity(rows: usize, g: &TweetGenerator) -> Self {
        TweetColumns {
            id: StrColumn::with_capacity(rows, rows * 8),
            text: StrColumn::with_capacity(rows, rows * 96),
            author: StrColumn::with_capacity(rows, rows * 8),
            created_at: StrColumn::with_capacity(rows, rows * 24),
            lang: match g.lang() {
                Some(_) => Column::Str(StrColumn::with_capacity(rows, rows * 2)),
                None => Column::Any(Vec::with_capacity(rows)),
            },
            hashtags: StrListColumn::with_capacity(rows),
            author_id: StrColumn::with_capacity(rows, rows * 4),
        }
    }

    /// Adds tweet `seq` of `g`.
    pub fn push(&mut self, g: &TweetGenerator, seq: u64) {
        self.id.push_with(|s| push_u64(s, seq));
        let mut user = 0;
        let tags = &mut self.hashtags;
        self.text
            .push_with(|s| user = g.write_tweet(seq, s, |t| tags.push_item(t)));
        tags.end_row();
        let mut digits = itoa::Buffer::new();
        let user = digits.format(user);
        self.author.push_with(|s| {
            s.push_str("user");
            s.push_str(user);
        });
        self.author_id.push(user);
        self.created_at
            .push_with(|s| push_rfc3339(s, EPOCH_MS.wrapping_add(seq)));
        match (&mut self.lang, g.lang()) {
            (Column::Str(c), Some(l)) => c.push(l),
            (Column::Any(v), _) => v.push(Value::Null),
            // A Str column exists only when the generator has a lang.
            _ => {}
        }
    }

    /// The rows, in the order of [`tweet_fields`].
    pub fn finish(self) -> Result<Columns, ColumnsError> {
        Columns::new(vec![
            Column::Str(self.id),
            Column::Str(self.text),
            Column::Str(self.author),
            Column::Str(self.created_at),
            self.lang,
            Column::StrList(self.hashtags),
            Column::Str(self.author_id),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::generator::GeneratorConfig;

    #[test]
    fn columns_hold_the_same_values_as_tuples() {
        for lang in ["en", ""] {
            let g = TweetGenerator::new(GeneratorConfig {
                lang: lang.into(),
                ..GeneratorConfig::default()
            })
            .unwrap_or_else(|e| panic!("{e}"));
            let mut c = TweetColumns::with_capacity(4, &g);
            for seq in 1..=200 {
                c.push(&g, seq);
            }
            let cols = c
                .finish()
                .and_then(|c| c.for_test("gen", tweet_fields()))
                .unwrap_or_else(|e| panic!("{e}"));
            for (i, seq) in (1..=200).enumerate() {
                assert_eq!(cols.row(i), tweet_values(g.tweet_at(seq)), "tweet {seq}");
            }
        }
    }
}
