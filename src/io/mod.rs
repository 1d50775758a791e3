//! Helpers shared by sources and sinks: line framing, reconnect back-off, the clock, and
//! dates as text (RFC 3339, the X API v1.1 `created_at`).

pub mod backoff;
pub mod clock;
pub mod lines;
pub mod time;
