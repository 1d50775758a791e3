//! Event time at the source: reading a message's time ([`event_time`]) and the watermark
//! of a spout task ([`watermark`]).
//!
//! Plain building blocks: nothing here reads a clock; callers pass the time in.

pub mod event_time;
pub mod watermark;

pub use event_time::{EventTimeConfig, EventTimeError, parse_event_time};
pub use watermark::{WatermarkStatus, WatermarkTracker};
