//! What the process itself used: CPU time (user + system, the process CPU-time clock, to
//! the nanosecond) and peak resident memory (`VmHWM` of `/proc/self/status`, read with
//! procfs) (Linux; 0 elsewhere). The run report carries both so `squall bench`, which runs each point in its
//! own child process, gets them per point.

/// User + system CPU seconds this process has used so far (`CLOCK_PROCESS_CPUTIME_ID`:
/// nanoseconds, where `/proc/self/stat` counts 10 ms ticks, too coarse for a short
/// `squall bench` point); 0 where unavailable.
pub fn cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        use rustix::time::{ClockId, clock_gettime};
        let t = clock_gettime(ClockId::ProcessCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    }
    #[cfg(not(target_os = "linux"))]
    {
        0.0
    }
}

/// The peak resident set size of this process in bytes (`VmHWM`), 0 if it cannot be read.
pub fn peak_rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        use procfs::FromRead;
        vm_hwm_bytes(procfs::process::Status::from_file("/proc/self/status")).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// The `VmHWM` of a `/proc/<pid>/status` read, in bytes (the kernel writes kB).
#[cfg(target_os = "linux")]
fn vm_hwm_bytes(status: procfs::ProcResult<procfs::process::Status>) -> Option<u64> {
    status.ok()?.vmhwm?.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/<pid>/status` read (a Linux 6 kernel's text) with the line `hwm`.
    #[cfg(target_os = "linux")]
    fn status(hwm: &str) -> procfs::ProcResult<procfs::process::Status> {
        use procfs::FromRead;
        let text = format!(
            "Name:\tsquall\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\nNgid:\t0\nPid:\t7\n\
             PPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\n\
             Groups:\t \nVmPeak:\t  200000 kB\nVmSize:\t  200000 kB\n{hwm}VmRSS:\t    1000 kB\n\
             Threads:\t1\nSigQ:\t0/96367\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
             SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n\
             CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n\
             CapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nCpus_allowed:\t3\n\
             Cpus_allowed_list:\t0-1\nvoluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t1\n"
        );
        procfs::process::Status::from_read(text.as_bytes())
    }

    /// The template reads as a status (else the cases below would pass for that reason).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_status_template_reads() {
        assert!(status("").is_ok(), "{:?}", status("").err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn vm_hwm_is_read_in_bytes() {
        assert_eq!(
            vm_hwm_bytes(status("VmHWM:\t   12345 kB\n")),
            Some(12345 * 1024)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn vm_hwm_missing_or_malformed_is_none() {
        assert_eq!(vm_hwm_bytes(status("")), None);
        assert_eq!(vm_hwm_bytes(status("VmHWM:\tlots kB\n")), None);
        assert_eq!(vm_hwm_bytes(status("VmHWM:\t12 furlongs\n")), None);
        assert_eq!(vm_hwm_bytes(status("VmHWM:\t18014398509481984 kB\n")), None);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        assert!(before >= 0.0);
        // Work until the clock moves, or 5 s on a machine too busy for that.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after <= before && start.elapsed() < std::time::Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = cpu_seconds();
        }
        #[cfg(target_os = "linux")]
        assert!(after > before, "cpu time did not grow: {before} -> {after}");
        let _ = (after, x);
    }

    /// A short `squall bench` point uses a few ms of CPU: the clock must resolve far less
    /// than the 10 ms tick of `/proc/self/stat` (a 1-second point at 2 % CPU read 0 %).
    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_time_resolves_less_than_a_tick() {
        let start = std::time::Instant::now();
        let first = cpu_seconds();
        let mut next = first;
        while next == first && start.elapsed() < std::time::Duration::from_secs(5) {
            next = cpu_seconds();
        }
        let step = next - first;
        assert!(step > 0.0 && step < 0.005, "cpu time moved by {step} s");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_known_on_linux() {
        let rss = peak_rss_bytes();
        assert!(rss > 1024 * 1024, "peak rss {rss} bytes");
    }
}
