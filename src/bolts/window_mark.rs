//! Window ends and punctuation between the windowed bolts.
//!
//! `rolling_count` tags every `(key, count)` with the end of its window (`window_end`, ms
//! since the Unix epoch) and, after each window, broadcasts a punctuation tuple — key
//! `null` — to every downstream task: "this task has sent all of window W". A `rank` task
//! emits its partial ranking of W once every upstream task has punctuated W, and
//! `total_rank` merges the partials of W once every `rank` task has sent one; so every
//! table is the top-k of exactly one window. The final flush of a bounded run is the window
//! [`FINAL_WINDOW`].

use crate::tuple::{Tuple, Value};

/// The `window_end` of the flush at the end of a run (everything still in the window).
pub const FINAL_WINDOW: i64 = i64::MAX;

/// The `window_end` field of a tuple, if it has one.
pub fn window_end(t: &Tuple) -> Option<i64> {
    t.get("window_end").and_then(Value::as_int)
}

/// A punctuation tuple: its key is null.
pub fn is_punctuation(t: &Tuple) -> bool {
    matches!(t.value(0), Some(Value::Null))
}

/// Counts the punctuations of each window until every upstream task has sent one.
#[derive(Default)]
pub struct WindowMarks {
    seen: std::collections::BTreeMap<i64, usize>,
}

impl WindowMarks {
    /// Records one punctuation of `window`; true when `expected` have arrived (the window
    /// is complete). Older windows are forgotten then.
    pub fn mark(&mut self, window: i64, expected: usize) -> bool {
        let n = self.seen.entry(window).or_insert(0);
        *n += 1;
        if *n >= expected {
            self.seen = self.seen.split_off(&window);
            self.seen.remove(&window);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_after_every_upstream_task() {
        let mut m = WindowMarks::default();
        assert!(!m.mark(10, 2));
        assert!(!m.mark(20, 2));
        assert!(m.mark(10, 2));
        assert!(m.mark(20, 2));
        assert!(m.mark(30, 1));
    }
}
