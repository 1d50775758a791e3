//! Transactional state of one task (micro-batch mode): maps whose values carry the txid
//! of the batch that wrote them. Writes of batch `t` stay pending until the runtime
//! commits `t` (in txid order, with every other task's writes of `t`, atomically); a
//! failed batch's writes are dropped. A write for a key already committed at txid ≥ `t`
//! is skipped: a replayed batch is applied once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use compact_str::CompactString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{StateError, Store, Write};
use crate::sync::lock;

/// What the runtime does with every state object of a task.
trait Transactional: Send {
    /// Encodes the writes of batch `txid` (and makes them the committed values).
    fn commit(&mut self, txid: u64, out: &mut Vec<Write>) -> Result<(), StateError>;
    /// Drops every pending write (the batches they belong to will be replayed).
    fn rollback(&mut self);
}

struct MapInner<V> {
    prefix: String,
    committed: HashMap<CompactString, (u64, V)>,
    pending: BTreeMap<u64, HashMap<CompactString, V>>,
    skipped: u64,
}

impl<V: Serialize + Send> Transactional for MapInner<V> {
    fn commit(&mut self, txid: u64, out: &mut Vec<Write>) -> Result<(), StateError> {
        let Some(writes) = self.pending.remove(&txid) else {
            return Ok(());
        };
        for (k, v) in writes {
            let bytes = serde_json::to_vec(&v).map_err(|e| StateError::Invalid {
                path: self.prefix.clone(),
                message: format!("cannot encode the value of `{k}`: {e}"),
            })?;
            out.push((format!("{}{k}", self.prefix), txid, bytes));
            self.committed.insert(k, (txid, v));
        }
        Ok(())
    }

    fn rollback(&mut self) {
        self.pending.clear();
    }
}

/// A transactional map from text keys to values (Trident's transactional map state).
pub struct TxMap<V> {
    inner: Arc<Mutex<MapInner<V>>>,
}

impl<V> Clone for TxMap<V> {
    fn clone(&self) -> Self {
        TxMap {
            inner: self.inner.clone(),
        }
    }
}

impl<V: Clone + Serialize + DeserializeOwned + Send + 'static> TxMap<V> {
    /// The newest value of `key`: from the latest pending batch, else committed.
    pub fn get(&self, key: &str) -> Option<V> {
        let g = lock(&self.inner);
        for writes in g.pending.values().rev() {
            if let Some(v) = writes.get(key) {
                return Some(v.clone());
            }
        }
        g.committed.get(key).map(|(_, v)| v.clone())
    }

    /// The txid that last committed `key`.
    pub fn committed_txid(&self, key: &str) -> Option<u64> {
        lock(&self.inner).committed.get(key).map(|(t, _)| *t)
    }

    /// Writes `key` in batch `txid`. Returns false (and writes nothing) when the key was
    /// already committed by batch `txid` or a later one: the batch is a replay.
    pub fn put(&self, txid: u64, key: impl Into<CompactString>, value: V) -> bool {
        let key = key.into();
        let mut g = lock(&self.inner);
        if g.committed.get(&key).is_some_and(|(t, _)| *t >= txid) {
            g.skipped += 1;
            return false;
        }
        g.pending.entry(txid).or_default().insert(key, value);
        true
    }

    /// Writes skipped because their batch was already committed.
    pub fn skipped(&self) -> u64 {
        lock(&self.inner).skipped
    }

    /// Committed keys and values (pending writes not included).
    pub fn committed(&self) -> Vec<(String, V)> {
        lock(&self.inner)
            .committed
            .iter()
            .map(|(k, (_, v))| (k.to_string(), v.clone()))
            .collect()
    }
}

/// A single transactional value (e.g. a ranking or a window).
pub struct TxValue<V> {
    map: TxMap<V>,
}

impl<V> Clone for TxValue<V> {
    fn clone(&self) -> Self {
        TxValue {
            map: self.map.clone(),
        }
    }
}

impl<V: Clone + Serialize + DeserializeOwned + Send + 'static> TxValue<V> {
    pub fn get(&self) -> Option<V> {
        self.map.get("")
    }

    pub fn put(&self, txid: u64, value: V) -> bool {
        self.map.put(txid, "", value)
    }
}

/// The state objects of one task, by name, and the store they load from.
pub struct TaskState {
    store: Arc<Store>,
    prefix: String,
    objects: Mutex<BTreeMap<String, Arc<Mutex<dyn Transactional>>>>,
    maps: Mutex<BTreeMap<String, Box<dyn std::any::Any + Send>>>,
}

impl std::fmt::Debug for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskState")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl TaskState {
    /// The state of task `task_index` of `component`.
    pub fn new(store: Arc<Store>, component: &str, task_index: usize) -> TaskState {
        TaskState {
            store,
            prefix: format!("{component}/{task_index}/"),
            objects: Mutex::new(BTreeMap::new()),
            maps: Mutex::new(BTreeMap::new()),
        }
    }

    /// The map `name` of this task, loaded from the store on first use. A bolt restarted
    /// after a failed batch gets the same map back, rolled back to its committed values.
    pub fn map<V: Clone + Serialize + DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
    ) -> Result<TxMap<V>, StateError> {
        let mut maps = lock(&self.maps);
        if let Some(m) = maps.get(name).and_then(|b| b.downcast_ref::<TxMap<V>>()) {
            return Ok(m.clone());
        }
        let prefix = format!("{}{name}/", self.prefix);
        let mut committed = HashMap::new();
        for (k, txid, bytes) in self.store.load_prefix(&prefix)? {
            let v: V = serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
                path: self.store.path().to_string(),
                message: format!("value of `{prefix}{k}` (batch {txid}) does not decode: {e}"),
            })?;
            committed.insert(CompactString::from(k), (txid, v));
        }
        let inner = Arc::new(Mutex::new(MapInner {
            prefix,
            committed,
            pending: BTreeMap::new(),
            skipped: 0,
        }));
        let m = TxMap {
            inner: inner.clone(),
        };
        lock(&self.objects).insert(name.to_string(), inner);
        maps.insert(name.to_string(), Box::new(m.clone()));
        Ok(m)
    }

    /// The single value `name` of this task.
    pub fn value<V: Clone + Serialize + DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
    ) -> Result<TxValue<V>, StateError> {
        Ok(TxValue {
            map: self.map(name)?,
        })
    }

    /// Encodes the writes of batch `txid` for the store's commit.
    pub(crate) fn commit(&self, txid: u64, out: &mut Vec<Write>) -> Result<(), StateError> {
        for o in lock(&self.objects).values() {
            lock(o).commit(txid, out)?;
        }
        Ok(())
    }

    /// Drops every pending write.
    pub(crate) fn rollback(&self) {
        for o in lock(&self.objects).values() {
            lock(o).rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_writes_commit_in_order_and_replays_are_skipped() -> Result<(), StateError> {
        let store = Arc::new(Store::in_memory()?);
        let ts = TaskState::new(store.clone(), "count", 0);
        let m: TxMap<u64> = ts.map("counts")?;
        assert!(m.put(1, "a", 1));
        assert!(m.put(2, "a", 3));
        assert_eq!(m.get("a"), Some(3), "reads see the newest pending write");
        let mut w = Vec::new();
        ts.commit(1, &mut w)?;
        store.commit(1, &w)?;
        assert_eq!(m.committed_txid("a"), Some(1));
        ts.rollback();
        assert_eq!(m.get("a"), Some(1), "batch 2 was dropped");
        assert!(
            !m.put(1, "a", 99),
            "batch 1 is committed: its replay is skipped"
        );
        assert_eq!(m.skipped(), 1);
        // A new TaskState over the same store loads the committed value.
        let again: TxMap<u64> = TaskState::new(store, "count", 0).map("counts")?;
        assert_eq!(again.get("a"), Some(1));
        Ok(())
    }

    #[test]
    fn the_same_name_gives_the_same_map() -> Result<(), StateError> {
        let ts = TaskState::new(Arc::new(Store::in_memory()?), "c", 1);
        let a: TxMap<u64> = ts.map("m")?;
        a.put(1, "k", 5);
        let b: TxMap<u64> = ts.map("m")?;
        assert_eq!(b.get("k"), Some(5));
        Ok(())
    }
}
