//! The data plane between tasks: bounded channels of tuple batches, and the streams an
//! actor reads them through.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use futures::task::AtomicWaker;
use tokio::sync::mpsc;

use crate::tuple::Tuple;

/// What travels on a task's inbox.
pub(crate) enum Envelope {
    /// A transport batch (1..=batch_size tuples).
    Tuples(Vec<Tuple>),
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
/// yields one item each time it was armed. Arming an armed pulse is a no-op.
#[derive(Clone, Default)]
pub(crate) struct Pulse(Arc<PulseInner>);

#[derive(Default)]
struct PulseInner {
    armed: AtomicBool,
    waker: AtomicWaker,
}

impl Pulse {
    pub(crate) fn arm(&self) {
        if !self.0.armed.swap(true, Ordering::AcqRel) {
            self.0.waker.wake();
        }
    }

    pub(crate) fn stream(&self) -> PulseStream {
        PulseStream(self.0.clone())
    }
}

pub(crate) struct PulseStream(Arc<PulseInner>);

impl Stream for PulseStream {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.0.armed.swap(false, Ordering::AcqRel) {
            return Poll::Ready(Some(()));
        }
        self.0.waker.register(cx.waker());
        if self.0.armed.swap(false, Ordering::AcqRel) {
            return Poll::Ready(Some(()));
        }
        Poll::Pending
    }
}
