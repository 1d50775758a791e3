//! The data plane between tasks: bounded channels of tuple batches, and the streams an
//! actor reads them through.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::task::AtomicWaker;
use tokio::sync::mpsc;

use crate::data::columns::Columns;
use crate::data::tuple::{Anchors, Tuple};
use crate::task::alarm::Alarm;

/// Event mode: rows that travel as one input (the lines of one read), column by column,
/// with one set of anchors for all of them. A bolt with a columnar path executes them at
/// once; any other takes them as tuples, each anchored to the chunk.
pub(crate) struct Chunk {
    pub(crate) rows: Columns,
    pub(crate) anchors: Anchors,
}

/// What travels on a task's inbox.
pub(crate) enum Envelope {
    /// A transport batch (1..=batch_size tuples).
    Tuples(Vec<Tuple>),
    /// Rows as one input (event mode).
    Chunk(Chunk),
    /// The sending task's watermark (event time): it will send no tuple with an earlier
    /// event time, except late ones. `None`: the sender is idle (holds nothing back).
    Watermark { from: u32, at: Option<i64> },
    /// The sending task has finished: it will send nothing more.
    End,
}

/// A receiver that survives its reading stream: when a task restarts, its context (and
/// the stream) is dropped and a new stream is made over the same receiver, so nothing
/// queued is lost.
pub(crate) struct SharedRx<T>(Arc<Mutex<Rx<T>>>);

/// A bounded (data) or unbounded (outcome) receiver.
pub(crate) enum Rx<T> {
    Bounded(mpsc::Receiver<T>),
    Unbounded(mpsc::UnboundedReceiver<T>),
}

impl<T> Rx<T> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self {
            Rx::Bounded(r) => r.poll_recv(cx),
            Rx::Unbounded(r) => r.poll_recv(cx),
        }
    }
}

impl<T> Clone for SharedRx<T> {
    fn clone(&self) -> Self {
        SharedRx(self.0.clone())
    }
}

impl<T> SharedRx<T> {
    pub(crate) fn new(rx: mpsc::Receiver<T>) -> Self {
        SharedRx(Arc::new(Mutex::new(Rx::Bounded(rx))))
    }

    pub(crate) fn unbounded(rx: mpsc::UnboundedReceiver<T>) -> Self {
        SharedRx(Arc::new(Mutex::new(Rx::Unbounded(rx))))
    }
}

impl<T> Stream for SharedRx<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.0.lock() {
            Ok(mut rx) => rx.poll_recv(cx),
            Err(poisoned) => poisoned.into_inner().poll_recv(cx),
        }
    }
}

/// A wake-up signal for a spout's poll loop, read as a stream by the spout actor: it
/// yields one item each time it was armed, or when the time it was armed for has come.
/// Arming an armed pulse is a no-op.
#[derive(Clone, Default)]
pub(crate) struct Pulse(Arc<PulseInner>);

#[derive(Default)]
struct PulseInner {
    armed: AtomicBool,
    /// A timed arming: nanoseconds after `epoch()` (0: none).
    at_ns: AtomicU64,
    waker: AtomicWaker,
}

/// The origin of timed armings (any fixed instant of this process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Pulse {
    pub(crate) fn arm(&self) {
        if !self.0.armed.swap(true, Ordering::AcqRel) {
            self.0.waker.wake();
        }
    }

    /// Arms the pulse at `at` (precisely: see `Alarm`), replacing an earlier timed arming.
    pub(crate) fn arm_at(&self, at: Instant) {
        let ns = at.saturating_duration_since(epoch()).as_nanos() as u64;
        self.0.at_ns.store(ns.max(1), Ordering::Release);
        self.0.waker.wake();
    }

    pub(crate) fn stream(&self) -> PulseStream {
        PulseStream {
            inner: self.0.clone(),
            alarm: Alarm::default(),
        }
    }
}

pub(crate) struct PulseStream {
    inner: Arc<PulseInner>,
    alarm: Alarm,
}

impl PulseStream {
    /// Takes the pulse if armed; a pulse also stands for any timed arming, which is
    /// dropped (the round it starts decides the next one).
    fn take(&mut self) -> bool {
        if self.inner.armed.swap(false, Ordering::AcqRel) {
            self.inner.at_ns.store(0, Ordering::Release);
            self.alarm.clear();
            return true;
        }
        false
    }
}

impl Stream for PulseStream {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.take() {
            return Poll::Ready(Some(()));
        }
        self.inner.waker.register(cx.waker());
        if self.take() {
            return Poll::Ready(Some(()));
        }
        let ns = self.inner.at_ns.load(Ordering::Acquire);
        if ns == 0 {
            return Poll::Pending;
        }
        self.alarm.set(epoch() + Duration::from_nanos(ns));
        if self.alarm.poll_ring(cx).is_ready() {
            // Only the arming that rang is taken: a newer one set meanwhile stays.
            let _ = self
                .inner
                .at_ns
                .compare_exchange(ns, 0, Ordering::AcqRel, Ordering::Relaxed);
            return Poll::Ready(Some(()));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(flavor = "current_thread")]
    async fn a_timed_arming_yields_at_its_time() {
        let pulse = Pulse::default();
        let mut stream = pulse.stream();
        let start = Instant::now();
        pulse.arm_at(start + Duration::from_micros(300));
        let got = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert_eq!(got, Ok(Some(())));
        assert!(start.elapsed() >= Duration::from_micros(300));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_immediate_arming_takes_the_place_of_a_timed_one() {
        let pulse = Pulse::default();
        let mut stream = pulse.stream();
        pulse.arm_at(Instant::now() + Duration::from_millis(5));
        pulse.arm();
        let got = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert_eq!(got, Ok(Some(())));
        let again = tokio::time::timeout(Duration::from_millis(30), stream.next()).await;
        assert!(again.is_err(), "the timed arming also fired");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_later_timed_arming_replaces_an_earlier_one() {
        let pulse = Pulse::default();
        let mut stream = pulse.stream();
        let start = Instant::now();
        pulse.arm_at(start + Duration::from_secs(60));
        // Let the stream set its alarm for the first time, then move it.
        let early = tokio::time::timeout(Duration::from_millis(2), stream.next()).await;
        assert!(early.is_err());
        pulse.arm_at(Instant::now() + Duration::from_micros(200));
        let got = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert_eq!(got, Ok(Some(())));
    }
}
