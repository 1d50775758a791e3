//! Projection: which fields of a stream its subscribers read, so a source can skip
//! building the others (Flink's projection push-down, decided from the graph).

use std::collections::BTreeSet;

use super::builder::{ComponentKind, Topology};
use super::grouping::Grouping;

impl Topology {
    /// The fields of `component`'s `stream` that some subscriber reads: what each
    /// subscribing bolt names in `Bolt::input_fields`, plus the fields of fields
    /// groupings, in the stream's declared order. `None` when a subscriber may read any
    /// field (a bolt that names none, a sink, a user bolt).
    pub fn read_fields(&self, component: &str, stream: &str) -> Option<Vec<String>> {
        let declared = self
            .component(component)?
            .outputs
            .streams
            .get(stream)?
            .clone();
        let mut read: BTreeSet<String> = BTreeSet::new();
        // A source reads its own event time from its tuples.
        if let Some(et) = &self.component(component)?.event_time {
            read.insert(et.field.clone());
        }
        for (c, input) in self.subscriptions(component, stream) {
            let ComponentKind::Bolt(factory) = &c.kind else {
                continue;
            };
            read.extend(factory().input_fields()?);
            if let Grouping::Fields(names) = &input.grouping {
                read.extend(names.iter().cloned());
            }
        }
        Some(
            declared
                .names()
                .filter(|n| read.contains(*n))
                .map(str::to_string)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::bolts::count::CountConfig;
    use crate::bolts::hashtags::HashtagsConfig;
    use crate::bolts::tokenize::TokenizeConfig;
    use crate::component::registry::{BoltConfig, SpoutConfig};
    use crate::component::{BoltFactory, SpoutFactory};
    use crate::data::tuple::DEFAULT_STREAM;
    use crate::spouts::generator::GeneratorSpoutConfig;
    use crate::topology::TopologyBuilder;

    fn factory(c: &impl BoltConfig) -> BoltFactory {
        c.build().unwrap_or_else(|e| panic!("{e}"))
    }

    fn generator() -> SpoutFactory {
        GeneratorSpoutConfig::default()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn tokenize() -> BoltFactory {
        factory(&TokenizeConfig::default())
    }

    fn with(extra: impl FnOnce(&mut TopologyBuilder)) -> Option<Vec<String>> {
        let mut b = TopologyBuilder::new("p");
        b.spout_factory("source", generator(), 1);
        extra(&mut b);
        b.build()
            .unwrap_or_else(|e| panic!("{e}"))
            .read_fields("source", DEFAULT_STREAM)
    }

    #[test]
    fn the_fields_every_subscriber_names_in_declared_order() {
        let read = with(|b| {
            b.bolt_factory("tokenize", tokenize(), 1)
                .local_or_shuffle("source");
            // hashtags names three fields; a fields grouping adds its key.
            b.bolt_factory("hashtags", factory(&HashtagsConfig {}), 1)
                .fields("source", ["author"]);
        });
        assert_eq!(
            read,
            Some(["text", "author", "hashtags"].map(String::from).to_vec())
        );
    }

    #[test]
    fn a_source_reads_its_event_time_field() {
        let t = {
            let mut b = TopologyBuilder::new("t");
            b.spout_factory("source", generator(), 1);
            b.set_event_time(
                "source",
                crate::time::event_time::EventTimeConfig::new("created_at"),
            );
            b.bolt_factory("tokenize", tokenize(), 1).shuffle("source");
            b.build().unwrap()
        };
        assert_eq!(
            t.read_fields("source", DEFAULT_STREAM),
            Some(vec!["text".to_string(), "created_at".to_string()])
        );
    }

    #[test]
    fn a_subscriber_that_names_nothing_reads_everything() {
        let read = with(|b| {
            b.bolt_factory("tokenize", tokenize(), 1).shuffle("source");
            b.bolt_factory("count", factory(&CountConfig::default()), 1)
                .shuffle("source");
        });
        assert_eq!(read, None);
    }

    #[test]
    fn no_subscriber_reads_nothing_and_unknown_streams_are_none() {
        let read = with(|b| {
            b.bolt_factory("tokenize", tokenize(), 1).shuffle("source");
        });
        assert_eq!(read, Some(vec!["text".to_string()]));
        let t = {
            let mut b = TopologyBuilder::new("p");
            b.spout_factory("source", generator(), 1);
            b.bolt_factory("tokenize", tokenize(), 1).shuffle("source");
            b.build().unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(t.read_fields("tokenize", DEFAULT_STREAM), Some(Vec::new()));
        assert_eq!(t.read_fields("source", "other"), None);
        assert_eq!(t.read_fields("nope", DEFAULT_STREAM), None);
    }
}
