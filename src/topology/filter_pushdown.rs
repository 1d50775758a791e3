//! Filter push-down: when every subscriber of a stream ignores the rows that fail one
//! test of one field (`Bolt::input_filter`), the source may leave those rows out. Decided
//! from the graph, like projection; the subscribers' results do not change, only the work
//! of emitting and routing rows no one uses is saved.

use super::builder::{ComponentKind, Topology};
use crate::component::InputFilter;

impl Topology {
    /// The test every subscriber of `component`'s `stream` applies before any work, or
    /// `None`: when the stream has no subscriber, or some subscriber declares no test (a
    /// sink, a user bolt, one that uses every row) or a different one.
    pub fn output_filter(&self, component: &str, stream: &str) -> Option<InputFilter> {
        let fields = self.component(component)?.outputs.streams.get(stream)?;
        let mut common: Option<InputFilter> = None;
        for (c, _) in self.subscriptions(component, stream) {
            let ComponentKind::Bolt(factory) = &c.kind else {
                return None;
            };
            let f = factory().input_filter(fields)?;
            match &common {
                Some(c) if !c.same_as(&f) => return None,
                _ => common = Some(f),
            }
        }
        common
    }
}

#[cfg(test)]
mod tests {
    use crate::bolts::count::CountConfig;
    use crate::bolts::hashtags::HashtagsConfig;
    use crate::bolts::tokenize::TokenizeConfig;
    use crate::component::BoltFactory;
    use crate::component::InputFilter;
    use crate::component::registry::{BoltConfig, SpoutConfig};
    use crate::data::tuple::DEFAULT_STREAM;
    use crate::spouts::generator::GeneratorSpoutConfig;
    use crate::topology::TopologyBuilder;

    fn factory(c: &impl BoltConfig) -> BoltFactory {
        c.build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `source → tokenize → ...` with `extra` adding tokenize's subscribers; the filter
    /// pushed to tokenize and the one pushed to the source.
    fn with(
        extra: impl FnOnce(&mut TopologyBuilder),
    ) -> (Option<InputFilter>, Option<InputFilter>) {
        let mut b = TopologyBuilder::new("f");
        b.spout_factory(
            "source",
            GeneratorSpoutConfig::default()
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            1,
        );
        b.bolt_factory("tokenize", factory(&TokenizeConfig::default()), 1)
            .local_or_shuffle("source");
        extra(&mut b);
        let t = b.build().unwrap_or_else(|e| panic!("{e}"));
        (
            t.output_filter("tokenize", DEFAULT_STREAM),
            t.output_filter("source", DEFAULT_STREAM),
        )
    }

    #[test]
    fn words_no_one_but_hashtags_reads_are_filtered_at_tokenize() {
        let (words, tweets) = with(|b| {
            b.bolt_factory("hashtags", factory(&HashtagsConfig {}), 2)
                .local_or_shuffle("tokenize");
            b.bolt_factory("also", factory(&HashtagsConfig {}), 1)
                .shuffle("tokenize");
        });
        let Some(f) = words else {
            panic!("no filter pushed to tokenize");
        };
        assert_eq!((f.field, f.name), ("word", "hashtag_token"));
        assert!((f.keep)("#rust") && !(f.keep)("rust") && !(f.keep)("#"));
        // tokenize names no test of its input.
        assert!(tweets.is_none());
    }

    #[test]
    fn a_subscriber_that_uses_every_row_keeps_them_all() {
        let (words, _) = with(|b| {
            b.bolt_factory("hashtags", factory(&HashtagsConfig {}), 1)
                .local_or_shuffle("tokenize");
            b.bolt_factory("words", factory(&CountConfig::default()), 1)
                .fields("tokenize", ["word"]);
        });
        assert!(words.is_none());
        let (none, _) = with(|_| {});
        assert!(none.is_none(), "a stream no one reads is not filtered");
    }

    #[test]
    fn hashtags_reading_entities_or_text_tests_no_word() {
        let f = HashtagsConfig {}.build().unwrap_or_else(|e| panic!("{e}"))();
        let fields = |names: &[&str]| crate::data::tuple::Fields::new(names.iter().copied());
        assert!(f.input_filter(&fields(&["text", "hashtags"])).is_none());
        assert!(f.input_filter(&fields(&["word", "hashtags"])).is_none());
        assert!(f.input_filter(&fields(&["text"])).is_none());
        assert!(f.input_filter(&fields(&["word"])).is_some());
    }
}
