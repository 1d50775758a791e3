//! Window ends and punctuation between the windowed bolts.
//!
//! `rolling_count` tags every `(key, count)` with the bounds of its window (`window_start`
//! and `window_end`, ms since the Unix epoch: the window is `[window_start, window_end)`)
//! and, after each window, broadcasts a punctuation tuple — key `null`, the same bounds —
//! to every downstream task: "this task has sent all of window W". A `rank` task
//! emits its partial ranking of W once every upstream task has punctuated W, and
//! `total_rank` merges the partials of W once every `rank` task has sent one; so every
//! table is the top-k of exactly one window. The flush at the end of a run is the final
//! window: its tuples carry `final = true` and the real end of the slide the run ended in
//! (tasks may end in different slides: the final window is one window whatever its ends,
//! and its tables carry the latest of them, with the start of that latest window). The
//! rankings carry the bounds of their window on to the sinks.

use crate::data::tuple::{Tuple, Value};

/// The field that is true on the tuples of the final window (the flush at the end of a
/// run) and false on every other window's.
pub const FINAL_FIELD: &str = "final";

/// Which window a tuple belongs to: one that closed at a slide boundary, or the final
/// flush. Closed windows come before the final one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum WindowId {
    /// The window that ended at this slide boundary (ms since the Unix epoch).
    Closed(i64),
    /// What was still in the window when the run ended.
    Final,
}

/// The `window_end` field of a tuple, if it has one.
pub fn window_end(t: &Tuple) -> Option<i64> {
    t.get("window_end").and_then(Value::as_int)
}

/// The `window_start` field of a tuple, if it has one.
pub fn window_start(t: &Tuple) -> Option<i64> {
    t.get("window_start").and_then(Value::as_int)
}

/// The tuple belongs to the final window.
pub fn is_final(t: &Tuple) -> bool {
    matches!(t.get(FINAL_FIELD), Some(Value::Bool(true)))
}

/// The window of a tuple with a `window_end`, and that end.
pub fn window_of(t: &Tuple) -> Option<(WindowId, i64)> {
    let end = window_end(t)?;
    let id = if is_final(t) {
        WindowId::Final
    } else {
        WindowId::Closed(end)
    };
    Some((id, end))
}

/// Event time: the closed windows among `windows` that a watermark at `watermark` has
/// passed (their end is at or before it), in order.
pub fn passed_by(windows: impl Iterator<Item = WindowId>, watermark: i64) -> Vec<WindowId> {
    windows
        .filter(|w| matches!(w, WindowId::Closed(end) if *end <= watermark))
        .collect()
}

/// A punctuation tuple: its key is null.
pub fn is_punctuation(t: &Tuple) -> bool {
    matches!(t.value(0), Some(Value::Null))
}

/// Counts the punctuations of each window until every upstream task has sent one.
/// Serialized (in a bolt's snapshot) as a list of `[window, punctuations]` pairs.
#[derive(Default, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowMarks {
    #[serde(with = "pairs")]
    seen: std::collections::BTreeMap<WindowId, usize>,
}

/// A map as a list of `[key, value]` pairs (for keys JSON cannot take as object keys, such
/// as [`WindowId`]).
pub(crate) mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map)
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

impl WindowMarks {
    /// Records one punctuation of `window`; true when `expected` have arrived (the window
    /// is complete). Older windows are forgotten then.
    pub fn mark(&mut self, window: WindowId, expected: usize) -> bool {
        let n = self.seen.entry(window).or_insert(0);
        *n = n.saturating_add(1);
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
    use WindowId::{Closed, Final};

    #[test]
    fn complete_after_every_upstream_task() {
        let mut m = WindowMarks::default();
        assert!(!m.mark(Closed(10), 2));
        assert!(!m.mark(Closed(20), 2));
        assert!(m.mark(Closed(10), 2));
        assert!(m.mark(Closed(20), 2));
        assert!(m.mark(Closed(30), 1));
    }

    #[test]
    fn the_final_window_is_one_window_whatever_its_ends_and_comes_last() {
        assert!(Closed(i64::MAX) < Final);
        let t = |end: i64, fin: bool| {
            Tuple::new_detached(
                "counts",
                crate::data::tuple::DEFAULT_STREAM,
                crate::data::tuple::Fields::new(["key", "count", "window_end", FINAL_FIELD]),
                crate::values![
                    Value::Null,
                    Value::Int(0),
                    Value::Int(end),
                    Value::Bool(fin)
                ],
            )
        };
        assert_eq!(window_of(&t(20, false)), Some((Closed(20), 20)));
        assert_eq!(window_of(&t(30, true)), Some((Final, 30)));
        // Two tasks that ended in different slides complete one final window.
        let mut m = WindowMarks::default();
        assert!(!m.mark(Final, 2));
        assert!(!m.mark(Closed(20), 2));
        assert!(m.mark(Final, 2));
    }
}
