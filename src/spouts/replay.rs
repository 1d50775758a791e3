//! In-memory tracking of emitted messages for sources that cannot re-read (sockets,
//! streams): acked messages are dropped, failed ones are retried up to a limit, and what
//! is given up is counted, never silent.
//!
//! Message ids are handed out in sequence, so the pending messages live in a ring indexed
//! by `id - base`: tracking, lookup and ack are O(1) without hashing. Acked slots are
//! emptied; the ring's front advances past them, so its length is bounded by the span
//! between the oldest unacked message and the newest (the spout's `max_spout_pending`
//! bounds that span in practice).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::component::SpoutStatus;
use crate::component::collector::SpoutCollector;
use crate::data::tuple::Values;
use crate::log_throttle::LogThrottle;

pub struct ReplayBuffer<T> {
    /// Slot `i` holds message `base + i` and its failed attempts, or `None` once done.
    slots: VecDeque<Option<(T, u32)>>,
    /// Id of the front slot.
    base: u64,
    /// Messages in `slots` that are still pending.
    live: usize,
    retry: VecDeque<u64>,
    max_retries: u32,
    given_up: Option<Arc<AtomicU64>>,
    given_up_log: LogThrottle,
}

impl<T: Clone> ReplayBuffer<T> {
    pub fn new(max_retries: u32) -> Self {
        ReplayBuffer {
            slots: VecDeque::new(),
            base: 1,
            live: 0,
            retry: VecDeque::new(),
            max_retries,
            given_up: None,
            given_up_log: LogThrottle::default(),
        }
    }

    /// Counts given-up messages in this counter (a component metric).
    pub fn count_given_up_in(&mut self, c: Arc<AtomicU64>) {
        self.given_up = Some(c);
    }

    /// Remembers a new message; returns its message id.
    pub fn track(&mut self, item: T) -> u64 {
        let id = self.base + self.slots.len() as u64;
        self.slots.push_back(Some((item, 0)));
        self.live += 1;
        id
    }

    fn slot(&self, id: u64) -> Option<&(T, u32)> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get(i)?.as_ref()
    }

    fn slot_mut(&mut self, id: u64) -> Option<&mut (T, u32)> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// The message of a tracked id.
    pub fn get(&self, id: u64) -> Option<&T> {
        self.slot(id).map(|(item, _)| item)
    }

    /// Forgets a message (acked or given up) and drops finished slots at the front.
    fn remove(&mut self, id: u64) {
        let Some(i) = id
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(i)
            && slot.take().is_some()
        {
            self.live -= 1;
        }
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
    }

    pub fn ack(&mut self, id: u64) {
        self.remove(id);
    }

    /// A failed message is queued for retry, or given up (and counted) past the limit.
    pub fn fail(&mut self, id: u64) {
        let max = self.max_retries;
        let give_up = match self.slot_mut(id) {
            None => return,
            Some((_, attempts)) => {
                *attempts += 1;
                *attempts > max
            }
        };
        if give_up {
            self.give_up(id);
        } else {
            self.retry.push_back(id);
        }
    }

    /// A failed message of several parts (the lines of one read, emitted as one
    /// message): each part becomes a message of its own, with the failed attempt counted,
    /// and is retried (or given up and counted) on its own, so one bad line does not take
    /// the others down with it. `split` returns the parts (fewer than 2: failed as one).
    pub fn fail_split(&mut self, id: u64, split: impl FnOnce(&T) -> Vec<T>) {
        let Some((item, attempts)) = self.slot(id) else {
            return;
        };
        let attempts = attempts + 1;
        let parts = split(item);
        if parts.len() < 2 {
            return self.fail(id);
        }
        self.remove(id);
        for part in parts {
            let pid = self.track(part);
            if let Some(slot) = self.slot_mut(pid) {
                slot.1 = attempts;
            }
            if attempts > self.max_retries {
                self.give_up(pid);
            } else {
                self.retry.push_back(pid);
            }
        }
    }

    fn give_up(&mut self, id: u64) {
        self.remove(id);
        if let Some(c) = &self.given_up {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = self.given_up_log.hit() {
            tracing::warn!(
                msg_id = id,
                "message failed {} times; given up{n}",
                self.max_retries + 1
            );
        }
    }

    /// The next message to retry, if any: (id, item).
    pub fn next_retry(&mut self) -> Option<(u64, T)> {
        while let Some(id) = self.retry.pop_front() {
            if let Some(item) = self.get(id) {
                return Some((id, item.clone()));
            }
        }
        None
    }

    /// Emits the next due retry (its values made by `to_values`); `None` when none is
    /// due. A retry that cannot be emitted now goes back to the front of the queue.
    pub fn emit_retry(
        &mut self,
        out: &mut SpoutCollector<'_>,
        to_values: impl Fn(&T) -> Values,
    ) -> Option<SpoutStatus> {
        let (id, values) = loop {
            let id = self.retry.pop_front()?;
            if let Some(item) = self.get(id) {
                break (id, to_values(item));
            }
        };
        if out.emit(values, Some(id)).is_err() {
            self.unretry(id);
            return Some(SpoutStatus::Idle);
        }
        Some(SpoutStatus::Emitted)
    }

    /// Tracks a new message and emits it (its values made by `to_values`); one that
    /// cannot be emitted counts as done.
    pub fn emit_new(
        &mut self,
        item: T,
        out: &mut SpoutCollector<'_>,
        to_values: impl Fn(&T) -> Values,
    ) -> u64 {
        let values = to_values(&item);
        let id = self.track(item);
        if out.emit(values, Some(id)).is_err() {
            self.ack(id);
        }
        id
    }

    /// Puts a retry back at the front (it could not be emitted now).
    pub fn unretry(&mut self, id: u64) {
        self.retry.push_front(id);
    }

    pub fn in_flight(&self) -> usize {
        self.live
    }

    pub fn has_retries(&self) -> bool {
        !self.retry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_then_gives_up_and_counts() {
        let c = Arc::new(AtomicU64::new(0));
        let mut b = ReplayBuffer::new(1);
        b.count_given_up_in(c.clone());
        let id = b.track("x".to_string());
        b.fail(id);
        assert_eq!(b.next_retry(), Some((id, "x".to_string())));
        b.fail(id);
        assert_eq!(b.next_retry(), None);
        assert_eq!(c.load(Ordering::Relaxed), 1);
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn a_failed_message_of_several_parts_is_retried_part_by_part() {
        let c = Arc::new(AtomicU64::new(0));
        let mut b = ReplayBuffer::new(1);
        b.count_given_up_in(c.clone());
        let split = |v: &Vec<u8>| v.iter().map(|&x| vec![x]).collect::<Vec<_>>();
        let id = b.track(vec![1, 2, 3]);
        b.fail_split(id, split);
        assert_eq!(b.in_flight(), 3);
        let retries: Vec<(u64, Vec<u8>)> = std::iter::from_fn(|| b.next_retry()).collect();
        assert_eq!(
            retries.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            [vec![1], vec![2], vec![3]]
        );
        // Part 1 is acked, part 2 fails again (its second failure: given up), part 3
        // fails as one part (nothing left to split) and is given up too.
        b.ack(retries[0].0);
        b.fail_split(retries[1].0, split);
        b.fail(retries[2].0);
        assert_eq!(c.load(Ordering::Relaxed), 2);
        assert_eq!(b.in_flight(), 0);
        assert!(!b.has_retries());
        // With no retries allowed, every part of a failed message is given up at once.
        let mut b = ReplayBuffer::new(0);
        b.count_given_up_in(c.clone());
        let id = b.track(vec![4, 5]);
        b.fail_split(id, split);
        assert_eq!(c.load(Ordering::Relaxed), 4);
        assert_eq!(b.in_flight(), 0);
        // A stale id is ignored.
        b.fail_split(id, split);
        assert_eq!(c.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn ack_forgets() {
        let mut b = ReplayBuffer::new(3);
        let id = b.track(1u8);
        b.ack(id);
        b.fail(id);
        assert!(!b.has_retries());
    }

    #[test]
    fn out_of_order_acks_shrink_the_ring() {
        let mut b = ReplayBuffer::new(3);
        let ids: Vec<u64> = (0..5).map(|i| b.track(i)).collect();
        b.ack(ids[1]);
        b.ack(ids[3]);
        assert_eq!(b.in_flight(), 3);
        assert_eq!(b.slots.len(), 5);
        b.ack(ids[0]);
        assert_eq!(b.slots.len(), 3, "front advances past acked slots");
        assert_eq!(b.get(ids[2]), Some(&2));
        b.ack(ids[2]);
        b.ack(ids[4]);
        assert_eq!(b.in_flight(), 0);
        assert!(b.slots.is_empty());
        // Ids keep increasing; stale ids are ignored.
        let next = b.track(9);
        assert_eq!(next, ids[4] + 1);
        b.ack(ids[0]);
        b.fail(ids[0]);
        assert_eq!(b.get(next), Some(&9));
    }
}
