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

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz property (see `crate::fuzz_support`): a real server on 127.0.0.1 answers any
    /// request line (known routes with odd suffixes, `..`, percent escapes, odd bytes,
    /// any query string) with a status below 500 or closes the connection, and stays
    /// healthy.
    #[test]
    fn fuzz_paths_and_queries_never_break_the_server() {
        use crate::fuzz_support::config;
        use proptest::prelude::*;
        use proptest::test_runner::{TestCaseError, TestRunner};
        use std::io::{Read, Write};

        let graph = TopologyInfo {
            name: "t".into(),
            components: Vec::new(),
            instance: None,
        };
        let server = serve(
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            graph,
            MetricsRegistry::default(),
        )
        .unwrap_or_else(|e| panic!("serve: {e}"));
        let addr = server.addr();
        // The status of the answer to `request`; `None` when the server closed first.
        let ask = |request: &[u8]| -> Result<Option<u16>, TestCaseError> {
            let fail = |e: std::io::Error| TestCaseError::fail(e.to_string());
            let mut s = std::net::TcpStream::connect(addr).map_err(fail)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(fail)?;
            s.write_all(request).map_err(fail)?;
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.windows(2).any(|w| w == b"\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) if got.is_empty() => return Ok(None),
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(fail(e)),
                }
            }
            let line = String::from_utf8_lossy(&got);
            let code = line
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| TestCaseError::fail(format!("not a status line: {line:?}")))?;
            Ok(Some(code))
        };
        let route = prop_oneof![
            Just("/"),
            Just("/healthz"),
            Just("/metrics"),
            Just("/assets/"),
            Just("/api/topology"),
            Just("/api/metrics"),
            Just("/api/topk"),
            Just("/api/history"),
            Just("/api/"),
            Just(""),
            Just("//"),
            Just("/../"),
        ];
        let bytes = prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(b"az09/.%?&=#+;-_~".to_vec()),
                1 => prop::sample::select(vec![b' ', b'\t', b'\r', b'\n', 0, 0x7f, 0xff, 0xc3]),
                1 => any::<u8>(),
            ],
            0..48,
        );
        let method = prop_oneof![
            4 => Just("GET".to_string()),
            1 => Just("POST".to_string()),
            1 => Just("HEAD".to_string()),
            1 => Just("DELETE".to_string()),
            1 => "[A-Z]{0,8}",
        ];
        let mut runner = TestRunner::new(proptest::test_runner::Config {
            source_file: Some(file!()),
            ..config(96)
        });
        let result = runner.run(
            &(method, route, bytes.clone(), bytes),
            |(method, route, suffix, query)| {
                let mut request = format!("{method} {route}").into_bytes();
                request.extend_from_slice(&suffix);
                if !query.is_empty() {
                    request.push(b'?');
                    request.extend_from_slice(&query);
                }
                request.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                if let Some(code) = ask(&request)? {
                    prop_assert!(
                        (200..500).contains(&code),
                        "{:?} answered {code}",
                        String::from_utf8_lossy(&request)
                    );
                }
                let health = ask(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
                prop_assert_eq!(health, Some(200));
                Ok(())
            },
        );
        server.stop();
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
