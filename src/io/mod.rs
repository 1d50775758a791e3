//! Network helpers shared by sources: line framing and reconnect back-off.

pub mod backoff;
pub mod lines;
