//! The built-in web UI of a running topology (`squall topology run --http ADDR`): a
//! dashboard page, JSON under `/api/`, server-sent events, Prometheus text on `/metrics`
//! and `/healthz`. See `docs/http-api.md` and `docs/observability.md`.
//!
//! It reads only what every execution mode offers: the topology's declared graph
//! ([`TopologyInfo`]) and the run's [`MetricsRegistry`]. A sampler takes a snapshot once a
//! second (rates, capacity, latency history); requests read that sample, so serving never
//! touches a task.

mod assets;
mod bad_requests;
mod live;
mod prometheus;
mod routes;
mod sse;
mod topology;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::{App, HttpServer, web};

use crate::metrics::MetricsRegistry;
pub use bad_requests::{BadRequests, bad_requests};
pub use live::{ComponentMetrics, EdgeRate, LatencyPoint, MetricsBody, TaskMetrics, TopkBody};
pub use prometheus::render as prometheus_text;
pub use topology::{ComponentInfo, DescribeInstance, InputInfo, InstanceSource, TopologyInfo};

/// How often the sampler takes a snapshot (and SSE pushes one).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP thread: {0}")]
    Thread(std::io::Error),
    #[error("the HTTP thread ended before it was listening")]
    Ended,
}

/// `true` unless `addr` is a loopback address (then `--http` warns: the dashboard has no
/// authentication).
pub fn is_exposed(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// A running server; stops (and joins its thread) on [`HttpHandle::stop`] or drop.
pub struct HttpHandle {
    addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl HttpHandle {
    /// The address actually bound (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            futures::executor::block_on(self.server.stop(false));
            let _ = t.join();
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

type Started = Result<(SocketAddr, actix_web::dev::ServerHandle), HttpError>;

/// Starts serving `graph` and the live metrics of `registry` on `addr` (port 0 picks a
/// free port; see [`HttpHandle::addr`]). Returns once the socket is bound.
pub fn serve(
    addr: SocketAddr,
    graph: TopologyInfo,
    registry: MetricsRegistry,
) -> Result<HttpHandle, HttpError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Started>(1);
    let thread = std::thread::Builder::new()
        .name("squall-http".into())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let state = web::Data::new(live::State::new(Arc::new(graph), registry));
                actix_web::rt::spawn(live::sample_forever(state.clone().into_inner()));
                let app_state = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(app_state.clone())
                        .configure(routes::configure)
                })
                .workers(1)
                .shutdown_timeout(1)
                .disable_signals()
                .bind(addr);
                let server = match server {
                    Ok(s) => s,
                    Err(source) => {
                        let _ = tx.send(Err(HttpError::Bind { addr, source }));
                        return;
                    }
                };
                let bound = server.addrs().first().copied().unwrap_or(addr);
                let running = server.run();
                let _ = tx.send(Ok((bound, running.handle())));
                let _ = running.await;
            });
        })
        .map_err(HttpError::Thread)?;
    match rx.recv() {
        Ok(Ok((addr, server))) => Ok(HttpHandle {
            addr,
            server,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(HttpError::Ended)
        }
    }
}
