//! What one running task of a component talks to, below the component API: its outbox
//! (routing and batching what it emits), the channels between tasks, the ledger of tuple trees, its run
//! control and its I/O thread. Both modes share these; `runtime` builds and drives them.

pub(crate) mod alarm;
pub(crate) mod chunks;
pub(crate) mod control;
pub(crate) mod delivery;
pub(crate) mod ids;
pub(crate) mod io_thread;
pub(crate) mod ledger;
pub(crate) mod outbox;
pub(crate) mod source_time;
pub(crate) mod transport;
pub(crate) mod watermarks;

/// The text of a caught panic's payload.
pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
