//! `tokenize`: splits text into words (unicode-aware; keeps `#` and `@` prefixes).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::transactional::BatchInfo;
use crate::component::{Bolt, ComponentError, ComponentResult, OutputDeclarer, TaskContext};
use crate::data::columns::{Column, Columns, StrColumn};
use crate::data::tuple::{Fields, Tuple};
use crate::text::prefixed_tokens::PrefixedTokens;
use crate::text::tokenize::tokenize_reusing;

/// Options of the `tokenize` bolt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizeConfig {
    /// The input field holding the text.
    pub field: String,
    pub lowercase: bool,
}

impl Default for TokenizeConfig {
    fn default() -> Self {
        TokenizeConfig {
            field: "text".into(),
            lowercase: true,
        }
    }
}

impl ComponentConfig for TokenizeConfig {
    const NAME: &'static str = "tokenize";
    const DESCRIPTION: &'static str =
        "splits text into words (field `word`), keeping #hashtags and @mentions";
}

impl BoltConfig for TokenizeConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        let cfg = self.clone();
        Ok(Arc::new(move || {
            Box::new(TokenizeBolt {
                cfg: cfg.clone(),
                keep: None,
                search: None,
                buf: String::new(),
            })
        }))
    }
}

#[derive(Clone)]
pub struct TokenizeBolt {
    cfg: TokenizeConfig,
    /// The test every subscriber applies to `word` (filter push-down): words failing it
    /// are not emitted.
    keep: Option<fn(&str) -> bool>,
    /// When every word the filter keeps starts with one of a few characters: finds the
    /// tokens starting with them without tokenizing the rest of the text.
    search: Option<PrefixedTokens>,
    /// Scratch space for lowercasing, kept from one input to the next.
    buf: String,
}

impl TokenizeBolt {
    /// Whether a subscriber uses word `w`.
    #[inline]
    fn keeps(&self, w: &str) -> bool {
        self.keep.is_none_or(|keep| keep(w))
    }

    /// Calls `f` with each word of `text` that some subscriber uses.
    fn words(&self, text: &str, buf: &mut String, mut f: impl FnMut(&str)) {
        let kept = |w: &str| {
            if self.keeps(w) {
                f(w)
            }
        };
        match &self.search {
            Some(search) => search.for_each(text, buf, kept),
            None => tokenize_reusing(text, self.cfg.lowercase, buf, kept),
        }
    }
}

impl Bolt for TokenizeBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["word"]));
    }

    fn takes_columns(&self) -> bool {
        true
    }

    fn input_fields(&self) -> Option<Vec<String>> {
        Some(vec![self.cfg.field.clone()])
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        let filter = ctx.output_filter().filter(|f| f.field == "word");
        self.keep = filter.map(|f| f.keep);
        self.search = filter.and_then(|f| PrefixedTokens::new(f.first_chars, self.cfg.lowercase));
        Ok(())
    }

    /// Micro-batch mode: the words of a chunk of texts, as one column.
    fn execute_columns(
        &mut self,
        _batch: &BatchInfo,
        input: &Columns,
    ) -> Option<Result<Columns, ComponentError>> {
        let texts = input.column(&self.cfg.field)?.as_str()?;
        // About one word per 8 bytes of text.
        let mut words = StrColumn::with_capacity(texts.bytes() / 8 + 1, texts.bytes());
        let mut buf = String::new();
        match &self.search {
            // One search over all the texts.
            Some(search) => {
                let (joined, ends) = texts.joined();
                search.for_each_joined(joined, ends, &mut buf, |w| {
                    if self.keeps(w) {
                        words.push(w)
                    }
                });
            }
            None => {
                for text in texts.iter() {
                    self.words(text, &mut buf, |w| words.push(w));
                }
            }
        }
        Some(Ok(Columns::single(Column::Str(words))))
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(text) = input.get_str(&self.cfg.field) else {
            return Err(format!(
                "tokenize: input from `{}` has no text field `{}` (fields {})",
                input.source_component(),
                self.cfg.field,
                input.fields()
            )
            .into());
        };
        let mut res = Ok(());
        let mut buf = std::mem::take(&mut self.buf);
        self.words(text, &mut buf, |w| {
            if res.is_ok() {
                res = out.emit(crate::values![w]);
            }
        });
        self.buf = buf;
        res
    }
}

#[cfg(test)]
mod tests {
    use crate::component::testkit::run_bolt;
    use crate::data::tuple::Fields;

    #[test]
    fn splits_and_keeps_prefixes() {
        let b = super::TokenizeConfig::default();
        let out = run_bolt(
            &b,
            Fields::new(["text"]),
            vec![crate::values!["Hello, #Rust @Bob!"]],
        );
        let words: Vec<String> = out.iter().map(|v| v[0].to_string()).collect();
        assert_eq!(words, ["hello", "#rust", "@bob"]);
    }

    #[test]
    fn columns_give_the_same_words() {
        let texts = [
            "Hello, #Rust @Bob!",
            "",
            "ÉTÉ naïve https://x.y/z ok",
            "a#b ＃Ünï",
        ];
        crate::component::testkit::assert_columns_match_tuples(
            &super::TokenizeConfig::default(),
            Fields::new(["text"]),
            texts.iter().map(|t| crate::values![*t]).collect(),
        );
        // A non-text field: no columnar path (the rows come as tuples).
        let ints = crate::component::testkit::run_bolt_columns(
            &super::TokenizeConfig::default(),
            Fields::new(["text"]),
            &[crate::values![1]],
        );
        assert!(ints.is_none());
    }

    /// When every subscriber only uses `#word` tokens (hashtags on a `word` stream), only
    /// those are emitted, by both paths, and they are the ones the subscriber would use.
    #[test]
    fn only_words_every_subscriber_uses_are_emitted() {
        use crate::bolts::hashtags::HashtagsConfig;
        use crate::component::registry::BoltConfig;
        use crate::component::testkit::BoltHarness;
        let hashtags = HashtagsConfig {}.build().unwrap_or_else(|e| panic!("{e}"))();
        let filter = hashtags.input_filter(&Fields::new(["word"]));
        assert!(filter.is_some());
        let tokenize = || {
            super::TokenizeConfig::default()
                .build()
                .unwrap_or_else(|e| panic!("{e}"))()
        };
        let texts = ["Hello, #Rust @Bob! #", "naïve ＃Ünï #ok# a#b", ""];
        let rows: Vec<_> = texts.iter().map(|t| crate::values![*t]).collect();
        let mut h = BoltHarness::with_output_filter(tokenize(), Fields::new(["text"]), filter);
        let mut tuples = Vec::new();
        for r in &rows {
            tuples.extend(h.execute(r.clone()).unwrap_or_else(|e| panic!("{e}")));
        }
        let words: Vec<String> = tuples.iter().map(|v| v[0].to_string()).collect();
        assert_eq!(words, ["#rust", "＃ünï", "#ok"]);
        let columns = h
            .execute_columns(&rows)
            .unwrap_or_else(|| panic!("no columnar path"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(columns, tuples);
        // Unfiltered, hashtags gets the same hashtags from all the words.
        let all = run_bolt(
            &super::TokenizeConfig::default(),
            Fields::new(["text"]),
            rows,
        );
        let tags = |ws: Vec<crate::data::tuple::Values>| {
            run_bolt(&HashtagsConfig {}, Fields::new(["word"]), ws)
        };
        assert_eq!(tags(all), tags(tuples));
    }
}
