//! How busy a worker thread is: the share of recent time it ran tasks rather than waited
//! for work. Each worker's runtime records when it parks and unparks; a task reads the
//! figure of the thread it runs on, so a paced spout can wake less often when its
//! worker has little time to spare (see `SpoutTask`).

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// The figure covers windows of this length, the latest weighing as much as all before.
const WINDOW: Duration = Duration::from_millis(2);

thread_local! {
    static LOAD: RefCell<Option<Load>> = const { RefCell::new(None) };
}

struct Load {
    /// When the thread last unparked, while it runs.
    running_since: Option<Instant>,
    window_start: Instant,
    /// Time run in the current window, up to `running_since`.
    busy: Duration,
    /// Smoothed share of time run, 0.0..=1.0.
    fraction: f64,
}

impl Load {
    fn new(now: Instant) -> Load {
        Load {
            running_since: Some(now),
            window_start: now,
            busy: Duration::ZERO,
            fraction: 0.0,
        }
    }

    fn park(&mut self, now: Instant) {
        if let Some(since) = self.running_since.take() {
            self.busy += now.saturating_duration_since(since);
        }
        self.roll(now);
    }

    fn unpark(&mut self, now: Instant) {
        self.roll(now);
        self.running_since = Some(now);
    }

    /// Closes the window if it is over.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let mut busy = self.busy;
        if let Some(since) = self.running_since {
            busy += now.saturating_duration_since(since);
            self.running_since = Some(now);
        }
        let share = (busy.as_secs_f64() / elapsed.as_secs_f64()).min(1.0);
        self.fraction = (self.fraction + share) / 2.0;
        self.window_start = now;
        self.busy = Duration::ZERO;
    }
}

fn with_load(f: impl FnOnce(&mut Load, Instant)) {
    let now = Instant::now();
    LOAD.with(|l| f(l.borrow_mut().get_or_insert_with(|| Load::new(now)), now));
}

/// The runtime of a worker thread: tokio's single-threaded runtime, recording its load.
pub(crate) fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(|| with_load(Load::park))
        .on_thread_unpark(|| with_load(Load::unpark))
        .build()
}

/// The share of recent time this worker thread was busy (0.0 on a thread whose
/// runtime does not record it).
pub(crate) fn busy_fraction() -> f64 {
    LOAD.with(|l| match l.borrow_mut().as_mut() {
        Some(load) => {
            load.roll(Instant::now());
            load.fraction
        }
        None => 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_never_parks_is_busy() {
        let t0 = Instant::now();
        let mut l = Load::new(t0);
        for i in 1..=10 {
            l.roll(t0 + WINDOW * i);
        }
        assert!(l.fraction > 0.99, "{}", l.fraction);
    }

    #[test]
    fn a_thread_parked_most_of_the_time_is_idle() {
        let t0 = Instant::now();
        let mut l = Load::new(t0);
        // Runs 10 µs of every 100 µs.
        for i in 0..400u32 {
            let at = t0 + Duration::from_micros(100) * i;
            l.unpark(at);
            l.park(at + Duration::from_micros(10));
        }
        assert!((l.fraction - 0.1).abs() < 0.03, "{}", l.fraction);
    }

    #[test]
    fn the_figure_follows_a_change_of_load() {
        let t0 = Instant::now();
        let mut l = Load::new(t0);
        l.park(t0);
        let mut at = t0;
        // Idle for 20 ms, then busy for 20 ms.
        at += Duration::from_millis(20);
        l.unpark(at);
        assert!(l.fraction < 0.05, "{}", l.fraction);
        for _ in 0..20 {
            at += Duration::from_millis(1);
            l.roll(at);
        }
        assert!(l.fraction > 0.95, "{}", l.fraction);
    }

    #[test]
    fn worker_runtimes_record_their_load() {
        let rt = worker_runtime().unwrap_or_else(|e| panic!("{e}"));
        let busy = rt.block_on(async {
            // Park once, then spin for 10 ms without yielding: the thread is busy.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(10) {
                std::hint::spin_loop();
            }
            busy_fraction()
        });
        assert!(busy > 0.5, "{busy}");
        assert_eq!(std::thread::spawn(busy_fraction).join().ok(), Some(0.0));
    }
}
