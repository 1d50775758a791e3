//! `config.worker_priority = "realtime"`: event mode's worker threads run under
//! `SCHED_FIFO` and the job runs as at normal priority; where the process may not have
//! real-time threads, the run does not start and says what it needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall::config::priority::this_thread_policy;
use squall::{
    Bolt, BoltCollector, ComponentResult, LocalCluster, RuntimeError, TopologyBuilder, Tuple,
    WorkerPriority,
};

use crate::support::*;

/// Records the scheduling policy (field 41 of `/proc/thread-self/stat`) of the threads
/// it executes on.
#[derive(Clone, Default)]
struct PolicyBolt(Arc<Mutex<Vec<u32>>>);

impl Bolt for PolicyBolt {
    fn execute(&mut self, _input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(p) = this_thread_policy() {
            let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        Ok(())
    }
}

fn topology(n: u64, bolt: PolicyBolt) -> squall::Topology {
    let mut b = TopologyBuilder::new("priority");
    b.spout("spout", CountingSpout::new(n), 2);
    b.bolt("policy", bolt, 2).shuffle("spout");
    b.build().expect("topology")
}

#[cfg(target_os = "linux")]
#[test]
fn realtime_workers_run_the_job_under_sched_fifo() {
    const N: u64 = 5_000;
    let bolt = PolicyBolt::default();
    let config = squall::Config {
        worker_priority: WorkerPriority::Realtime,
        ..test_config()
    };
    // Whether this process may make a SCHED_FIFO thread (root, CAP_SYS_NICE, or an
    // RLIMIT_RTPRIO of at least 1).
    if WorkerPriority::Realtime.check().is_err() {
        // Not allowed here: the run is refused before any task starts, with the reason.
        match LocalCluster::submit(topology(N, bolt), config) {
            Err(RuntimeError::Priority(e)) => {
                let text = e.to_string();
                assert!(text.contains("sched_setscheduler"), "{text}");
                assert!(text.contains("CAP_SYS_NICE"), "{text}");
            }
            Err(e) => panic!("refused for another reason: {e}"),
            Ok(_) => panic!("a realtime run started without the privilege"),
        }
        return;
    }
    let summary = run(topology(N, bolt.clone()), config, Duration::from_secs(20));
    assert!(summary.completed);
    assert_component(&summary.metrics, "spout", Expect::clean_spout(N));
    let seen = bolt.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        seen,
        vec![1],
        "policies the bolt ran under (1 = SCHED_FIFO)"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn normal_workers_keep_the_default_policy() {
    const N: u64 = 2_000;
    let bolt = PolicyBolt::default();
    let summary = run(
        topology(N, bolt.clone()),
        test_config(),
        Duration::from_secs(20),
    );
    assert!(summary.completed);
    let seen = bolt.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen, vec![0], "policies the bolt ran under (0 = normal)");
}
