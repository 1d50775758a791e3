//! A precise one-shot alarm for an actor's thread. tokio's timer wheel has 1 ms
//! resolution, so a spout that wants to be polled again in 40 µs would sleep a whole
//! millisecond and every tuple it paces would be that late. On Linux the alarm is a
//! `timerfd` registered with the thread's reactor (nanosecond resolution, the kernel's
//! timer slack aside); elsewhere, and if a timerfd cannot be made, it falls back to
//! tokio's timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Asks the kernel to wake the calling thread, and the threads it creates from now on,
/// within 1 ns of an alarm's time instead of its default 50 µs timer slack (Linux;
/// elsewhere nothing). The slack delays every timerfd and every `epoll_wait` timeout, so
/// at the default a paced spout sends each round 50 µs late and event mode's latency
/// carries it. Best effort: a refusal (never seen) leaves the default.
pub(crate) fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!(
                "timer slack stays at its default: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// One alarm, re-set as often as needed; it is polled like a future but can be reused.
#[derive(Default)]
pub(crate) struct Alarm {
    at: Option<Instant>,
    timer: Option<Timer>,
}

enum Timer {
    #[cfg(target_os = "linux")]
    Fd(tokio_timerfd::Delay),
    Tokio(Pin<Box<tokio::time::Sleep>>),
}

impl Alarm {
    /// Rings at `at` (replacing any earlier setting).
    pub(crate) fn set(&mut self, at: Instant) {
        if self.at == Some(at) {
            return;
        }
        self.at = Some(at);
        match &mut self.timer {
            Some(t) => t.reset(at),
            None => self.timer = Some(Timer::new(at)),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.at = None;
    }

    /// Ready once when the set time has come; pending (forever) when not set.
    pub(crate) fn poll_ring(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(at), Some(timer)) = (self.at, self.timer.as_mut()) else {
            return Poll::Pending;
        };
        // A timerfd that expired for an earlier setting and was never read is ready at
        // once: re-set it for `at` and look again (the second look is final).
        for _ in 0..2 {
            if timer.poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= at {
                break;
            }
            timer.reset(at);
        }
        self.at = None;
        Poll::Ready(())
    }
}

impl Timer {
    fn new(at: Instant) -> Timer {
        #[cfg(target_os = "linux")]
        match tokio_timerfd::Delay::new(at) {
            Ok(d) => return Timer::Fd(d),
            Err(e) => tracing::debug!("no timerfd ({e}); using tokio's 1 ms timer"),
        }
        Timer::Tokio(Box::pin(tokio::time::sleep_until(at.into())))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            // An error of the timerfd (it cannot really fail once made) rings: a spurious
            // poll round is harmless, a lost wake-up is not.
            #[cfg(target_os = "linux")]
            Timer::Fd(d) => Pin::new(d).poll(cx).map(|_| ()),
            Timer::Tokio(s) => s.as_mut().poll(cx),
        }
    }

    fn reset(&mut self, at: Instant) {
        match self {
            #[cfg(target_os = "linux")]
            Timer::Fd(d) => d.reset(at),
            Timer::Tokio(s) => s.as_mut().reset(at.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn rings_at_the_time_set_and_can_be_set_again() {
        let mut alarm = Alarm::default();
        for wait in [Duration::from_micros(200), Duration::from_millis(2)] {
            let start = Instant::now();
            alarm.set(start + wait);
            assert_eq!(alarm.at, Some(start + wait));
            poll_fn(|cx| alarm.poll_ring(cx)).await;
            assert!(start.elapsed() >= wait, "rang early: {:?}", start.elapsed());
            assert_eq!(alarm.at, None);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_later_setting_replaces_an_earlier_one() {
        let mut alarm = Alarm::default();
        let start = Instant::now();
        alarm.set(start + Duration::from_secs(60));
        alarm.set(start + Duration::from_micros(300));
        let rang =
            tokio::time::timeout(Duration::from_secs(10), poll_fn(|cx| alarm.poll_ring(cx))).await;
        assert!(rang.is_ok(), "the replaced 60 s setting was kept");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unset_alarm_never_rings() {
        let mut alarm = Alarm::default();
        let rang =
            tokio::time::timeout(Duration::from_millis(20), poll_fn(|cx| alarm.poll_ring(cx)))
                .await;
        assert!(rang.is_err());
        alarm.set(Instant::now());
        alarm.clear();
        assert_eq!(alarm.at, None);
    }
}
