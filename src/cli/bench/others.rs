//! Who else used the CPU: the scheduler's own accounting of a thread's wait on the run
//! queue, and the CPU time of every other task of the machine (`/proc/*/task/*/schedstat`),
//! so the stall probe can tell time the guest kernel gave to another task from time the
//! hypervisor took. Linux only; elsewhere nothing is known.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// CPU nanoseconds of tasks by (pid, tid), with each task's name.
pub type TaskTimes = HashMap<(i32, i32), (String, u64)>;

/// Another task of the machine and the CPU time it used while the probe spun.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OtherTask {
    /// The task's name (`comm`), tasks of one name summed.
    pub name: String,
    pub cpu_ms: f64,
}

/// Nanoseconds this thread has waited on a run queue (runnable, another task running),
/// by the kernel's count; `None` where it cannot be read.
pub fn run_delay_ns() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use procfs::FromRead;
        procfs::process::Schedstat::from_file("/proc/thread-self/schedstat")
            .ok()
            .map(|s| s.run_delay)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// CPU nanoseconds so far of every task of the machine outside this process, by
/// (pid, tid), with its name. Tasks that end or cannot be read are left out.
pub fn cpu_times() -> TaskTimes {
    let mut out = HashMap::new();
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id() as i32;
        let Ok(procs) = procfs::process::all_processes() else {
            return out;
        };
        for p in procs.flatten().filter(|p| p.pid() != me) {
            let Ok(tasks) = p.tasks() else { continue };
            for t in tasks.flatten() {
                if let (Ok(stat), Ok(sched)) = (t.stat(), t.schedstat()) {
                    out.insert((t.pid, t.tid), (stat.comm, sched.sum_exec_runtime));
                }
            }
        }
    }
    out
}

/// The tasks that used the most CPU between two `cpu_times` readings, most first, tasks
/// of one name summed; at most `top`, and none under `min_ms`.
pub fn busiest(before: &TaskTimes, after: &TaskTimes, top: usize, min_ms: f64) -> Vec<OtherTask> {
    let mut by_name: HashMap<&str, u64> = HashMap::new();
    for (id, (name, ns)) in after {
        // A task that started during the probe counts from zero.
        let then = before.get(id).map_or(0, |(_, ns)| *ns);
        *by_name.entry(name.as_str()).or_default() += ns.saturating_sub(then);
    }
    let mut list: Vec<OtherTask> = by_name
        .into_iter()
        .map(|(name, ns)| OtherTask {
            name: name.to_string(),
            cpu_ms: (ns as f64 / 1e4).round() / 100.0,
        })
        .filter(|t| t.cpu_ms >= min_ms)
        .collect();
    list.sort_by(|a, b| b.cpu_ms.total_cmp(&a.cpu_ms).then(a.name.cmp(&b.name)));
    list.truncate(top);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(v: &[(i32, &str, u64)]) -> TaskTimes {
        v.iter()
            .map(|&(tid, name, ns)| ((1, tid), (name.to_string(), ns)))
            .collect()
    }

    #[test]
    fn busiest_sums_by_name_sorts_and_cuts() {
        let before = times(&[
            (10, "kdamond.0", 5_000_000),
            (11, "kworker/0:1", 0),
            (12, "sshd", 0),
        ]);
        let after = times(&[
            (10, "kdamond.0", 37_000_000),
            (11, "kworker/0:1", 1_500_000),
            (13, "kworker/0:1", 1_000_000), // started during the probe
            (12, "sshd", 100_000),
        ]);
        let b = busiest(&before, &after, 5, 0.5);
        assert_eq!(
            b,
            vec![
                OtherTask {
                    name: "kdamond.0".into(),
                    cpu_ms: 32.0
                },
                OtherTask {
                    name: "kworker/0:1".into(),
                    cpu_ms: 2.5
                },
            ]
        );
        assert_eq!(busiest(&before, &after, 1, 0.0).len(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_counts_this_threads_wait_and_other_tasks_time() {
        assert!(run_delay_ns().is_some());
        // pid 1 (or some other process) is always there and has used some CPU.
        let t = cpu_times();
        assert!(!t.is_empty());
        assert!(t.keys().all(|&(pid, _)| pid != std::process::id() as i32));
    }
}
