//! Event time: the windows a ranking bolt (`rank`, `total_rank`) has emitted that late
//! tuples may still update, by window end — each with its start, what it ranked and until
//! when it may be updated (`keep_until`). In micro-batch mode they are also transactional
//! state, stored at the end of each batch that changed them, so a replayed batch or a
//! restarted run updates the same tables.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::component::ComponentResult;
use crate::state::{TaskState, TxValue};

/// One fired window: its start (if known), what it ranked, until when it may be updated.
pub(crate) type Fired<V> = (Option<i64>, V, i64);

/// How the fired windows are stored: (end, window) pairs.
type Stored<V> = Vec<(i64, Fired<V>)>;

pub(crate) struct FiredWindows<V> {
    by_end: BTreeMap<i64, Fired<V>>,
    /// Micro-batch mode: the same as transactional state.
    state: Option<TxValue<Stored<V>>>,
    changed: bool,
}

impl<V> Default for FiredWindows<V> {
    fn default() -> Self {
        FiredWindows {
            by_end: BTreeMap::new(),
            state: None,
            changed: false,
        }
    }
}

impl<V: Clone + Serialize + DeserializeOwned + Send + 'static> FiredWindows<V> {
    /// Micro-batch mode: the fired windows as committed (a reset or a restart resumes
    /// from them).
    pub(crate) fn prepare(&mut self, state: Option<&TaskState>) -> ComponentResult {
        if let Some(s) = state {
            let state: TxValue<Stored<V>> = s.value("fired")?;
            self.by_end = state.get().unwrap_or_default().into_iter().collect();
            self.state = Some(state);
        }
        Ok(())
    }

    /// Micro-batch mode: stores the fired windows if batch `txid` changed them.
    pub(crate) fn store(&mut self, txid: u64) {
        if let Some(s) = &self.state
            && std::mem::take(&mut self.changed)
        {
            s.put(
                txid,
                self.by_end.iter().map(|(e, f)| (*e, f.clone())).collect(),
            );
        }
    }

    pub(crate) fn insert(&mut self, end: i64, fired: Fired<V>) {
        self.by_end.insert(end, fired);
        self.changed = true;
    }

    pub(crate) fn contains(&self, end: i64) -> bool {
        self.by_end.contains_key(&end)
    }

    /// The window that ended at `end`, to update.
    pub(crate) fn get_mut(&mut self, end: i64) -> Option<&mut Fired<V>> {
        let f = self.by_end.get_mut(&end);
        self.changed |= f.is_some();
        f
    }

    /// Forgets the windows late tuples can no longer update at `watermark`.
    pub(crate) fn expire(&mut self, watermark: i64) {
        let before = self.by_end.len();
        self.by_end.retain(|_, (_, _, keep)| *keep > watermark);
        self.changed |= self.by_end.len() != before;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::store::Store;

    #[test]
    fn fired_windows_are_stored_only_when_changed_and_come_back_after_a_reset() {
        let store = Arc::new(Store::in_memory().unwrap());
        let st = TaskState::new(store.clone(), "rank", 0);
        let mut f: FiredWindows<Vec<u32>> = FiredWindows::default();
        f.prepare(Some(&st)).unwrap();
        f.insert(10, (Some(0), vec![1], 20));
        f.insert(20, (Some(10), vec![2], 30));
        f.store(1);
        let mut writes = Vec::new();
        st.commit(1, &mut writes).unwrap();
        assert_eq!(writes.len(), 1);
        store.commit(1, &writes).unwrap();
        // Nothing changed: nothing written.
        f.store(2);
        writes.clear();
        st.commit(2, &mut writes).unwrap();
        assert!(writes.is_empty());
        // An update and an expiry, then the batch fails: the committed windows come back.
        if let Some((_, v, _)) = f.get_mut(10) {
            v.push(9);
        }
        f.expire(25);
        assert!(!f.contains(10) && f.contains(20));
        f.store(3);
        st.rollback();
        let mut again: FiredWindows<Vec<u32>> = FiredWindows::default();
        again.prepare(Some(&st)).unwrap();
        assert_eq!(again.get_mut(10).map(|f| f.1.clone()), Some(vec![1]));
        assert!(again.contains(20));
    }
}
