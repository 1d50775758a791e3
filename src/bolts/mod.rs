//! Built-in bolts, one module each.

pub mod chaos;
pub mod count;
mod fired_windows;
pub mod hashtags;
pub mod key_field;
pub mod rank;
pub mod ranking_value;
pub mod rolling_count;
pub mod tokenize;
pub mod total_rank;
pub mod window_mark;

#[cfg(test)]
mod snapshot_tests;
