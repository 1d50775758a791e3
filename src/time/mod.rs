//! Event time: when messages happened, as their sources say, and watermarks.

pub mod event_time;
pub mod watermark;
