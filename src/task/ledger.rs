//! The ack ledger: Storm's XOR scheme, kept by each spout task for its own trees.
//!
//! Every spout tuple gets a random 64-bit root id and every anchored edge a random 64-bit
//! edge id. Per root the spout keeps the XOR of the edge ids created and acked; each id
//! enters it exactly twice (once when the edge is created, once when its tuple is acked),
//! so the value returns to zero exactly when every edge of the tree has been acked (a
//! false zero needs a 2^-64 coincidence).
//!
//! Bolt tasks do not touch a shared map: a task XORs its acks per root over one input
//! batch ([`Outcomes`]) and sends them, one message per spout task, to the spout task that
//! owns the root (its slot is written in the root id). The spout applies them to its own
//! table ([`Trees`]) on its own thread, so no ledger line moves between cores. (The first
//! design was a sharded concurrent map updated by every task; at moderate rates its lock
//! and entry cache misses cost 0.35 µs per tweet: docs/benchmarks.md.)

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::task::ids::IdBuildHasher;

/// What a spout task hears about one of its trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckMsg {
    /// The XOR of edge ids one task created and acked in the tree.
    Ack { root: u64, delta: u64 },
    /// A task failed a tuple of the tree: the tree fails at once.
    Fail { root: u64 },
    /// A task asked for more time: the tree's timeout restarts.
    Reset { root: u64 },
}

impl AckMsg {
    pub(crate) fn is_fail(&self) -> bool {
        matches!(self, AckMsg::Fail { .. })
    }
}

/// Bits of a root id that name the spout task owning it (`[32, 48)`: the low and high
/// bits stay random for hashing).
const SLOT_SHIFT: u32 = 32;
const SLOT_MASK: u64 = 0xFFFF;
/// The most spout tasks one topology may have.
pub(crate) const MAX_SPOUT_TASKS: usize = SLOT_MASK as usize + 1;

/// A root id for spout slot `slot`, from a random id.
pub(crate) fn root_id(random: u64, slot: u32) -> u64 {
    (random & !(SLOT_MASK << SLOT_SHIFT)) | ((slot as u64 & SLOT_MASK) << SLOT_SHIFT)
}

fn slot_of(root: u64) -> u32 {
    ((root >> SLOT_SHIFT) & SLOT_MASK) as u32
}

/// A bolt task's acks and failures over one input batch, sent by [`Ledger::deliver`].
///
/// Consecutive acks of one tree (the tuples of one multi-tuple spout message, the words of
/// one text) are XOR-ed into a held pair before they touch the map.
#[derive(Default)]
pub(crate) struct Outcomes {
    deltas: HashMap<u64, u64, IdBuildHasher>,
    /// The root acked last and the XOR of its acks not in `deltas` yet.
    last: Option<(u64, u64)>,
    per_spout: Vec<Vec<AckMsg>>,
    any: bool,
}

impl Outcomes {
    /// Records an ack: `delta` is the acked edge XOR the edges its tuple created.
    #[inline]
    pub(crate) fn ack(&mut self, root: u64, delta: u64) {
        match &mut self.last {
            Some((r, d)) if *r == root => *d ^= delta,
            _ => {
                self.spill();
                self.last = Some((root, delta));
            }
        }
    }

    /// Moves the held pair into the map.
    fn spill(&mut self) {
        if let Some((root, delta)) = self.last.take() {
            *self.deltas.entry(root).or_insert(0) ^= delta;
        }
    }

    fn push(&mut self, msg: AckMsg, root: u64) {
        let i = slot_of(root) as usize;
        if self.per_spout.len() <= i {
            self.per_spout.resize_with(i + 1, Vec::new);
        }
        self.per_spout[i].push(msg);
        self.any = true;
    }
}

/// The routes from bolt tasks to the spout tasks that keep the trees.
pub(crate) struct Ledger {
    spouts: Vec<mpsc::UnboundedSender<Vec<AckMsg>>>,
    epoch: Instant,
}

impl Ledger {
    pub(crate) fn new(spouts: Vec<mpsc::UnboundedSender<Vec<AckMsg>>>) -> Self {
        Ledger {
            spouts,
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the ledger was made (the clock of deadlines).
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// [`Self::now_ms`] at `at` (a clock read the caller already made).
    pub(crate) fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Fails the tree (delivered with the batch's other outcomes).
    pub(crate) fn fail(&self, root: u64, out: &mut Outcomes) {
        out.spill();
        out.deltas.remove(&root);
        out.push(AckMsg::Fail { root }, root);
    }

    /// Restarts the tree's timeout, at once (the caller is in the middle of long work).
    pub(crate) fn reset_timeout(&self, root: u64) {
        self.notify(slot_of(root), vec![AckMsg::Reset { root }]);
    }

    /// Sends the batch's outcomes to their spout tasks, one message per spout task.
    pub(crate) fn deliver(&self, out: &mut Outcomes) {
        out.spill();
        for (root, delta) in out.deltas.drain() {
            if delta != 0 {
                let i = slot_of(root) as usize;
                if out.per_spout.len() <= i {
                    out.per_spout.resize_with(i + 1, Vec::new);
                }
                out.per_spout[i].push(AckMsg::Ack { root, delta });
                out.any = true;
            }
        }
        if !out.any {
            return;
        }
        out.any = false;
        for (spout, msgs) in out.per_spout.iter_mut().enumerate() {
            if !msgs.is_empty() {
                let cap = msgs.len();
                self.notify(
                    spout as u32,
                    std::mem::replace(msgs, Vec::with_capacity(cap)),
                );
            }
        }
    }

    fn notify(&self, spout: u32, msgs: Vec<AckMsg>) {
        match self.spouts.get(spout as usize) {
            Some(tx) => {
                if tx.send(msgs).is_err() {
                    tracing::debug!(spout, "outcomes for a finished spout");
                }
            }
            None => tracing::error!(spout, "ack for unknown spout slot"),
        }
    }
}

/// One in-flight tree of a spout task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tree {
    pub(crate) msg_id: u64,
    /// When the tuple was due (complete latency is measured from it).
    pub(crate) at: Instant,
    xor: u64,
    deadline_ms: u64,
    /// The spout tuples of the message (1, or the lines of a read chunk).
    weight: u32,
}

/// How a tree ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Acked {
        msg_id: u64,
        at: Instant,
        weight: u32,
    },
    Failed {
        msg_id: u64,
        weight: u32,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The tree is done (acked or failed) already.
    Gone,
    /// Its timeout was restarted: the new deadline.
    Extended(u64),
    /// Timed out (and removed): the spout's message id and its spout tuples.
    Expired { msg_id: u64, weight: u32 },
}

/// A spout task's in-flight trees: root → XOR of its edges, deadline.
#[derive(Default)]
pub(crate) struct Trees {
    map: HashMap<u64, Tree, IdBuildHasher>,
    /// The spout tuples of the trees in flight (the sum of their weights).
    tuples: usize,
}

impl Trees {
    /// Starts tracking a tree of `weight` spout tuples whose first edges XOR to `xor`
    /// (non-zero).
    pub(crate) fn track(
        &mut self,
        root: u64,
        msg_id: u64,
        at: Instant,
        xor: u64,
        deadline_ms: u64,
        weight: u32,
    ) {
        let old = self.map.insert(
            root,
            Tree {
                msg_id,
                at,
                xor,
                deadline_ms,
                weight,
            },
        );
        self.tuples += weight as usize;
        if let Some(old) = old {
            self.tuples -= old.weight as usize;
        }
    }

    fn remove(&mut self, root: u64) -> Option<Tree> {
        let t = self.map.remove(&root)?;
        self.tuples -= t.weight as usize;
        Some(t)
    }

    /// Applies an outcome; `Some` when it ended the tree. Outcomes of trees already ended
    /// (a late ack after a failure, a fail after a timeout) are ignored.
    pub(crate) fn apply(&mut self, msg: AckMsg, now_ms: u64, timeout_ms: u64) -> Option<Settled> {
        match msg {
            AckMsg::Ack { root, delta } => {
                let t = self.map.get_mut(&root)?;
                t.xor ^= delta;
                if t.xor != 0 {
                    return None;
                }
                let t = self.remove(root)?;
                Some(Settled::Acked {
                    msg_id: t.msg_id,
                    at: t.at,
                    weight: t.weight,
                })
            }
            AckMsg::Fail { root } => {
                let t = self.remove(root)?;
                Some(Settled::Failed {
                    msg_id: t.msg_id,
                    weight: t.weight,
                })
            }
            AckMsg::Reset { root } => {
                if let Some(t) = self.map.get_mut(&root) {
                    t.deadline_ms = now_ms + timeout_ms;
                }
                None
            }
        }
    }

    /// Times the tree out if its deadline has passed.
    pub(crate) fn expire(&mut self, root: u64, now_ms: u64) -> Expiry {
        match self.map.get(&root) {
            None => Expiry::Gone,
            Some(t) if t.deadline_ms > now_ms => Expiry::Extended(t.deadline_ms),
            Some(t) => {
                let (msg_id, weight) = (t.msg_id, t.weight);
                self.remove(root);
                Expiry::Expired { msg_id, weight }
            }
        }
    }

    /// Spout tuples in flight (a tree of a multi-tuple message counts its tuples).
    pub(crate) fn tuples(&self) -> usize {
        self.tuples
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn contains(&self, root: u64) -> bool {
        self.map.contains_key(&root)
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.tuples = 0;
    }
}

/// In-flight trees of one spout task.
pub(crate) struct Tracker {
    /// The clock of the current poll round (refreshed every 32 calls): emits are stamped
    /// with it instead of reading the clock per tuple.
    pub(crate) now: Instant,
    pub(crate) now_ms: u64,
    /// The trees in flight: root → message id, due time, XOR of edges, deadline.
    pub(crate) pending: Trees,
    /// (deadline ms, root), in emit order.
    pub(crate) timeouts: VecDeque<(u64, u64)>,
    /// Outcomes known at emit time (acking off, or nothing subscribed): message id,
    /// acked, its spout tuples.
    pub(crate) immediate: Vec<(u64, bool, u32)>,
    /// Micro-batch mode: when each tuple of the batch being cut was due.
    pub(crate) origins: Option<crate::data::due::DueTimes>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            now: Instant::now(),
            now_ms: 0,
            pending: Trees::default(),
            timeouts: VecDeque::new(),
            immediate: Vec::new(),
            origins: None,
        }
    }
}

impl Tracker {
    pub(crate) fn tick(&mut self, ledger: Option<&Ledger>) {
        self.now = Instant::now();
        if let Some(l) = ledger {
            self.now_ms = l.now_ms();
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn track(
        &mut self,
        root: u64,
        msg_id: u64,
        at: Instant,
        xor: u64,
        deadline_ms: u64,
        weight: u32,
    ) {
        self.pending
            .track(root, msg_id, at, xor, deadline_ms, weight);
        self.timeouts.push_back((deadline_ms, root));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 0;

    fn ledger() -> (Ledger, Vec<mpsc::UnboundedReceiver<Vec<AckMsg>>>) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::unbounded_channel()).unzip();
        (Ledger::new(txs), rxs)
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn root_ids_name_their_spout_and_keep_random_bits() {
        for slot in [0u32, 1, 2, 65_535] {
            let r = root_id(u64::MAX, slot);
            assert_eq!(slot_of(r), slot);
            assert_eq!(r & 0xFFFF_FFFF, 0xFFFF_FFFF);
            assert_eq!(r >> 48, 0xFFFF);
        }
    }

    #[test]
    fn outcomes_go_to_the_spout_that_owns_the_root() {
        let (l, mut rxs) = ledger();
        let (a, b) = (root_id(0x1234_5678, 0), root_id(0x9abc_def0, 2));
        let mut out = Outcomes::default();
        out.ack(a, 5);
        out.ack(a, 3);
        out.ack(b, 7);
        out.ack(b, 7);
        l.fail(b, &mut out);
        l.deliver(&mut out);
        assert_eq!(
            rxs[0].try_recv().ok(),
            Some(vec![AckMsg::Ack { root: a, delta: 6 }])
        );
        assert!(rxs[1].try_recv().is_err());
        assert_eq!(rxs[2].try_recv().ok(), Some(vec![AckMsg::Fail { root: b }]));
        l.deliver(&mut out);
        assert!(
            rxs[0].try_recv().is_err(),
            "a second delivery sent the first again"
        );
    }

    #[test]
    fn tree_completes_when_last_edge_acked() {
        let mut trees = Trees::default();
        let at = now();
        trees.track(1, 42, at, 0xa, 1000, 1);
        let ack = |t: &mut Trees, d| t.apply(AckMsg::Ack { root: 1, delta: d }, T0, 10);
        assert_eq!(ack(&mut trees, 0xa ^ 0xb ^ 0xc), None);
        assert_eq!(ack(&mut trees, 0xb), None);
        assert_eq!(
            ack(&mut trees, 0xc),
            Some(Settled::Acked {
                msg_id: 42,
                at,
                weight: 1
            })
        );
        assert!(trees.is_empty());
        assert_eq!(ack(&mut trees, 0xc), None);
    }

    #[test]
    fn a_tree_fails_once() {
        let mut trees = Trees::default();
        trees.track(7, 9, now(), 3, 1000, 1);
        let fail = AckMsg::Fail { root: 7 };
        assert_eq!(
            trees.apply(fail, T0, 10),
            Some(Settled::Failed {
                msg_id: 9,
                weight: 1
            })
        );
        assert_eq!(trees.apply(fail, T0, 10), None);
        assert_eq!(trees.apply(AckMsg::Ack { root: 7, delta: 3 }, T0, 10), None);
    }

    #[test]
    fn expiry_respects_reset() {
        let mut trees = Trees::default();
        trees.track(9, 4, now(), 5, 10, 3);
        assert_eq!(trees.tuples(), 3);
        assert_eq!(trees.expire(9, 5), Expiry::Extended(10));
        trees.apply(AckMsg::Reset { root: 9 }, 8, 10);
        assert_eq!(trees.expire(9, 10), Expiry::Extended(18));
        assert_eq!(
            trees.expire(9, 18),
            Expiry::Expired {
                msg_id: 4,
                weight: 3
            }
        );
        assert_eq!(trees.tuples(), 0);
        assert_eq!(trees.expire(9, 19), Expiry::Gone);
        assert!(!trees.contains(9));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// A random tree: node i > 0 hangs under parent[i] < i; node 0 is the spout tuple.
        /// With the order of the acks, the bolt task (of 3) that acks each node, and
        /// whether that task delivers what it holds right after that ack.
        #[allow(clippy::type_complexity)]
        fn tree() -> impl Strategy<Value = (Vec<usize>, Vec<u64>, Vec<usize>, Vec<usize>, Vec<bool>)>
        {
            (1usize..40).prop_flat_map(|n| {
                let parents = (1..n).map(|i| 0..i).collect::<Vec<_>>();
                let ids = proptest::collection::vec(1u64.., n);
                let order = Just((1..n).collect::<Vec<usize>>()).prop_shuffle();
                // Which of 3 bolt tasks acks each node (each delivers its own XOR).
                let task = proptest::collection::vec(0usize..3, n);
                let deliver_after = proptest::collection::vec(any::<bool>(), n);
                (parents, ids, order, task, deliver_after)
            })
        }

        proptest! {
            /// Whatever the order of acks, and however they are grouped into deliveries,
            /// the tree completes exactly at the delivery that brings the last ack.
            #[test]
            fn completes_exactly_when_last_edge_acked(
                (parents, ids, order, task, deliver_after) in tree()
            ) {
                let (l, mut rxs) = ledger();
                let n = ids.len();
                let mut children_xor = vec![0u64; n];
                for i in 1..n {
                    children_xor[parents[i - 1]] ^= ids[i];
                }
                let initial = children_xor[0];
                prop_assume!(initial != 0);
                let root = root_id(0xfeed_beef_0000_0001, 1);
                let mut trees = Trees::default();
                trees.track(root, 5, now(), initial, u64::MAX, 1);
                let mut tasks: Vec<Outcomes> = (0..3).map(|_| Outcomes::default()).collect();
                // Acks each task holds, not yet delivered.
                let mut held = [0usize; 3];
                let mut acked = 0;
                // Delivery number → the delivery that must complete the tree, and the one
                // that did.
                let (mut delivery, mut last, mut settled) = (0usize, None, None);
                let mut deliver = |tasks: &mut [Outcomes], t: usize, acked, held: &mut [usize; 3]| {
                    l.deliver(&mut tasks[t]);
                    delivery += 1;
                    held[t] = 0;
                    if acked == order.len() && held.iter().sum::<usize>() == 0 && last.is_none() {
                        last = Some(delivery);
                    }
                    // The spout applies what came.
                    while let Ok(msgs) = rxs[1].try_recv() {
                        for m in msgs {
                            if let Some(s) = trees.apply(m, T0, 10) {
                                prop_assert!(settled.is_none(), "settled twice");
                                settled = Some((delivery, s));
                            }
                        }
                    }
                    Ok(())
                };
                for &i in &order {
                    let t = task[i];
                    tasks[t].ack(root, ids[i] ^ children_xor[i]);
                    held[t] += 1;
                    acked += 1;
                    if deliver_after[i] {
                        deliver(&mut tasks, t, acked, &mut held)?;
                    }
                }
                // Then every task delivers what it still holds.
                for t in 0..3 {
                    deliver(&mut tasks, t, acked, &mut held)?;
                }
                match settled {
                    Some((k, s)) => {
                        prop_assert_eq!(Some(k), last, "completed at the wrong delivery");
                        let acked = matches!(s, Settled::Acked { msg_id: 5, .. });
                        prop_assert!(acked, "settled as {:?}", s);
                    }
                    None => prop_assert!(order.is_empty()),
                }
            }
        }
    }
}
