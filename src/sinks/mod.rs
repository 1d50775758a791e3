//! Built-in sinks (bolts with no output) that need no external system, one module each
//! (the Kafka sink lives in `kafka::sink`).

pub mod console;
pub mod jsonl;
pub mod null;
