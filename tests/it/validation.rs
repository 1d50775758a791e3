//! `TopologyBuilder::build` rejects topologies that cannot run, with a precise error.

use squall::{Fields, TopologyBuilder, TopologyError};

use crate::support::*;

fn spout() -> CountingSpout {
    CountingSpout::new(1)
}

/// Asserts the error variant and its text.
fn rejected(b: TopologyBuilder, want: TopologyError, text: &str) {
    match b.build() {
        Ok(_) => panic!("build() accepted a topology that must fail with {want:?}"),
        Err(e) => {
            assert_eq!(e, want);
            assert_eq!(e.to_string(), text);
        }
    }
}

#[test]
fn unknown_source() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("sink", NullBolt, 1).shuffle("nope");
    rejected(
        b,
        TopologyError::UnknownSource {
            bolt: "sink".into(),
            source_name: "nope".into(),
        },
        "bolt `sink` subscribes to unknown component `nope`",
    );
}

#[test]
fn unknown_stream() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("sink", NullBolt, 1).shuffle(("spout", "errors"));
    rejected(
        b,
        TopologyError::UnknownStream {
            bolt: "sink".into(),
            source_name: "spout".into(),
            stream: "errors".into(),
            declared: vec!["default".into()],
        },
        "bolt `sink` subscribes to stream `errors` of `spout`, which declares only [\"default\"]",
    );
}

#[test]
fn stream_of_a_bolt_without_outputs() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("a", NullBolt, 1).shuffle("spout");
    b.bolt("b", NullBolt, 1).shuffle("a");
    rejected(
        b,
        TopologyError::UnknownStream {
            bolt: "b".into(),
            source_name: "a".into(),
            stream: "default".into(),
            declared: vec![],
        },
        "bolt `b` subscribes to stream `default` of `a`, which declares only []",
    );
}

#[test]
fn cycle() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("a", RecordingBolt::forwarder(), 1)
        .shuffle("spout")
        .shuffle("b");
    b.bolt("b", RecordingBolt::forwarder(), 1).shuffle("a");
    rejected(
        b,
        TopologyError::Cycle(vec!["a".into(), "b".into(), "a".into()]),
        "the topology has a cycle: a -> b -> a",
    );
}

#[test]
fn self_loop_is_a_cycle() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("a", RecordingBolt::forwarder(), 1)
        .shuffle("spout")
        .shuffle("a");
    rejected(
        b,
        TopologyError::Cycle(vec!["a".into(), "a".into()]),
        "the topology has a cycle: a -> a",
    );
}

#[test]
fn fields_grouping_on_undeclared_field() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("sink", NullBolt, 2).fields("spout", ["key", "word"]);
    rejected(
        b,
        TopologyError::UnknownField {
            bolt: "sink".into(),
            source_name: "spout".into(),
            stream: "default".into(),
            field: "word".into(),
            declared: Fields::new(SPOUT_FIELDS).to_string(),
        },
        "bolt `sink` groups `spout:default` by field `word`, which that stream does not declare (it has [n, attempt, key])",
    );
}

#[test]
fn fields_grouping_with_no_fields() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("sink", NullBolt, 2)
        .fields("spout", Vec::<String>::new());
    rejected(
        b,
        TopologyError::EmptyFields {
            bolt: "sink".into(),
            source_name: "spout".into(),
        },
        "bolt `sink` has a fields grouping on `spout` with no fields",
    );
}

#[test]
fn duplicate_name() {
    let mut b = TopologyBuilder::new("t");
    b.spout("x", spout(), 1);
    b.bolt("x", NullBolt, 1).shuffle("x");
    rejected(
        b,
        TopologyError::DuplicateName("x".into()),
        "component name `x` is used twice",
    );
}

#[test]
fn zero_parallelism_of_a_bolt_and_of_a_spout() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    b.bolt("sink", NullBolt, 0).shuffle("spout");
    rejected(
        b,
        TopologyError::ZeroParallelism("sink".into()),
        "component `sink` has parallelism 0; it must be at least 1",
    );

    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 0);
    b.bolt("sink", NullBolt, 1).shuffle("spout");
    rejected(
        b,
        TopologyError::ZeroParallelism("spout".into()),
        "component `spout` has parallelism 0; it must be at least 1",
    );
}

#[test]
fn bolt_without_inputs() {
    let mut b = TopologyBuilder::new("t");
    b.spout("spout", spout(), 1);
    let _ = b.bolt("sink", NullBolt, 1);
    rejected(
        b,
        TopologyError::NoInputs("sink".into()),
        "bolt `sink` has no input; add a grouping such as .shuffle(\"source\")",
    );
}

#[test]
fn no_spout() {
    let b = TopologyBuilder::new("t");
    rejected(b, TopologyError::NoSpouts, "the topology has no spout");
}

#[test]
fn a_valid_topology_builds() {
    let mut b = TopologyBuilder::new("ok");
    b.spout("spout", spout(), 2);
    b.bolt("a", RecordingBolt::forwarder(), 2)
        .fields("spout", ["key"]);
    b.bolt("b", NullBolt, 1)
        .shuffle("a")
        .global(("spout", "default"));
    let t = b.build().expect("valid topology");
    assert_eq!(t.name(), "ok");
    assert_eq!(t.components().len(), 3);
}
