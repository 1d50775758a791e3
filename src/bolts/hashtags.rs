//! `hashtags`: keeps the hashtags, normalized (lowercase, no `#`, no trailing punctuation).
//! From a tweet's `hashtags` entities when present, else from `word` tokens or `text`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{Bolt, ComponentError, ComponentResult, InputFilter, OutputDeclarer};
use crate::data::columns::{Column, Columns, StrColumn};
use crate::data::tuple::{Fields, Tuple, Value};
use crate::text::hashtags::{
    for_each_hashtag, is_hashtag_token, normalize_entity_tag, normalized_hashtag,
};
use crate::text::tokenize::FULLWIDTH_HASH;

/// Options of the `hashtags` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HashtagsConfig {}

impl ComponentConfig for HashtagsConfig {
    const NAME: &'static str = "hashtags";
    const DESCRIPTION: &'static str =
        "emits normalized hashtags (field `hashtag`) from tweet entities, #word tokens or text";
}

impl BoltConfig for HashtagsConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        Ok(Arc::new(|| Box::new(HashtagsBolt)))
    }
}

#[derive(Clone)]
pub struct HashtagsBolt;

impl Bolt for HashtagsBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["hashtag"]));
    }

    fn takes_columns(&self) -> bool {
        true
    }

    /// The first of these the input has (see `execute`).
    fn input_fields(&self) -> Option<Vec<String>> {
        Some(["hashtags", "word", "text"].map(String::from).to_vec())
    }

    /// Reading `word` tokens (the input has no `hashtags` entities), only `#word`
    /// tokens give a hashtag: the others can be left out upstream.
    fn input_filter(&self, input: &Fields) -> Option<InputFilter> {
        (input.contains("word") && !input.contains("hashtags")).then_some(InputFilter {
            field: "word",
            name: "hashtag_token",
            keep: is_hashtag_token,
            first_chars: &['#', FULLWIDTH_HASH],
        })
    }

    /// Micro-batch mode: the hashtags of a chunk of rows, as one column (the same
    /// fields, in the same order of preference, as `execute`).
    fn execute_columns(
        &mut self,
        _batch: &BatchInfo,
        input: &Columns,
    ) -> Option<Result<Columns, ComponentError>> {
        let mut tags = StrColumn::default();
        if let Some(c) = input.column("hashtags") {
            let Column::StrList(lists) = c else {
                return None;
            };
            for i in 0..lists.len() {
                for t in lists.get(i) {
                    if let Some(tag) = normalize_entity_tag(t) {
                        tags.push(&tag);
                    }
                }
            }
        } else if let Some(c) = input.column("word") {
            let mut buf = String::new();
            for w in c.as_str()?.iter() {
                if is_hashtag_token(w)
                    && let Some(tag) = normalized_hashtag(w, &mut buf)
                {
                    tags.push(tag);
                }
            }
        } else {
            for text in input.column("text")?.as_str()?.iter() {
                for_each_hashtag(text, |tag| tags.push(&tag));
            }
        }
        Some(Ok(Columns::single(Column::Str(tags))))
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(tags) = input.get("hashtags").and_then(Value::as_list) {
            for t in tags {
                if let Some(tag) = t.as_str().and_then(normalize_entity_tag) {
                    out.emit(crate::values![tag])?;
                }
            }
            return Ok(());
        }
        if let Some(word) = input.get_str("word") {
            let mut buf = String::new();
            if is_hashtag_token(word)
                && let Some(tag) = normalized_hashtag(word, &mut buf)
            {
                out.emit(crate::values![tag])?;
            }
            return Ok(());
        }
        if let Some(text) = input.get_str("text") {
            let mut res = Ok(());
            for_each_hashtag(text, |tag| {
                if res.is_ok() {
                    res = out.emit(crate::values![tag]);
                }
            });
            return res;
        }
        Err(format!(
            "hashtags: input from `{}` has none of the fields hashtags, word, text (it has {})",
            input.source_component(),
            input.fields()
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use crate::component::testkit::run_bolt;
    use crate::data::tuple::{Fields, Value};

    #[test]
    fn from_words_entities_and_text() {
        let b = super::HashtagsConfig::default();
        let out = run_bolt(
            &b,
            Fields::new(["word"]),
            vec![crate::values!["#Rust!"], crate::values!["plain"]],
        );
        assert_eq!(out, vec![crate::values!["rust"]]);
        let out = run_bolt(
            &b,
            Fields::new(["hashtags"]),
            vec![crate::values![vec![
                Value::from("Storm"),
                Value::from("flink")
            ]]],
        );
        assert_eq!(out, vec![crate::values!["storm"], crate::values!["flink"]]);
        let out = run_bolt(
            &b,
            Fields::new(["text"]),
            vec![crate::values!["a #B c #d."]],
        );
        assert_eq!(out, vec![crate::values!["b"], crate::values!["d"]]);
    }

    #[test]
    fn columns_give_the_same_hashtags() {
        use crate::component::testkit::assert_columns_match_tuples as same;
        let b = super::HashtagsConfig::default();
        let words = ["#Rust!", "plain", "#", "＃Ünï", "#a_b", "#1x"];
        same(
            &b,
            Fields::new(["word"]),
            words.iter().map(|w| crate::values![*w]).collect(),
        );
        same(
            &b,
            Fields::new(["text"]),
            vec![crate::values!["a #B c #d."], crate::values![""]],
        );
        same(
            &b,
            Fields::new(["hashtags", "text"]),
            vec![
                crate::values![
                    Value::List(vec![Value::from("Storm"), Value::from(" ")].into()),
                    "x"
                ],
                crate::values![Value::List(Vec::new().into()), "#y"],
            ],
        );
    }
}
