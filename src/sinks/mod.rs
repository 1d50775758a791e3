//! Built-in sinks (bolts with no output), one module each.

pub mod console;
pub mod jsonl;
pub mod kafka;
pub mod null;

use crate::registry::Registry;

pub fn register(r: &mut Registry) {
    r.register_bolt::<console::ConsoleConfig>();
    r.register_bolt::<jsonl::JsonlConfig>();
    r.register_bolt::<kafka::KafkaSinkConfig>();
    r.register_bolt::<null::NullConfig>();
}
