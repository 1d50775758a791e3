//! The state store of micro-batch mode: one redb database per topology run directory.
//!
//! Why redb: it is an embedded, pure-Rust, ACID key-value store (copy-on-write B-trees,
//! checksummed pages, fsync on every commit), maintained, and a single file. An
//! append-only log of our own would need the same things written again (framing,
//! checksums, torn-write recovery, compaction); redb gives them with no C++ build.
//!
//! Tables:
//! - `meta`: `committed_txid` (the last batch whose state is durable) and `layout` (the
//!   components and their parallelism the state was written with);
//! - `batches`: txid → the batch record (spout metadata and batch time), written before a
//!   batch leaves its spouts and kept until a later batch commits;
//! - `state`: `component/task/name/key` → (txid, value as JSON): every value stores the
//!   txid of the batch that last wrote it.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
const STATE: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("state");

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("state store {path}: cannot create the directory: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state store {path}: {message}")]
    Invalid { path: String, message: String },
}

/// One value write of a commit: full key, txid, encoded value.
pub type Write = (String, u64, Vec<u8>);

pub struct Store {
    db: Database,
    path: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` (`dir/state.redb`).
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        let path = dir.join("state.redb");
        let shown = path.display().to_string();
        std::fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let db = Database::create(&path).map_err(|e| StateError::Store {
            path: shown.clone(),
            source: Box::new(e.into()),
        })?;
        Store::init(db, shown)
    }

    /// A store kept in memory: nothing survives the process.
    pub fn in_memory() -> Result<Store, StateError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StateError::Store {
                path: "(memory)".into(),
                source: Box::new(e.into()),
            })?;
        Store::init(db, "(memory)".into())
    }

    /// The path shown in errors and at start.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn init(db: Database, path: String) -> Result<Store, StateError> {
        let s = Store { db, path };
        let w = s.db.begin_write().map_err(|e| s.err(e))?;
        {
            w.open_table(META).map_err(|e| s.err(e))?;
            w.open_table(BATCHES).map_err(|e| s.err(e))?;
            w.open_table(STATE).map_err(|e| s.err(e))?;
        }
        w.commit().map_err(|e| s.err(e))?;
        Ok(s)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(META).map_err(|e| self.err(e))?;
        Ok(t.get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// The last committed txid (0: none yet).
    pub fn committed_txid(&self) -> Result<u64, StateError> {
        Ok(self
            .meta("committed_txid")?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Checks that the state was written by the same layout (components and parallelism),
    /// or records it on first use: state is partitioned by task.
    pub fn check_layout(&self, layout: &str) -> Result<(), StateError> {
        match self.meta("layout")? {
            Some(old) if old != layout.as_bytes() => Err(StateError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "written by another topology layout ({}); this run is ({layout}). \
                     State is partitioned by task: use a new --state-dir, or the same \
                     components and parallelism",
                    String::from_utf8_lossy(&old)
                ),
            }),
            Some(_) => Ok(()),
            None => {
                let w = self.db.begin_write().map_err(|e| self.err(e))?;
                {
                    let mut t = w.open_table(META).map_err(|e| self.err(e))?;
                    t.insert("layout", layout.as_bytes())
                        .map_err(|e| self.err(e))?;
                }
                w.commit().map_err(|e| self.err(e))
            }
        }
    }

    /// Every value under `prefix`: (key without the prefix, txid, encoded value).
    pub fn load_prefix(&self, prefix: &str) -> Result<Vec<Write>, StateError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(STATE).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some(rest) = k.value().strip_prefix(prefix) else {
                break;
            };
            let (txid, bytes) = v.value();
            out.push((rest.to_string(), txid, bytes.to_vec()));
        }
        Ok(out)
    }

    /// Records batch `txid` (durably) before it is processed.
    pub fn put_batch(&self, txid: u64, record: &[u8]) -> Result<(), StateError> {
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = w.open_table(BATCHES).map_err(|e| self.err(e))?;
            t.insert(txid, record).map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))
    }

    /// Batch records with a txid ≥ `from`, in txid order.
    pub fn batches_from(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(BATCHES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.range(from..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Commits batch `txid` atomically: its value writes, `committed_txid = txid`, and
    /// drops the records of earlier batches (the record of `txid` stays: a restart
    /// continues after it).
    pub fn commit(&self, txid: u64, writes: &[Write]) -> Result<(), StateError> {
        let committed = self.committed_txid()?;
        if txid <= committed {
            return Err(StateError::Invalid {
                path: self.path.clone(),
                message: format!("commit of batch {txid} after batch {committed}: out of order"),
            });
        }
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = w.open_table(STATE).map_err(|e| self.err(e))?;
            for (k, tx, v) in writes {
                t.insert(k.as_str(), (*tx, v.as_slice()))
                    .map_err(|e| self.err(e))?;
            }
            let mut m = w.open_table(META).map_err(|e| self.err(e))?;
            m.insert("committed_txid", txid.to_be_bytes().as_slice())
                .map_err(|e| self.err(e))?;
            let mut b = w.open_table(BATCHES).map_err(|e| self.err(e))?;
            b.retain_in(..txid, |_, _| false).map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))
    }
}

/// Opens the store of `dir`, or an in-memory one.
pub fn open(dir: Option<&PathBuf>) -> Result<Store, StateError> {
    match dir {
        Some(d) => Store::open(d),
        None => Store::in_memory(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_are_ordered() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|source| StateError::Dir {
            path: "tmp".into(),
            source,
        })?;
        {
            let s = Store::open(dir.path())?;
            assert_eq!(s.committed_txid()?, 0);
            s.put_batch(1, b"one")?;
            s.put_batch(2, b"two")?;
            s.commit(1, &[("c/0/n/a".into(), 1, b"3".to_vec())])?;
            assert!(s.commit(1, &[]).is_err(), "a txid commits once");
        }
        let s = Store::open(dir.path())?;
        assert_eq!(s.committed_txid()?, 1);
        assert_eq!(
            s.load_prefix("c/0/n/")?,
            vec![("a".to_string(), 1, b"3".to_vec())]
        );
        assert!(s.load_prefix("c/1/n/")?.is_empty());
        let b = s.batches_from(0)?;
        assert_eq!(b.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        s.commit(2, &[])?;
        assert_eq!(
            s.batches_from(0)?.len(),
            1,
            "only the last committed record stays"
        );
        Ok(())
    }

    #[test]
    fn layout_mismatch_is_a_clear_error() -> Result<(), StateError> {
        let s = Store::in_memory()?;
        s.check_layout("count:2")?;
        s.check_layout("count:2")?;
        let e = s.check_layout("count:4").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("count:2") && m.contains("count:4")));
        Ok(())
    }
}
