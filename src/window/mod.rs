//! Sliding-window counts and top-k rankings (Storm's RollingTopWords building blocks).

pub mod event_windows;
pub mod rankings;
pub mod sliding;
