//! The ack ledger: Storm's XOR scheme over a sharded concurrent map.
//!
//! Every spout tuple gets a random 64-bit root id and every anchored edge a random 64-bit
//! edge id. Per root the ledger keeps the XOR of the edge ids created and acked; each id
//! enters it exactly twice (once when the edge is created, once when its tuple is acked),
//! so the value returns to zero exactly when every edge of the tree has been acked (a
//! false zero needs a 2^-64 coincidence). Tasks update the ledger directly (no acker
//! hop): see docs/benchmarks.md for the measurement behind that choice.

use std::time::Instant;

use std::collections::HashMap;

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::ids::IdBuildHasher;

/// Sent to a spout task when one of its trees completes or fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AckMsg {
    pub root: u64,
    pub ok: bool,
}

/// What one task owes the ledger and the spouts, settled at the end of its current batch:
/// ack deltas XOR-ed per root (the ten words of one tweet acked by one task become one
/// ledger update, and edges created and acked within the batch cancel out), and outcomes
/// sent in one message per spout (not one wake-up per tree).
#[derive(Default)]
pub(crate) struct Outcomes {
    deltas: HashMap<u64, u64, IdBuildHasher>,
    per_spout: Vec<Vec<AckMsg>>,
    any: bool,
}

impl Outcomes {
    /// Defers an ack: XORs `delta` into the root's pending delta.
    pub(crate) fn ack(&mut self, root: u64, delta: u64) {
        *self.deltas.entry(root).or_insert(0) ^= delta;
    }

    fn push(&mut self, spout: u32, msg: AckMsg) {
        let i = spout as usize;
        if self.per_spout.len() <= i {
            self.per_spout.resize_with(i + 1, Vec::new);
        }
        self.per_spout[i].push(msg);
        self.any = true;
    }
}

#[derive(Debug)]
struct Entry {
    xor: u64,
    spout: u32,
    deadline_ms: u64,
}

/// What the spout finds when a root's deadline passes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Already completed or failed (its message is on the way).
    Gone,
    /// A bolt reset the timeout: check again at this time.
    Extended(u64),
    /// Timed out: removed from the ledger; the spout fails it.
    Expired,
}

pub(crate) struct Ledger {
    map: DashMap<u64, Entry, IdBuildHasher>,
    spouts: Vec<mpsc::UnboundedSender<Vec<AckMsg>>>,
    epoch: Instant,
}

impl Ledger {
    /// `spouts[i]` receives the outcomes of the trees of spout slot `i`.
    ///
    /// The outcome channels are unbounded on purpose: each tracked root sends exactly one
    /// outcome, so a channel never holds more than its spout's in-flight trees, which
    /// `max_spout_pending` bounds (plus what one `next_tuple` call emits). A bounded
    /// channel could only drop outcomes, and a dropped outcome is a tree pending forever.
    pub(crate) fn new(spouts: Vec<mpsc::UnboundedSender<Vec<AckMsg>>>) -> Self {
        Ledger {
            map: DashMap::with_hasher_and_shard_amount(IdBuildHasher::default(), 64),
            spouts,
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the ledger was made (the clock of deadlines).
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a root whose spout emitted edges XOR-ing to `xor`. Returns `false` if the
    /// tree is already complete (nothing was emitted to any task).
    pub(crate) fn init(&self, root: u64, xor: u64, spout: u32, deadline_ms: u64) -> bool {
        if xor == 0 {
            return false;
        }
        self.map.insert(
            root,
            Entry {
                xor,
                spout,
                deadline_ms,
            },
        );
        true
    }

    /// XORs `delta` into the root's value; completes the tree when it reaches zero.
    pub(crate) fn ack(&self, root: u64, delta: u64, out: &mut Outcomes) -> bool {
        let done = match self.map.get_mut(&root) {
            None => return false,
            Some(mut e) => {
                e.xor ^= delta;
                e.xor == 0
            }
        };
        if done && let Some((_, e)) = self.map.remove_if(&root, |_, e| e.xor == 0) {
            out.push(e.spout, AckMsg { root, ok: true });
            return true;
        }
        false
    }

    /// Fails the tree at once (a bolt failed one of its tuples).
    pub(crate) fn fail(&self, root: u64, out: &mut Outcomes) {
        out.deltas.remove(&root);
        if let Some((_, e)) = self.map.remove(&root) {
            out.push(e.spout, AckMsg { root, ok: false });
        }
    }

    /// Sends the collected outcomes to their spouts.
    pub(crate) fn deliver(&self, out: &mut Outcomes) {
        if !out.deltas.is_empty() {
            let deltas = std::mem::take(&mut out.deltas);
            for (&root, &d) in &deltas {
                // A zero delta changes nothing: the tree's value was not zero before
                // (a zero value is removed at once), so it cannot be zero after.
                if d != 0 {
                    self.ack(root, d, out);
                }
            }
            out.deltas = deltas;
            out.deltas.clear();
        }
        if !out.any {
            return;
        }
        out.any = false;
        for (spout, msgs) in out.per_spout.iter_mut().enumerate() {
            if !msgs.is_empty() {
                self.notify(spout as u32, std::mem::take(msgs));
            }
        }
    }

    /// Gives a tree `timeout_ms` more from now (a bolt that legitimately needs longer).
    pub(crate) fn reset_timeout(&self, root: u64, timeout_ms: u64) {
        let deadline = self.now_ms() + timeout_ms;
        if let Some(mut e) = self.map.get_mut(&root) {
            e.deadline_ms = deadline;
        }
    }

    /// Called by the spout when a root's deadline (as it knew it) has passed.
    pub(crate) fn expire(&self, root: u64, now_ms: u64) -> Expiry {
        let extended = match self.map.get(&root) {
            None => return Expiry::Gone,
            Some(e) if e.deadline_ms > now_ms => Some(e.deadline_ms),
            Some(_) => None,
        };
        if let Some(d) = extended {
            return Expiry::Extended(d);
        }
        match self.map.remove_if(&root, |_, e| e.deadline_ms <= now_ms) {
            Some(_) => Expiry::Expired,
            None => match self.map.get(&root) {
                Some(e) => Expiry::Extended(e.deadline_ms),
                None => Expiry::Gone,
            },
        }
    }

    /// Drops a root without telling anyone (its spout task restarted).
    pub(crate) fn forget(&self, root: u64) {
        self.map.remove(&root);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn notify(&self, spout: u32, msgs: Vec<AckMsg>) {
        match self.spouts.get(spout as usize) {
            Some(tx) => {
                if tx.send(msgs).is_err() {
                    // The spout task has finished: nobody waits for these outcomes.
                    tracing::debug!(spout, "outcomes for a finished spout");
                }
            }
            None => tracing::error!(spout, "ack for unknown spout slot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acks and delivers at once.
    fn ack(l: &Ledger, root: u64, delta: u64) -> bool {
        let mut out = Outcomes::default();
        let done = l.ack(root, delta, &mut out);
        l.deliver(&mut out);
        done
    }

    fn fail(l: &Ledger, root: u64) {
        let mut out = Outcomes::default();
        l.fail(root, &mut out);
        l.deliver(&mut out);
    }

    fn ledger() -> (Ledger, mpsc::UnboundedReceiver<Vec<AckMsg>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Ledger::new(vec![tx]), rx)
    }

    #[test]
    fn tree_completes_when_last_edge_acked() {
        let (l, mut rx) = ledger();
        // spout emits edge a; bolt acks a and emits b and c; b and c acked.
        assert!(l.init(1, 0xa, 0, 1000));
        assert!(!ack(&l, 1, 0xa ^ 0xb ^ 0xc));
        assert!(!ack(&l, 1, 0xb));
        assert!(rx.try_recv().is_err());
        assert!(ack(&l, 1, 0xc));
        assert_eq!(rx.try_recv().ok(), Some(vec![AckMsg { root: 1, ok: true }]));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn fail_notifies_once() {
        let (l, mut rx) = ledger();
        l.init(7, 3, 0, 1000);
        fail(&l, 7);
        fail(&l, 7);
        ack(&l, 7, 3);
        assert_eq!(
            rx.try_recv().ok(),
            Some(vec![AckMsg { root: 7, ok: false }])
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn expiry_respects_reset() {
        let (l, _rx) = ledger();
        l.init(9, 5, 0, 10);
        assert_eq!(l.expire(9, 5), Expiry::Extended(10));
        assert_eq!(l.expire(9, 10), Expiry::Expired);
        assert_eq!(l.expire(9, 11), Expiry::Gone);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// A random tree: node i > 0 hangs under parent[i] < i; node 0 is the spout tuple.
        fn tree() -> impl Strategy<Value = (Vec<usize>, Vec<u64>, Vec<usize>)> {
            (1usize..40).prop_flat_map(|n| {
                let parents = (1..n).map(|i| 0..i).collect::<Vec<_>>();
                let ids = proptest::collection::vec(1u64.., n);
                let order = Just((1..n).collect::<Vec<usize>>()).prop_shuffle();
                (parents, ids, order)
            })
        }

        proptest! {
            /// Whatever the order of acks, the tree completes exactly at the last one.
            #[test]
            fn completes_exactly_when_last_edge_acked((parents, ids, order) in tree()) {
                let (l, mut rx) = ledger();
                let n = ids.len();
                // edge id of node i (i ≥ 1) is ids[i]; node 0's edges are its children's.
                let mut children_xor = vec![0u64; n];
                let parent_of = |i: usize| parents[i - 1];
                for i in 1..n {
                    children_xor[parent_of(i)] ^= ids[i];
                }
                // The spout emits the children of node 0; every other node is a bolt
                // tuple acked (with its own children's edges) in a random order.
                let initial = children_xor[0];
                prop_assume!(initial != 0);
                prop_assert!(l.init(1, initial, 0, u64::MAX));
                for (k, &i) in order.iter().enumerate() {
                    let done = ack(&l, 1, ids[i] ^ children_xor[i]);
                    let last = k + 1 == order.len();
                    prop_assert_eq!(done, last, "ack {} of {} completed={}", k + 1, order.len(), done);
                }
                if order.is_empty() {
                    prop_assert!(rx.try_recv().is_err());
                } else {
                    prop_assert_eq!(rx.try_recv().ok(), Some(vec![AckMsg { root: 1, ok: true }]));
                }
            }
        }
    }
}
