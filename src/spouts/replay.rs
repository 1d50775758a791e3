//! In-memory tracking of emitted messages for sources that cannot re-read (sockets,
//! streams): acked messages are dropped, failed ones are retried up to a limit, and what
//! is given up is counted, never silent.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct ReplayBuffer<T> {
    pending: HashMap<u64, (T, u32)>,
    retry: VecDeque<u64>,
    max_retries: u32,
    next_id: u64,
    given_up: Option<Arc<AtomicU64>>,
}

impl<T: Clone> ReplayBuffer<T> {
    pub fn new(max_retries: u32) -> Self {
        ReplayBuffer {
            pending: HashMap::new(),
            retry: VecDeque::new(),
            max_retries,
            next_id: 1,
            given_up: None,
        }
    }

    /// Counts given-up messages in this counter (a component metric).
    pub fn count_given_up_in(&mut self, c: Arc<AtomicU64>) {
        self.given_up = Some(c);
    }

    /// Remembers a new message; returns its message id.
    pub fn track(&mut self, item: T) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (item, 0));
        id
    }

    /// The message of a tracked id.
    pub fn get(&self, id: u64) -> Option<&T> {
        self.pending.get(&id).map(|(item, _)| item)
    }

    pub fn ack(&mut self, id: u64) {
        self.pending.remove(&id);
    }

    /// A failed message is queued for retry, or given up (and counted) past the limit.
    pub fn fail(&mut self, id: u64) {
        let give_up = match self.pending.get_mut(&id) {
            None => return,
            Some((_, attempts)) => {
                *attempts += 1;
                *attempts > self.max_retries
            }
        };
        if give_up {
            self.pending.remove(&id);
            if let Some(c) = &self.given_up {
                c.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(
                msg_id = id,
                "message failed {} times; given up",
                self.max_retries + 1
            );
        } else {
            self.retry.push_back(id);
        }
    }

    /// The next message to retry, if any: (id, item).
    pub fn next_retry(&mut self) -> Option<(u64, T)> {
        while let Some(id) = self.retry.pop_front() {
            if let Some((item, _)) = self.pending.get(&id) {
                return Some((id, item.clone()));
            }
        }
        None
    }

    /// Puts a retry back at the front (it could not be emitted now).
    pub fn unretry(&mut self, id: u64) {
        self.retry.push_front(id);
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
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
    fn ack_forgets() {
        let mut b = ReplayBuffer::new(3);
        let id = b.track(1u8);
        b.ack(id);
        b.fail(id);
        assert!(!b.has_retries());
    }
}
