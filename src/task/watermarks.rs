//! The watermark of a task from those of the tasks that send to it: the minimum over the
//! senders that are not idle, once every sender has told its own; it never goes back.

use std::collections::HashMap;

/// A task's view of its senders' watermarks.
#[derive(Debug)]
pub(crate) struct InputWatermarks {
    /// How many tasks send to this one.
    senders: usize,
    /// Each sender's last watermark (`None`: idle).
    from: HashMap<u32, Option<i64>>,
    /// The task's watermark as last computed (`None`: idle, or not known yet).
    current: Option<i64>,
    /// Whether every sender is idle.
    idle: bool,
}

/// A change of a task's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// It advanced to this (ms since the Unix epoch; `i64::MAX`: every input ended).
    Advanced(i64),
    /// Every sender is idle: nothing holds downstream tasks back.
    Idle,
}

impl InputWatermarks {
    pub(crate) fn new(senders: usize) -> Self {
        InputWatermarks {
            senders,
            from: HashMap::new(),
            current: None,
            idle: false,
        }
    }

    /// Sender `from` says its watermark is `at` (`None`: idle); returns how the task's
    /// watermark changed, if it did.
    pub(crate) fn update(&mut self, from: u32, at: Option<i64>) -> Option<Change> {
        self.from.insert(from, at);
        if self.from.len() < self.senders {
            return None;
        }
        let mut min = self.from.values().flatten().min().copied();
        // The end of time needs every sender's end: an idle one may still send.
        if min == Some(i64::MAX) && self.from.values().any(Option::is_none) {
            min = Some(self.current.filter(|_| !self.idle)?);
        }
        match min {
            None => {
                if self.idle {
                    return None;
                }
                self.idle = true;
                Some(Change::Idle)
            }
            Some(m) => {
                let was_idle = std::mem::replace(&mut self.idle, false);
                match self.current {
                    Some(c) if m <= c => was_idle.then_some(Change::Advanced(c)),
                    _ => {
                        self.current = Some(m);
                        Some(Change::Advanced(m))
                    }
                }
            }
        }
    }

    /// The task's watermark (`None`: not known yet, or idle).
    pub(crate) fn current(&self) -> Option<i64> {
        if self.idle { None } else { self.current }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_over_senders_once_all_told() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.update(1, Some(100)), None, "sender 2 not heard yet");
        assert_eq!(w.update(2, Some(50)), Some(Change::Advanced(50)));
        assert_eq!(w.update(2, Some(150)), Some(Change::Advanced(100)));
        assert_eq!(w.update(1, Some(90)), None, "never goes back");
        assert_eq!(w.current(), Some(100));
    }

    #[test]
    fn only_idle_senders_leave_it_unknown_until_they_all_end() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.update(1, None), None);
        assert_eq!(w.update(2, None), Some(Change::Idle));
        assert_eq!(w.update(1, Some(i64::MAX)), None, "sender 2 may still send");
        assert_eq!(
            w.update(2, Some(i64::MAX)),
            Some(Change::Advanced(i64::MAX))
        );
    }

    #[test]
    fn idle_senders_do_not_hold_it_back() {
        let mut w = InputWatermarks::new(2);
        w.update(1, None);
        assert_eq!(w.update(2, Some(10)), Some(Change::Advanced(10)));
        assert_eq!(w.update(2, None), Some(Change::Idle));
        assert_eq!(w.current(), None);
        assert_eq!(
            w.update(1, Some(5)),
            Some(Change::Advanced(10)),
            "back, not below"
        );
        assert_eq!(
            w.update(1, Some(i64::MAX)),
            None,
            "the end of time waits for the idle sender's end"
        );
        assert_eq!(
            w.update(2, Some(i64::MAX)),
            Some(Change::Advanced(i64::MAX))
        );
    }
}
