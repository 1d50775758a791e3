//! Locking that survives a panicked holder.
//!
//! A task that panics while holding a lock is restarted (or the run stops with its
//! error); the data it guarded is still consistent for every reader squall has (counters,
//! snapshots, queues whose each step is one push or pop), so a poisoned lock is taken as is
//! instead of spreading the panic to the HTTP server or the other tasks.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the guard of a poisoned lock as is.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
