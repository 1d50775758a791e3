//! What the process itself used: CPU time (user + system, `getrusage(RUSAGE_SELF)`) and
//! peak resident memory (`VmHWM` of `/proc/self/status`). The run report carries both so
//! `squall bench`, which runs each point in its own child process, gets them per point.

/// User + system CPU seconds this process has used so far (0 where unavailable).
pub fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a `rusage` into the pointer it is given, which points to
        // writable memory of the right size and alignment; we read it only when it succeeded.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return 0.0;
        }
        // SAFETY: getrusage returned 0, so it filled the struct (and it was zeroed before).
        let usage = unsafe { usage.assume_init() };
        let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }
    #[cfg(not(unix))]
    {
        0.0
    }
}

/// The peak resident set size of this process in bytes (`VmHWM`), 0 if it cannot be read.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_hwm_bytes(&s))
        .unwrap_or(0)
}

/// The `VmHWM:` line of a `/proc/<pid>/status` text, in bytes (the kernel writes kB).
pub fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    let factor = match unit {
        "kB" | "KB" | "kb" => 1024,
        "mB" | "MB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    value.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_bytes() {
        let status = "Name:\tsquall\nVmPeak:\t  200000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(12345 * 1024));
    }

    #[test]
    fn vm_hwm_missing_or_malformed_is_none() {
        assert_eq!(vm_hwm_bytes("Name:\tsquall\nVmRSS:\t1000 kB\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\tlots kB\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\t12 furlongs\n"), None);
        assert_eq!(vm_hwm_bytes(""), None);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        assert!(before >= 0.0);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_seconds();
        #[cfg(unix)]
        assert!(after > before, "cpu time did not grow: {before} -> {after}");
        let _ = (after, x);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_known_on_linux() {
        let rss = peak_rss_bytes();
        assert!(rss > 1024 * 1024, "peak rss {rss} bytes");
    }
}
