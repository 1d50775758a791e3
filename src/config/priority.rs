//! The scheduling priority of event mode's worker threads. At `normal` they share the
//! cores with every other task of the machine on equal terms, so a kernel thread that
//! runs for milliseconds (seen: DAMON's `kdamond.0`, up to 18 ms on a 2-core VM) holds
//! up every tuple on that core. At `realtime` they run under `SCHED_FIFO` at the lowest
//! real-time priority (1): ordinary tasks run only when a worker waits for work, and a
//! kernel thread in the way gives the core back at its next scheduling point. Linux only;
//! it needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` of at least 1.

use serde::{Deserialize, Serialize};

/// How event mode's worker threads are scheduled (`config.worker_priority`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkerPriority {
    /// The default policy, like every other process.
    #[default]
    Normal,
    /// `SCHED_FIFO`, priority 1.
    Realtime,
}

/// Why the worker threads could not get their priority.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "config `worker_priority = \"realtime\"`: {reason} (real-time scheduling needs CAP_SYS_NICE, e.g. root, or an RLIMIT_RTPRIO of at least 1: `ulimit -r 1`)"
)]
pub struct PriorityError {
    pub reason: String,
}

impl WorkerPriority {
    /// Gives the calling thread this priority.
    pub(crate) fn apply_to_this_thread(self) -> Result<(), PriorityError> {
        match self {
            WorkerPriority::Normal => Ok(()),
            WorkerPriority::Realtime => set_fifo(),
        }
    }

    /// Whether worker threads can get this priority here: tried on a short-lived thread,
    /// so a refusal stops a run before any task starts.
    pub fn check(self) -> Result<(), PriorityError> {
        if self == WorkerPriority::Normal {
            return Ok(());
        }
        std::thread::spawn(move || self.apply_to_this_thread())
            .join()
            .unwrap_or_else(|_| {
                Err(PriorityError {
                    reason: "the thread that tried it panicked".into(),
                })
            })
    }
}

#[cfg(target_os = "linux")]
fn set_fifo() -> Result<(), PriorityError> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives
    // the call, which only reads it.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(PriorityError {
            reason: format!("sched_setscheduler: {}", std::io::Error::last_os_error()),
        })
    }
}

#[cfg(not(target_os = "linux"))]
fn set_fifo() -> Result<(), PriorityError> {
    Err(PriorityError {
        reason: "real-time worker threads are supported on Linux only".into(),
    })
}

/// The scheduling policy the calling thread runs under (`/proc/thread-self/stat`, field
/// 41): 0 normal, 1 `SCHED_FIFO`; `None` where it cannot be read.
#[cfg(target_os = "linux")]
pub fn this_thread_policy() -> Option<u32> {
    use procfs::FromRead;
    procfs::process::Stat::from_file("/proc/thread-self/stat")
        .ok()?
        .policy
}

/// The scheduling policy the calling thread runs under: `None`, it cannot be read here.
#[cfg(not(target_os = "linux"))]
pub fn this_thread_policy() -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_from_toml_words() {
        #[derive(Deserialize)]
        struct C {
            p: WorkerPriority,
        }
        let c: C = toml::from_str("p = \"realtime\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.p, WorkerPriority::Realtime);
        let c: C = toml::from_str("p = \"normal\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.p, WorkerPriority::Normal);
        assert!(toml::from_str::<C>("p = \"high\"").is_err());
        assert_eq!(WorkerPriority::default(), WorkerPriority::Normal);
    }

    #[test]
    fn normal_needs_nothing_and_a_refusal_says_what_to_do() {
        assert_eq!(WorkerPriority::Normal.check(), Ok(()));
        let e = PriorityError {
            reason: "sched_setscheduler: Operation not permitted (os error 1)".into(),
        };
        let text = e.to_string();
        assert!(text.contains("worker_priority"), "{text}");
        assert!(text.contains("CAP_SYS_NICE"), "{text}");
        assert!(text.contains("Operation not permitted"), "{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_realtime_thread_is_sched_fifo_when_allowed() {
        let got = std::thread::spawn(|| {
            let r = WorkerPriority::Realtime.apply_to_this_thread();
            (r, this_thread_policy())
        })
        .join()
        .unwrap_or_else(|_| panic!("thread panicked"));
        match got {
            (Ok(()), policy) => assert_eq!(policy, Some(1), "SCHED_FIFO after success"),
            (Err(e), policy) => {
                // Without the privilege: a clear error, and the thread is unchanged.
                assert!(e.reason.contains("sched_setscheduler"), "{e}");
                assert_eq!(policy, Some(0));
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn policy_is_read_after_a_name_with_spaces() {
        // Fields 3 to 41 after the name; 40 is the real-time priority, 41 the policy.
        use procfs::FromRead;
        let mut fields = vec!["0"; 39];
        fields[0] = "S";
        fields[37] = "1";
        fields[38] = "1";
        let stat = format!("42 (a b) {}\n", fields.join(" "));
        let stat = procfs::process::Stat::from_read(stat.as_bytes());
        assert_eq!(stat.ok().and_then(|s| s.policy), Some(1));
    }
}
