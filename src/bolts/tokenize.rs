//! `tokenize`: splits text into words (unicode-aware; keeps `#` and `@` prefixes).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::batch::BatchInfo;
use crate::columns::{Column, Columns, StrColumn};
use crate::component::{Bolt, ComponentError, ComponentResult, OutputDeclarer};
use crate::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::runtime::BoltCollector;
use crate::text::tokenize::{tokenize, tokenize_reusing};
use crate::topology::BoltFactory;
use crate::tuple::{Fields, Tuple};

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
            Box::new(TokenizeBolt { cfg: cfg.clone() })
        }))
    }
}

#[derive(Clone)]
pub struct TokenizeBolt {
    cfg: TokenizeConfig,
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
        for text in texts.iter() {
            tokenize_reusing(text, self.cfg.lowercase, &mut buf, |w| words.push(w));
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
        tokenize(text, self.cfg.lowercase, |w| {
            if res.is_ok() {
                res = out.emit(crate::values![w]);
            }
        });
        res
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::run_bolt;
    use crate::tuple::Fields;

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
        crate::testkit::assert_columns_match_tuples(
            &super::TokenizeConfig::default(),
            Fields::new(["text"]),
            texts.iter().map(|t| crate::values![*t]).collect(),
        );
        // A non-text field: no columnar path (the rows come as tuples).
        let ints = crate::testkit::run_bolt_columns(
            &super::TokenizeConfig::default(),
            Fields::new(["text"]),
            &[crate::values![1]],
        );
        assert!(ints.is_none());
    }
}
