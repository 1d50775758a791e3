//! A spout task's cell together with the commits it has not applied yet.
//!
//! Telling a spout task that batch `n` committed (ack, latency, the transactional
//! spout's `commit_batch`) needs its cell, and at full speed another driver thread holds
//! that cell most of the time: it is cutting batch `n + 1` from it. A committing driver
//! that waited for the cell sat idle for the rest of that cut (7 % of each driver's time
//! on the trending-hashtags job). Instead the commit is queued, applied at once when the
//! cell is free, otherwise by the holder when it takes or releases the cell — before
//! anything else is done with it, and in txid order (commits happen in txid order).

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use super::cells::SpoutCell;
use crate::sync::lock;

/// What a slot holds: something told of commits, in txid order.
pub(super) trait Committable {
    fn commit(&mut self, txid: u64, now: Instant);
}

impl Committable for SpoutCell {
    fn commit(&mut self, txid: u64, now: Instant) {
        SpoutCell::commit(self, txid, now);
    }
}

pub(super) struct SpoutSlot<C: Committable = SpoutCell> {
    cell: Mutex<C>,
    /// Committed batches not applied to the cell yet, in txid order, with commit times.
    commits: Mutex<Vec<(u64, Instant)>>,
}

impl<C: Committable> SpoutSlot<C> {
    pub(super) fn new(cell: C) -> Self {
        SpoutSlot {
            cell: Mutex::new(cell),
            commits: Mutex::new(Vec::new()),
        }
    }

    /// The cell, with every commit queued so far applied (and those queued while it is
    /// held applied when it is released).
    pub(super) fn lock(&self) -> SpoutGuard<'_, C> {
        let mut cell = lock(&self.cell);
        self.apply(&mut cell);
        SpoutGuard {
            slot: self,
            cell: Some(cell),
        }
    }

    /// The cell if no one holds it now (commits applied as by [`Self::lock`]).
    pub(super) fn try_lock(&self) -> Option<SpoutGuard<'_, C>> {
        let mut cell = self.try_cell()?;
        self.apply(&mut cell);
        Some(SpoutGuard {
            slot: self,
            cell: Some(cell),
        })
    }

    /// Batch `txid` committed at `now`: applied now if no other driver holds the cell,
    /// else queued for the holder. Calls come in txid order.
    pub(super) fn commit(&self, txid: u64, now: Instant) {
        lock(&self.commits).push((txid, now));
        self.release(self.try_cell());
    }

    fn try_cell(&self) -> Option<MutexGuard<'_, C>> {
        match self.cell.try_lock() {
            Ok(c) => Some(c),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Applies the queue to a held cell and unlocks it; if a commit was queued meanwhile
    /// (its committer found the cell held), takes the cell again to apply it, unless
    /// someone else holds it now (they will). So nothing stays queued on an idle cell.
    fn release<'a>(&'a self, mut held: Option<MutexGuard<'a, C>>) {
        while let Some(mut cell) = held.take() {
            self.apply(&mut cell);
            drop(cell);
            if lock(&self.commits).is_empty() {
                break;
            }
            held = self.try_cell();
        }
    }

    fn apply(&self, cell: &mut C) {
        let queued = std::mem::take(&mut *lock(&self.commits));
        for (txid, now) in queued {
            cell.commit(txid, now);
        }
    }
}

/// A held spout cell; queued commits are applied when it is dropped.
pub(super) struct SpoutGuard<'a, C: Committable> {
    slot: &'a SpoutSlot<C>,
    /// Always `Some` until dropped.
    cell: Option<MutexGuard<'a, C>>,
}

impl<C: Committable> Deref for SpoutGuard<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        match &self.cell {
            Some(c) => c,
            None => unreachable!("the cell is taken only when the guard is dropped"),
        }
    }
}

impl<C: Committable> DerefMut for SpoutGuard<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        match &mut self.cell {
            Some(c) => c,
            None => unreachable!("the cell is taken only when the guard is dropped"),
        }
    }
}

impl<C: Committable> Drop for SpoutGuard<'_, C> {
    fn drop(&mut self) {
        self.slot.release(self.cell.take());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Log(Vec<u64>);

    impl Committable for Log {
        fn commit(&mut self, txid: u64, _now: Instant) {
            self.0.push(txid);
        }
    }

    #[test]
    fn a_commit_to_a_free_cell_is_applied_at_once() {
        let slot = SpoutSlot::new(Log::default());
        slot.commit(1, Instant::now());
        slot.commit(2, Instant::now());
        assert_eq!(lock(&slot.cell).0, [1, 2]);
    }

    #[test]
    fn commits_to_a_held_cell_do_not_wait_and_are_applied_in_order_on_release() {
        let slot = Arc::new(SpoutSlot::new(Log::default()));
        let held = slot.lock();
        let (done_tx, done_rx) = channel();
        let s = slot.clone();
        let committer = std::thread::spawn(move || {
            s.commit(7, Instant::now());
            s.commit(8, Instant::now());
            let _ = done_tx.send(());
        });
        // The committer returns while the cell is still held.
        assert!(done_rx.recv_timeout(Duration::from_secs(10)).is_ok());
        assert!(held.0.is_empty(), "applied under the holder's feet");
        drop(held);
        assert!(committer.join().is_ok());
        assert_eq!(lock(&slot.cell).0, [7, 8]);
        slot.commit(9, Instant::now());
        assert_eq!(slot.lock().0, [7, 8, 9]);
    }

    #[test]
    fn commits_racing_holders_are_each_applied_once_in_order_and_none_stays_queued() {
        // A stress test of the whole slot; the narrow window it guards (a commit queued
        // between a holder's last drain and its unlock) is rarely hit by it.
        let slot = Arc::new(SpoutSlot::new(Log::default()));
        let s = slot.clone();
        let holder = std::thread::spawn(move || {
            for _ in 0..20_000 {
                drop(s.lock());
            }
        });
        for txid in 1..=20_000 {
            slot.commit(txid, Instant::now());
        }
        assert!(holder.join().is_ok());
        assert!(lock(&slot.commits).is_empty(), "a commit stayed queued");
        let log = &lock(&slot.cell).0;
        assert_eq!(log.len(), 20_000);
        assert!(log.windows(2).all(|w| w[0] + 1 == w[1]));
    }

    #[test]
    fn taking_the_cell_applies_what_was_queued_first() {
        let slot = SpoutSlot::new(Log::default());
        // As if a commit had been queued just after a holder released the cell.
        lock(&slot.commits).push((3, Instant::now()));
        assert_eq!(slot.lock().0, [3]);
    }
}
