//! The fields every tweet source emits, and the conversion of a tweet to them.

use compact_str::CompactString;

use crate::data::columns::{Column, Columns, ColumnsError, StrColumn, StrListColumn};
use crate::data::tuple::{Fields, Value, Values};
use crate::tweet::generator::{TweetGenerator, push_u64};
use crate::tweet::wire::Tweet;

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
    Values::from_iter([
        Value::from(t.id),
        Value::from(t.text),
        opt(t.author),
        opt(t.created_at),
        opt(t.lang),
        Value::from(tags),
        opt(t.author_id),
    ])
}

/// Which fields of a generated tweet to build; the others are emitted as null. All of
/// them unless the consumers name what they read ([`TaskContext::read_fields`]).
///
/// [`TaskContext::read_fields`]: crate::component::TaskContext::read_fields
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TweetProjection([bool; 7]);

impl TweetProjection {
    pub const ALL: TweetProjection = TweetProjection([true; 7]);

    /// The fields in `read` (in [`tweet_fields`] names); all of them for `None`.
    pub fn of(read: Option<&[String]>) -> TweetProjection {
        let Some(read) = read else {
            return TweetProjection::ALL;
        };
        let fields = tweet_fields();
        let mut keep = [false; 7];
        for (k, name) in keep.iter_mut().zip(fields.names()) {
            *k = read.iter().any(|r| r == name);
        }
        TweetProjection(keep)
    }

    fn id(self) -> bool {
        self.0[0]
    }
    fn text(self) -> bool {
        self.0[1]
    }
    fn author(self) -> bool {
        self.0[2]
    }
    fn created_at(self) -> bool {
        self.0[3]
    }
    fn lang(self) -> bool {
        self.0[4]
    }
    fn hashtags(self) -> bool {
        self.0[5]
    }
    fn author_id(self) -> bool {
        self.0[6]
    }

    /// Whether the text must be generated (it also yields the hashtags and the author).
    fn writes_text(self) -> bool {
        self.text() || self.hashtags() || self.author() || self.author_id()
    }
}

/// Tweet `seq` of `g` as tuple values, building only the fields `keep` names (the
/// same values as [`tweet_values`] of [`TweetGenerator::tweet_at`] for those).
pub fn generated_values(g: &TweetGenerator, seq: u64, keep: TweetProjection) -> Values {
    if keep == TweetProjection::ALL {
        return tweet_values(g.tweet_at(seq));
    }
    let mut text = String::new();
    let mut tags: Vec<Value> = Vec::new();
    let mut user = 0;
    if keep.writes_text() {
        user = g.write_tweet(seq, &mut text, |t| {
            if keep.hashtags() {
                tags.push(Value::Str(CompactString::from(t)));
            }
        });
    }
    let null = || Value::Null;
    let mut digits = itoa::Buffer::new();
    let user = digits.format(user);
    Values::from_iter([
        if keep.id() {
            let mut id = String::new();
            push_u64(&mut id, seq);
            Value::from(id)
        } else {
            null()
        },
        if keep.text() {
            Value::from(text)
        } else {
            null()
        },
        if keep.author() {
            Value::from(format!("user{user}"))
        } else {
            null()
        },
        if keep.created_at() {
            let mut at = String::new();
            g.push_created_at(&mut at, seq);
            Value::from(at)
        } else {
            null()
        },
        match g.lang() {
            Some(l) if keep.lang() => Value::from(l),
            _ => null(),
        },
        if keep.hashtags() {
            Value::from(tags)
        } else {
            null()
        },
        if keep.author_id() {
            Value::from(user)
        } else {
            null()
        },
    ])
}

/// Generated tweets, built column by column (the generator's micro-batch fast path):
/// the same fields and values as [`generated_values`], without an allocation per tweet.
/// A field left out by the projection is a [`Column::Null`].
pub struct TweetColumns {
    keep: TweetProjection,
    rows: usize,
    id: StrColumn,
    text: StrColumn,
    author: StrColumn,
    created_at: StrColumn,
    lang: Column,
    hashtags: StrListColumn,
    author_id: StrColumn,
}

impl TweetColumns {
    pub fn with_capacity(rows: usize, g: &TweetGenerator, keep: TweetProjection) -> Self {
        let str_col = |on: bool, per_row: usize| {
            if on {
                StrColumn::with_capacity(rows, rows * per_row)
            } else {
                StrColumn::default()
            }
        };
        TweetColumns {
            keep,
            rows: 0,
            id: str_col(keep.id(), 8),
            text: str_col(keep.text(), 96),
            author: str_col(keep.author(), 8),
            created_at: str_col(keep.created_at(), 24),
            lang: match g.lang() {
                Some(_) if keep.lang() => Column::Str(StrColumn::with_capacity(rows, rows * 2)),
                _ => Column::Null(0),
            },
            hashtags: if keep.hashtags() {
                StrListColumn::with_capacity(rows)
            } else {
                StrListColumn::default()
            },
            author_id: str_col(keep.author_id(), 4),
        }
    }

    /// Adds tweet `seq` of `g`.
    pub fn push(&mut self, g: &TweetGenerator, seq: u64) {
        let keep = self.keep;
        self.rows += 1;
        if keep.id() {
            self.id.push_with(|s| push_u64(s, seq));
        }
        let mut user = 0;
        if keep.writes_text() {
            let tags = &mut self.hashtags;
            let mut write = |s: &mut String| {
                user = g.write_tweet(seq, s, |t| {
                    if keep.hashtags() {
                        tags.push_item(t);
                    }
                })
            };
            if keep.text() {
                self.text.push_with(write);
            } else {
                // The author comes out of the same random draws as the text.
                let mut scratch = String::new();
                write(&mut scratch);
            }
            if keep.hashtags() {
                tags.end_row();
            }
        }
        let mut digits = itoa::Buffer::new();
        let user = digits.format(user);
        if keep.author() {
            self.author.push_with(|s| {
                s.push_str("user");
                s.push_str(user);
            });
        }
        if keep.author_id() {
            self.author_id.push(user);
        }
        if keep.created_at() {
            self.created_at.push_with(|s| g.push_created_at(s, seq));
        }
        match (&mut self.lang, g.lang()) {
            (Column::Str(c), Some(l)) => c.push(l),
            (Column::Null(n), _) => *n += 1,
            // A Str column exists only when the generator has a lang.
            _ => {}
        }
    }

    /// The rows, in the order of [`tweet_fields`].
    pub fn finish(self) -> Result<Columns, ColumnsError> {
        let rows = self.rows;
        let keep = self.keep;
        let col = |on: bool, c: Column| if on { c } else { Column::Null(rows) };
        Columns::new(vec![
            col(keep.id(), Column::Str(self.id)),
            col(keep.text(), Column::Str(self.text)),
            col(keep.author(), Column::Str(self.author)),
            col(keep.created_at(), Column::Str(self.created_at)),
            self.lang,
            col(keep.hashtags(), Column::StrList(self.hashtags)),
            col(keep.author_id(), Column::Str(self.author_id)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tweet::generator::{EventClock, GeneratorConfig};

    #[test]
    fn every_path_writes_the_event_clocks_created_at() {
        let mut g =
            TweetGenerator::new(GeneratorConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let clock = EventClock {
            first_ms: 1_767_225_600_000,
            interval_ns: 250_000,
            skew_ms: 30_000,
            disorder_ms: 5_000,
            seed: 1,
        };
        g.set_event_clock(Some(clock));
        for keep in [
            TweetProjection::ALL,
            TweetProjection::of(Some(&["created_at".to_owned()])),
        ] {
            let mut c = TweetColumns::with_capacity(4, &g, keep);
            for seq in 1..=100 {
                c.push(&g, seq);
            }
            let cols = c
                .finish()
                .and_then(|c| c.for_test("gen", tweet_fields()))
                .unwrap_or_else(|e| panic!("{e}"));
            for (i, seq) in (1..=100).enumerate() {
                let mut want = String::new();
                crate::tweet::generator::push_rfc3339_clamped(&mut want, clock.created_at_ms(seq));
                let want = Value::from(want);
                assert_eq!(
                    g.tweet_at(seq).created_at.map(Value::from).as_ref(),
                    Some(&want)
                );
                assert_eq!(generated_values(&g, seq, keep)[3], want, "{seq}");
                assert_eq!(cols.row(i)[3], want, "{seq}");
            }
        }
    }

    #[test]
    fn columns_hold_the_same_values_as_tuples() {
        for lang in ["en", ""] {
            let g = TweetGenerator::new(GeneratorConfig {
                lang: lang.into(),
                ..GeneratorConfig::default()
            })
            .unwrap_or_else(|e| panic!("{e}"));
            for read in [
                None,
                Some(vec!["text"]),
                Some(vec!["hashtags", "word"]),
                Some(vec!["author_id", "lang", "id"]),
                Some(vec!["created_at", "author"]),
                Some(vec![]),
            ] {
                let read: Option<Vec<String>> =
                    read.map(|r| r.into_iter().map(String::from).collect());
                let keep = TweetProjection::of(read.as_deref());
                let mut c = TweetColumns::with_capacity(4, &g, keep);
                for seq in 1..=200 {
                    c.push(&g, seq);
                }
                let cols = c
                    .finish()
                    .and_then(|c| c.for_test("gen", tweet_fields()))
                    .unwrap_or_else(|e| panic!("{e}"));
                for (i, seq) in (1..=200).enumerate() {
                    let all = tweet_values(g.tweet_at(seq));
                    let projected = generated_values(&g, seq, keep);
                    // The fields kept are the full tweet's; the others are null.
                    for (k, name) in tweet_fields().names().enumerate() {
                        let read_it = read.as_ref().is_none_or(|r| r.iter().any(|f| f == name));
                        let want = if read_it { &all[k] } else { &Value::Null };
                        assert_eq!(&projected[k], want, "tweet {seq} field {name} ({read:?})");
                    }
                    assert_eq!(cols.row(i), projected, "tweet {seq} ({read:?})");
                }
            }
        }
    }
}
