//! `/api/events`: server-sent events. On connect, a `topology` event; then every
//! [`SAMPLE_INTERVAL`] a `metrics` and a `topk` event (the bodies of `/api/metrics` and
//! `/api/topk`). Each stream reads the latest sample, so a slow client queues nothing; at
//! most [`MAX_CLIENTS`] streams are open at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use futures::stream;
use serde::Serialize;

use super::SAMPLE_INTERVAL;
use super::live::State;

/// Open `/api/events` streams allowed at once; more get 503.
pub const MAX_CLIENTS: usize = 32;

/// Releases a client slot when its stream ends.
struct Slot(Arc<State>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

fn event(name: &str, body: &impl Serialize) -> String {
    match serde_json::to_string(body) {
        Ok(json) => format!("event: {name}\ndata: {json}\n\n"),
        Err(e) => format!(
            "event: error\ndata: {}\n\n",
            serde_json::json!(e.to_string())
        ),
    }
}

pub(crate) async fn events(state: web::Data<State>) -> HttpResponse {
    let state = state.into_inner();
    if state.sse_clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        state.sse_clients.fetch_sub(1, Ordering::SeqCst);
        return HttpResponse::ServiceUnavailable().body("too many event streams\n");
    }
    let slot = Slot(state);
    let first = event("topology", &*slot.0.graph);
    let every = actix_web::rt::time::interval(SAMPLE_INTERVAL);
    let body = stream::unfold(
        (slot, every, Some(first)),
        |(slot, mut every, first)| async move {
            let chunk = match first {
                Some(f) => f,
                None => {
                    every.tick().await;
                    event("metrics", &*slot.0.metrics()) + &event("topk", &slot.0.topk())
                }
            };
            Some((
                Ok::<Bytes, actix_web::Error>(Bytes::from(chunk)),
                (slot, every, None),
            ))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(body)
}
