//! Requests the dashboard could not parse. They are the client's problem, not the run's:
//! actix-http answers them 400 and logs them at ERROR; the [`BadRequests`] layer counts
//! them (`squall_http_bad_requests_total` on `/metrics`) and logs them at debug instead.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Requests answered 400 since the process started (one dashboard per process).
static BAD_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Requests the dashboard could not parse, since the process started.
pub fn bad_requests() -> u64 {
    BAD_REQUESTS.load(Ordering::Relaxed)
}

/// Where actix-http logs a connection it gave up on: `error!("stream error: {err}")`
/// after answering a request it cannot parse with 400.
const DISPATCHER: &str = "actix_http::h1::dispatcher";
const STREAM_ERROR: &str = "stream error: ";

/// A logging layer that takes actix-http's "stream error" events out of the log: each
/// is counted and logged again at debug (target `squall::http`). Every other event
/// passes.
pub struct BadRequests;

impl<S: Subscriber> Layer<S> for BadRequests {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if meta.target() != DISPATCHER || *meta.level() != Level::ERROR {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let Some(why) = message.0.strip_prefix(STREAM_ERROR) else {
            return true;
        };
        BAD_REQUESTS.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "squall::http", "a client sent a request that is not HTTP/1.1 (answered 400): {why}");
        false
    }
}

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}
