//! Helpers shared by sources and sinks: line framing, reconnect back-off and the clock.

pub mod backoff;
pub mod clock;
pub mod lines;
