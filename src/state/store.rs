//! The state store of micro-batch mode: one redb database per topology run directory.
//!
//! Why redb: it is an embedded, pure-Rust, ACID key-value store (copy-on-write B-trees,
//! checksummed pages, fsync on every commit), maintained, and a single file. An
//! append-only log of our own would need the same things written again (framing,
//! checksums, torn-write recovery, compaction); redb gives them with no C++ build.
//!
//! Tables:
//! - `meta`: `committed_txid` (the last batch whose state is durable), `layout` (the
//!   components and their parallelism the state was written with) and `options` (the
//!   options each component's state depends on, see [`super::options`]);
//! - `batches`: txid → the batch record (spout metadata and batch time), written before a
//!   batch leaves its spouts and kept until a later batch commits;
//! - `state`: `component/task/name/key` → (txid, value as JSON): every value stores the
//!   txid of the batch that last wrote it.
//!
//! A new store is made under a temporary name and renamed into place once it is complete,
//! so `state.redb` is never empty: an empty or cut file is damage (its committed batches
//! are lost) and opening it is an error, never a fresh start.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::options::{TopologyOptions, changes};

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
    #[error(
        "state store {path} cannot be read: {detail}. The state committed in it is lost: \
         restore the file from a backup, or start afresh with a new (or emptied) --state-dir"
    )]
    Damaged { path: String, detail: String },
    #[error(
        "state store {path}: cannot write, no space left ({detail}). Free space in {dir} \
         (or raise the file-size limit or quota there), then run again: the next run \
         resumes after the last committed batch"
    )]
    NoSpace {
        path: String,
        dir: String,
        detail: String,
    },
    #[error(
        "state store {path} was written with other options: {changes}. The stored state \
         only fits the options it was written with: run with those to resume, or start \
         afresh with a new (or emptied) --state-dir"
    )]
    OptionsChanged { path: String, changes: String },
}

/// The store's file in its directory.
const FILE: &str = "state.redb";

/// Makes a new, empty store at `path`: written under a temporary name, then renamed, so a
/// crash never leaves a partial `state.redb` behind.
fn create(dir: &Path, path: &Path) -> Result<(), StateError> {
    let tmp = dir.join(format!("{FILE}.new"));
    let shown = tmp.display().to_string();
    let io = |source| StateError::Dir {
        path: shown.clone(),
        source,
    };
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let db = Database::create(&tmp).map_err(|e| classify(&shown, e.into()))?;
    drop(Store::init(db, shown.clone(), true)?);
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Whether `e` says the file is not a sound store (as opposed to, e.g., a store open in
/// another process or a full disk).
fn is_damage(e: &redb::Error) -> bool {
    match e {
        // A file format version squall never wrote: the header was overwritten.
        redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => true,
        redb::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// Whether `e` says the file system is full, or the file reached a size limit or quota.
fn is_no_space(e: &redb::Error) -> bool {
    match e {
        redb::Error::Io(io) => matches!(
            io.raw_os_error(),
            Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT)
        ),
        _ => false,
    }
}

/// The error for a failure of the store at `path`: damage and a full disk are told apart
/// from the rest, as they need the user to act.
fn classify(path: &str, e: redb::Error) -> StateError {
    if is_damage(&e) {
        StateError::Damaged {
            path: path.to_string(),
            detail: e.to_string(),
        }
    } else if is_no_space(&e) {
        let dir = Path::new(path)
            .parent()
            .map_or_else(|| ".".to_string(), |d| d.display().to_string());
        StateError::NoSpace {
            path: path.to_string(),
            dir: if dir.is_empty() { ".".into() } else { dir },
            detail: e.to_string(),
        }
    } else {
        StateError::Store {
            path: path.to_string(),
            source: Box::new(e),
        }
    }
}

/// The meta key whose presence says every stored value carries a checksum (every store
/// made since; older stores are read without one).
const CHECKSUMS: &str = "checksums";

/// The checksum of a value stored under `key` (which names its table).
fn checksum(key: &[u8], value: &[u8]) -> [u8; 8] {
    let mut buf = Vec::with_capacity(key.len() + value.len() + 8);
    buf.extend_from_slice(&(key.len() as u64).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    xxhash_rust::xxh3::xxh3_64(&buf).to_le_bytes()
}

/// `value` followed by its checksum: redb checks its own structures, not the bytes of a
/// value, so a flipped bit in a count would otherwise read back as another count.
fn seal(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    out.extend_from_slice(value);
    out.extend_from_slice(&checksum(key, value));
    out
}

fn meta_key(key: &str) -> Vec<u8> {
    [b"meta/".as_slice(), key.as_bytes()].concat()
}

fn batch_key(txid: u64) -> Vec<u8> {
    [b"batch/".as_slice(), &txid.to_be_bytes()].concat()
}

fn state_key(key: &str, txid: u64) -> Vec<u8> {
    [b"state/".as_slice(), key.as_bytes(), &txid.to_be_bytes()].concat()
}

/// Opens the database at `path`, verified: redb's plain open trusts the file (it reads
/// the recorded allocator state and the system tree without checking them, and panics on
/// some damaged pages), so the open runs redb's integrity check instead, as
/// `Database::check_integrity` does: every page of the committed trees is checked against
/// its checksum before anything is read from it, and the allocator state is rebuilt from
/// them. A latest commit that does not verify is rolled back to the one before (every
/// commit is durable, so that is a consistent state); a file that cannot be repaired is
/// `Corrupted`.
fn open_verified(path: &Path) -> Result<Database, redb::DatabaseError> {
    let rolled_back = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = rolled_back.clone();
    let db = Database::builder()
        .set_check_integrity_on_open(true)
        // The repair reports its progress after each of its scans: 0.3, after the
        // first, only when the latest commit did not verify and was rolled back.
        .set_repair_callback(move |session| {
            let p = session.progress();
            if p > 0.0 && p < 0.6 {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .open(path)?;
    if rolled_back.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "state store {}: a commit that did not verify was rolled back (the file was \
             damaged); the run resumes from the last sound commit",
            path.display()
        );
    }
    Ok(db)
}

/// A redb handle (a transaction, a table) that is forgotten instead of dropped while a
/// panic unwinds. redb's destructors lock mutexes that a panic inside redb may have
/// poisoned (a `Table` closing itself locks its transaction's tables), and a destructor
/// that panics during unwinding aborts the process, past any `catch_unwind`. Forgetting
/// leaks the handle once: after a panic the store is damaged and not used again.
struct Held<T>(std::mem::ManuallyDrop<T>);

impl<T> Held<T> {
    fn new(inner: T) -> Self {
        Held(std::mem::ManuallyDrop::new(inner))
    }

    fn into_inner(self) -> T {
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the inner value is taken once.
        unsafe { std::mem::ManuallyDrop::take(&mut this.0) }
    }
}

impl<T> std::ops::Deref for Held<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Held<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: dropped once, here; `self.0` is not used after.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.0) }
        }
    }
}

/// One value write of a commit: full key, txid, encoded value.
pub type Write = (String, u64, Vec<u8>);

pub struct Store {
    /// Always there but while the store is dropped (see `Drop`).
    db: Option<Database>,
    path: String,
    /// Values carry a checksum ([`seal`]).
    checksums: bool,
    /// Set when redb panicked on damaged data: what it said. The store is not used again.
    damaged: std::sync::OnceLock<String>,
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store in `dir` (`dir/state.redb`), or creates it when there is none. An
    /// existing file that is empty, cut or not a store is an error.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        let dir_err = |source| StateError::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let damaged = |detail: String| StateError::Damaged {
            path: shown.clone(),
            detail,
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == 0 => {
                return Err(damaged(
                    "the file is empty (0 bytes), and squall never leaves it empty: it was cut or overwritten".into(),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, &path)?,
            Err(source) => {
                return Err(StateError::Dir {
                    path: shown.clone(),
                    source,
                });
            }
        }
        // Damage (a cut or overwritten file) and a full disk are told apart from other
        // failures (a store open in another process) by `classify`.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = open_verified(&path).map_err(|e| classify(&shown, e.into()))?;
            let s = Store::init(db, shown.clone(), false)?;
            // Read what a run needs now: the meta values and the batch records.
            s.committed_txid()
                .and_then(|_| s.meta("layout"))
                .and_then(|_| s.meta("options"))
                .and_then(|_| s.batches_from(0))?;
            Ok(s)
        }));
        opened.unwrap_or_else(|p| {
            Err(damaged(format!(
                "its structure does not hold together (reading it failed: {})",
                panic_text(&*p)
            )))
        })
    }

    /// A store kept in memory: nothing survives the process.
    pub fn in_memory() -> Result<Store, StateError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StateError::Store {
                path: "(memory)".into(),
                source: Box::new(e.into()),
            })?;
        Store::init(db, "(memory)".into(), true)
    }

    /// The path shown in errors and at start.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        classify(&self.path, e.into())
    }

    fn db(&self) -> Result<&Database, StateError> {
        self.db.as_ref().ok_or_else(|| StateError::Invalid {
            path: self.path.clone(),
            message: "used while closing".into(),
        })
    }

    /// Runs `f` against the database. redb panics on some damaged pages (an index out of
    /// its page, a key that is not UTF-8) instead of returning an error: such a panic is
    /// [`StateError::Damaged`], and the store is not touched again.
    fn guard<T>(&self, f: impl FnOnce() -> Result<T, StateError>) -> Result<T, StateError> {
        let damaged = |detail: &String| StateError::Damaged {
            path: self.path.clone(),
            detail: format!("the file is damaged (reading it failed: {detail})"),
        };
        if let Some(d) = self.damaged.get() {
            return Err(damaged(d));
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let d = self.damaged.get_or_init(|| panic_text(&*p));
            Err(damaged(d))
        })
    }

    /// Opens the tables of `db`; a `fresh` store is marked as checksumming its values.
    fn init(db: Database, path: String, fresh: bool) -> Result<Store, StateError> {
        let mut s = Store {
            db: Some(db),
            path,
            checksums: fresh,
            damaged: std::sync::OnceLock::new(),
        };
        let w = Held::new(s.db()?.begin_write().map_err(|e| s.err(e))?);
        {
            let mut m = Held::new(w.open_table(META).map_err(|e| s.err(e))?);
            if fresh {
                m.insert(CHECKSUMS, seal(&meta_key(CHECKSUMS), b"xxh3").as_slice())
                    .map_err(|e| s.err(e))?;
            }
            Held::new(w.open_table(BATCHES).map_err(|e| s.err(e))?);
            Held::new(w.open_table(STATE).map_err(|e| s.err(e))?);
        }
        w.into_inner().commit().map_err(|e| s.err(e))?;
        if !fresh {
            let r = Held::new(s.db()?.begin_read().map_err(|e| s.err(e))?);
            let t = Held::new(r.open_table(META).map_err(|e| s.err(e))?);
            s.checksums = t.get(CHECKSUMS).map_err(|e| s.err(e))?.is_some();
            drop(t);
            s.meta(CHECKSUMS)?;
        }
        Ok(s)
    }

    /// `stored` without its checksum, once checked against `key`.
    fn unseal(&self, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, StateError> {
        if !self.checksums {
            return Ok(stored.to_vec());
        }
        let damaged = || StateError::Damaged {
            path: self.path.clone(),
            detail: format!(
                "the value stored under `{}` does not match its checksum",
                String::from_utf8_lossy(key).escape_debug()
            ),
        };
        let split = stored.len().checked_sub(8).ok_or_else(damaged)?;
        let (value, sum) = stored.split_at(split);
        if sum != checksum(key, value) {
            return Err(damaged());
        }
        Ok(value.to_vec())
    }

    /// `value` as stored under `key`: with its checksum if the store keeps them.
    fn sealed(&self, key: &[u8], value: &[u8]) -> Vec<u8> {
        if self.checksums {
            seal(key, value)
        } else {
            value.to_vec()
        }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.guard(|| {
            let r = Held::new(self.db()?.begin_read().map_err(|e| self.err(e))?);
            let t = Held::new(r.open_table(META).map_err(|e| self.err(e))?);
            let stored = t.get(key).map_err(|e| self.err(e))?;
            stored
                .map(|v| self.unseal(&meta_key(key), v.value()))
                .transpose()
        })
    }

    /// The last committed txid (0: none yet).
    pub fn committed_txid(&self) -> Result<u64, StateError> {
        match self.meta("committed_txid")? {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StateError::Damaged {
                    path: self.path.clone(),
                    detail: format!("the committed txid is {} bytes long, not 8", v.len()),
                }),
        }
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
            None => self.guard(|| {
                let w = Held::new(self.db()?.begin_write().map_err(|e| self.err(e))?);
                {
                    let mut t = Held::new(w.open_table(META).map_err(|e| self.err(e))?);
                    let v = self.sealed(&meta_key("layout"), layout.as_bytes());
                    t.insert("layout", v.as_slice()).map_err(|e| self.err(e))?;
                }
                w.into_inner().commit().map_err(|e| self.err(e))
            }),
        }
    }

    /// The store holds nothing a run would resume from: no committed batch, no batch
    /// record.
    fn holds_nothing(&self) -> Result<bool, StateError> {
        Ok(self.committed_txid()? == 0 && self.batches_from(0)?.is_empty())
    }

    /// Checks that every component's state options ([`super::options`]) are those the
    /// stored state was written with, naming each that differs with both values; records
    /// them when the store holds nothing yet.
    pub fn check_options(&self, options: &TopologyOptions) -> Result<(), StateError> {
        if let Some(old) = self.meta("options")?
            && !self.holds_nothing()?
        {
            let stored: TopologyOptions =
                serde_json::from_slice(&old).map_err(|e| StateError::Damaged {
                    path: self.path.clone(),
                    detail: format!("the stored component options do not decode: {e}"),
                })?;
            let changed = changes(&stored, options);
            if changed.is_empty() {
                return Ok(());
            }
            return Err(StateError::OptionsChanged {
                path: self.path.clone(),
                changes: changed.join("; "),
            });
        }
        let bytes = serde_json::to_vec(options).map_err(|e| StateError::Invalid {
            path: self.path.clone(),
            message: format!("cannot encode the component options: {e}"),
        })?;
        self.guard(|| {
            let w = Held::new(self.db()?.begin_write().map_err(|e| self.err(e))?);
            {
                let mut t = Held::new(w.open_table(META).map_err(|e| self.err(e))?);
                let v = self.sealed(&meta_key("options"), &bytes);
                t.insert("options", v.as_slice()).map_err(|e| self.err(e))?;
            }
            w.into_inner().commit().map_err(|e| self.err(e))
        })
    }

    /// Every value under `prefix`: (key without the prefix, txid, encoded value).
    pub fn load_prefix(&self, prefix: &str) -> Result<Vec<Write>, StateError> {
        self.guard(|| {
            let r = Held::new(self.db()?.begin_read().map_err(|e| self.err(e))?);
            let t = Held::new(r.open_table(STATE).map_err(|e| self.err(e))?);
            let mut out = Vec::new();
            for item in t.range(prefix..).map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let Some(rest) = k.value().strip_prefix(prefix) else {
                    break;
                };
                let (txid, bytes) = v.value();
                let value = self.unseal(&state_key(k.value(), txid), bytes)?;
                out.push((rest.to_string(), txid, value));
            }
            Ok(out)
        })
    }

    /// Records batch `txid` (durably) before it is processed.
    pub fn put_batch(&self, txid: u64, record: &[u8]) -> Result<(), StateError> {
        self.guard(|| {
            let w = Held::new(self.db()?.begin_write().map_err(|e| self.err(e))?);
            {
                let mut t = Held::new(w.open_table(BATCHES).map_err(|e| self.err(e))?);
                let v = self.sealed(&batch_key(txid), record);
                t.insert(txid, v.as_slice()).map_err(|e| self.err(e))?;
            }
            w.into_inner().commit().map_err(|e| self.err(e))
        })
    }

    /// Batch records with a txid ≥ `from`, in txid order.
    pub fn batches_from(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
        self.guard(|| {
            let r = Held::new(self.db()?.begin_read().map_err(|e| self.err(e))?);
            let t = Held::new(r.open_table(BATCHES).map_err(|e| self.err(e))?);
            let mut out = Vec::new();
            for item in t.range(from..).map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let txid = k.value();
                out.push((txid, self.unseal(&batch_key(txid), v.value())?));
            }
            Ok(out)
        })
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
        self.guard(|| {
            let w = Held::new(self.db()?.begin_write().map_err(|e| self.err(e))?);
            {
                let mut t = Held::new(w.open_table(STATE).map_err(|e| self.err(e))?);
                for (k, tx, v) in writes {
                    let v = self.sealed(&state_key(k, *tx), v);
                    t.insert(k.as_str(), (*tx, v.as_slice()))
                        .map_err(|e| self.err(e))?;
                }
                let mut m = Held::new(w.open_table(META).map_err(|e| self.err(e))?);
                let v = self.sealed(&meta_key("committed_txid"), &txid.to_be_bytes());
                m.insert("committed_txid", v.as_slice())
                    .map_err(|e| self.err(e))?;
                let mut b = Held::new(w.open_table(BATCHES).map_err(|e| self.err(e))?);
                b.retain_in(..txid, |_, _| false).map_err(|e| self.err(e))?;
            }
            w.into_inner().commit().map_err(|e| self.err(e))
        })
    }
}

impl Drop for Store {
    /// A store redb panicked on is not closed: closing writes to the file (the allocator
    /// state) and can panic again; its handle is forgotten, the file left as it is. Closing
    /// any other store can still panic in redb on damage found late: the panic is caught.
    fn drop(&mut self) {
        if self.damaged.get().is_some() {
            std::mem::forget(self.db.take());
        } else if let Some(db) = self.db.take()
            && let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(db)))
        {
            tracing::warn!(path = %self.path, "closing the state store failed: {}", panic_text(&*p));
        }
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
    fn an_empty_or_cut_store_is_an_error_not_a_fresh_start() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|source| StateError::Dir {
            path: "tmp".into(),
            source,
        })?;
        {
            let s = Store::open(dir.path())?;
            for t in 1..=20u64 {
                s.put_batch(t, &[7; 1000])?;
                s.commit(t, &[(format!("c/0/n/{t}"), t, vec![1; 2000])])?;
            }
        }
        let file = dir.path().join(FILE);
        let bytes = std::fs::read(&file).map_err(|source| StateError::Dir {
            path: "read".into(),
            source,
        })?;
        for cut in [0, 100, 4096, bytes.len() / 2] {
            std::fs::write(&file, &bytes[..cut]).map_err(|source| StateError::Dir {
                path: "write".into(),
                source,
            })?;
            match Store::open(dir.path()) {
                Err(StateError::Damaged { .. }) => {}
                other => panic!("a store cut to {cut} bytes opened as {other:?}"),
            }
        }
        std::fs::write(&file, &bytes).map_err(|source| StateError::Dir {
            path: "write".into(),
            source,
        })?;
        assert_eq!(Store::open(dir.path())?.committed_txid()?, 20);
        Ok(())
    }

    /// Everything a run reads from a store: its committed txid, batch records and values.
    type Contents = (u64, Vec<(u64, Vec<u8>)>, Vec<Write>);

    fn read_all(dir: &Path) -> Result<Contents, StateError> {
        let s = Store::open(dir)?;
        Ok((s.committed_txid()?, s.batches_from(0)?, s.load_prefix("")?))
    }

    /// A bit flipped or the file cut anywhere: opening and reading the store either gives
    /// back exactly what was committed (the damage hit unused space) or fails with an
    /// error that says what to do — never a panic, never other data.
    #[test]
    fn flipped_bits_and_cuts_anywhere_are_an_error_or_harmless_never_a_panic()
    -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|source| StateError::Dir {
            path: "tmp".into(),
            source,
        })?;
        {
            let s = Store::open(dir.path())?;
            s.check_layout("count:2")?;
            for t in 1..=30u64 {
                s.put_batch(t, format!("{{\"batch\":{t}}}").as_bytes())?;
                let writes = (0..20)
                    .map(|k| {
                        (
                            format!("c/{}/n/k{k}", k % 2),
                            t,
                            format!("{}", t * k).into_bytes(),
                        )
                    })
                    .collect::<Vec<_>>();
                s.commit(t, &writes)?;
            }
        }
        let truth = read_all(dir.path())?;
        let file = dir.path().join(FILE);
        let io = |source| StateError::Dir {
            path: "test file".into(),
            source,
        };
        let bytes = std::fs::read(&file).map_err(io)?;
        let len = bytes.len();
        // Every region of the file: the header, then evenly spread positions.
        let mut positions: Vec<usize> = vec![0, 1, 7, 8, 9, 16, 31, 32, 33, 64, 100, 128, 255];
        positions.extend((0..96).map(|i| i * len / 96 + (i * 37) % 61));
        positions.retain(|p| *p < len);
        let (mut harmless, mut refused) = (0, 0);
        let mut wrong = Vec::new();
        let mut check = |what: String, damaged: &[u8]| -> Result<(), StateError> {
            std::fs::write(&file, damaged).map_err(io)?;
            let path = dir.path().to_path_buf();
            match std::panic::catch_unwind(move || read_all(&path)) {
                Err(_) => wrong.push(format!("{what}: reading the store panicked")),
                Ok(Ok(c)) if c == truth => harmless += 1,
                Ok(Ok(_)) => wrong.push(format!("{what}: the store opened with other contents")),
                Ok(Err(e)) => {
                    let m = e.to_string();
                    if m.contains("--state-dir") || m.contains("run again") {
                        refused += 1;
                    } else {
                        wrong.push(format!("{what}: the error does not say what to do: {m}"));
                    }
                }
            }
            Ok(())
        };
        for &p in &positions {
            for bit in [0u8, 5] {
                let mut damaged = bytes.clone();
                damaged[p] ^= 1 << bit;
                check(format!("bit {bit} of byte {p} of {len} flipped"), &damaged)?;
            }
        }
        for cut in [1, 7, 64, 511, 4096, len / 3, len / 2, len - 4096, len - 1] {
            check(format!("cut to {cut} of {len} bytes"), &bytes[..cut])?;
        }
        assert!(
            wrong.is_empty(),
            "{} cases:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        std::fs::write(&file, &bytes).map_err(io)?;
        assert!(
            read_all(dir.path())? == truth,
            "the undamaged file reads back"
        );
        assert!(refused > 0, "no damage was noticed ({harmless} harmless)");
        Ok(())
    }

    /// A store written before values carried checksums is read as it was written.
    #[test]
    fn a_store_without_value_checksums_still_reads() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|source| StateError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let file = dir.path().join(FILE);
        {
            let db = Database::create(&file).map_err(|e| classify("old", e.into()))?;
            let old = Store {
                db: Some(db),
                path: "old".into(),
                checksums: false,
                damaged: std::sync::OnceLock::new(),
            };
            let w = old.db()?.begin_write().map_err(|e| old.err(e))?;
            {
                w.open_table(META).map_err(|e| old.err(e))?;
                w.open_table(BATCHES).map_err(|e| old.err(e))?;
                w.open_table(STATE).map_err(|e| old.err(e))?;
            }
            w.commit().map_err(|e| old.err(e))?;
            old.put_batch(1, b"{}")?;
            old.commit(1, &[("c/0/n/a".into(), 1, b"3".to_vec())])?;
        }
        let s = Store::open(dir.path())?;
        assert!(!s.checksums);
        assert_eq!(s.committed_txid()?, 1);
        assert_eq!(
            s.load_prefix("c/0/n/")?,
            vec![("a".into(), 1, b"3".to_vec())]
        );
        s.put_batch(2, b"{}")?;
        s.commit(2, &[("c/0/n/a".into(), 2, b"4".to_vec())])?;
        drop(s);
        let s = Store::open(dir.path())?;
        assert_eq!(s.committed_txid()?, 2);
        assert_eq!(s.batches_from(0)?, vec![(2, b"{}".to_vec())]);
        Ok(())
    }

    #[test]
    fn changed_options_are_refused_once_the_store_holds_a_batch() -> Result<(), StateError> {
        use crate::state::options::TopologyOptions;
        let opts = |window: &str| -> TopologyOptions {
            let mut o = super::super::StateOptions::new();
            o.insert("window".into(), window.into());
            TopologyOptions::from([("counts".to_string(), o)])
        };
        let s = Store::in_memory()?;
        s.check_options(&opts("1m"))?;
        // Nothing stored yet: other options simply replace the recorded ones.
        s.check_options(&opts("2s"))?;
        s.put_batch(1, b"r")?;
        s.commit(1, &[])?;
        s.check_options(&opts("2s"))?;
        match s.check_options(&opts("1m")) {
            Err(e @ StateError::OptionsChanged { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains("`counts`") && m.contains("`window`") && m.contains("was 2s"),
                    "{m}"
                );
                assert!(m.contains("is 1m") && m.contains("--state-dir"), "{m}");
            }
            other => panic!("changed options gave {other:?}"),
        }
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

    /// A store of 30 committed batches, as a file's bytes.
    fn a_real_state_file() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        {
            let s = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
            s.check_layout("count:2").unwrap_or_else(|e| panic!("{e}"));
            for t in 1..=30u64 {
                s.put_batch(t, format!("{{\"batch\":{t}}}").as_bytes())
                    .unwrap_or_else(|e| panic!("{e}"));
                let writes: Vec<Write> = (0..20)
                    .map(|k| {
                        let key = format!("count/{}/counts/word{k}", k % 2);
                        (key, t, t.to_string().into_bytes())
                    })
                    .collect();
                s.commit(t, &writes).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        std::fs::read(dir.path().join(FILE)).unwrap_or_else(|e| panic!("read: {e}"))
    }

    /// Opens a store of `bytes` and uses it as a run would: `Err` is the first error.
    fn open_and_use(bytes: &[u8]) -> Result<(), StateError> {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::write(d.path().join(FILE), bytes).unwrap_or_else(|e| panic!("write: {e}"));
        let s = Store::open(d.path())?;
        s.committed_txid()?;
        s.batches_from(0)?;
        s.load_prefix("")?;
        s.load_prefix("count/1/counts/")?;
        s.check_layout("count:2")?;
        let t = s.committed_txid()?;
        s.put_batch(t + 1, b"{}")?;
        s.commit(
            t + 1,
            &[("count/0/counts/new".into(), t + 1, b"1".to_vec())],
        )
    }

    /// redb panics on some damaged pages (an index past its page, a key that is not
    /// UTF-8) where it has no error to return: a state file with one bit flipped in its
    /// pages gave a panic in the run instead of the "restore or start afresh" error. (The
    /// check at open now finds most such damage before any read; what it misses is
    /// caught by the guard around every use.)
    #[test]
    fn a_flipped_bit_in_the_state_file_is_a_damaged_store_not_a_panic() {
        let good = a_real_state_file();
        let mut caught = 0;
        for at in (0..good.len().min(64 * 1024)).step_by(131) {
            if caught >= 2 {
                break; // Enough to show the damage is caught (each open syncs to disk).
            }
            let mut bytes = good.clone();
            bytes[at] ^= 1;
            match std::panic::catch_unwind(|| open_and_use(&bytes)) {
                Err(_) => panic!("a bit flipped at byte {at} panicked"),
                Ok(Err(StateError::Damaged { .. })) => caught += 1,
                Ok(_) => {}
            }
        }
        assert!(caught > 0, "no flip was found: the test tests nothing");
    }

    /// Damaged state files kept in `tests/fuzz-corpus/state/` (files that made redb panic
    /// when it opened them unverified): each opens and works, or is refused as damaged
    /// by the verified open, without redb panicking on it.
    #[test]
    fn fuzz_corpus_state_files_are_an_error_or_harmless() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/state");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap_or_else(|e| panic!("{e}")).path())
            .filter(|p| p.extension().is_some_and(|e| e == "redb"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no .redb file", dir.display());
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{e}"));
            match std::panic::catch_unwind(|| open_and_use(&bytes)) {
                Err(_) => panic!("{}: a panic", f.display()),
                // The guard's error: redb panicked on the file (and the panic was caught).
                Ok(Err(StateError::Damaged { detail, .. }))
                    if detail.contains("reading it failed") =>
                {
                    panic!("{}: redb panicked: {detail}", f.display())
                }
                Ok(Ok(())) | Ok(Err(StateError::Damaged { .. })) => {}
                Ok(Err(e)) => panic!("{}: not refused as damaged: {e}", f.display()),
            }
        }
    }

    /// Fuzz property (see `crate::fuzz_support`): a real state file cut, bit-flipped or
    /// overwritten anywhere either opens (and then reads and commits as a store) or
    /// gives a typed error, never a panic, never an abort. Random cases each run (a seed
    /// from `PROPTEST_RNG_SEED` when set); `SQUALL_STATE_FUZZ_DUMP=FILE` writes each case
    /// to FILE before it is tried, so that a case that kills the process is left behind.
    #[test]
    fn fuzz_damaged_state_files_give_an_error_never_a_panic() {
        use crate::fuzz_support::{byte_mutation, config, mutate_bytes};
        use proptest::prelude::*;
        use proptest::test_runner::TestRunner;

        let good = a_real_state_file();
        let mut runner = TestRunner::new(proptest::test_runner::Config {
            source_file: Some(file!()),
            ..config(32)
        });
        let strategy = (
            prop::collection::vec(byte_mutation(), 1..6),
            // Flips concentrated in the first pages (headers, roots) too.
            prop::collection::vec((0usize..8192, 0u8..8), 0..4),
        );
        let result = runner.run(&strategy, |(muts, flips)| {
            let mut bytes = mutate_bytes(good.clone(), &muts);
            for (at, bit) in flips {
                let n = bytes.len();
                if n > 0 {
                    let i = at % n;
                    bytes[i] ^= 1 << bit;
                }
            }
            // Any outcome but a panic: the runner fails the case on a panic.
            // A campaign that could abort keeps the case it is on (the abort leaves it).
            if let Some(dump) = std::env::var_os("SQUALL_STATE_FUZZ_DUMP") {
                std::fs::write(&dump, &bytes).unwrap_or_else(|e| panic!("dump: {e}"));
            }
            let _ = open_and_use(&bytes);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
