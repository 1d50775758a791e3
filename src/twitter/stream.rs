//! One streaming connection to the X API v2 (`GET /2/tweets/search/stream` or
//! `/2/tweets/sample/stream`), and [`Streamer::run`], the loop that keeps one open:
//! connect, read tweets into a bounded channel, and on every end apply the
//! [reconnect policy](super::policy) until the receiver is dropped or an error that
//! retrying cannot fix.
//!
//! Framing (`TWITTER_API.md`): a chunked body of `\r\n`-terminated JSON lines; a bare
//! `\r\n` is a keep-alive sent at least every 20 s. The body is split on `\n` by
//! [`LineSplitter`] (the framing every line source shares), `\r` is stripped and empty
//! lines are counted as keep-alives. Lines longer than `max_line_bytes` are skipped
//! (counted as malformed) without being buffered, so a bad server cannot grow memory. No bytes for `stall_timeout` (keep-alives included) drops
//! the connection. An in-stream `{"errors":[…]}` message (an operational disconnect) is
//! logged with its title and type and ends the connection.
//!
//! The token only ever travels in the `Authorization` header: URLs, errors and logs
//! never contain it (a `base_url` with credentials in it is refused).

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderMap};
use tokio::sync::mpsc;

use super::auth::{BearerToken, http_client};
use super::error_chain;
use super::policy::{Decision, Ending, Endpoint, PolicyConfig, ReconnectPolicy, WaitKind};
use crate::io::lines::{LineSplitter, RawLine as Piece};
use crate::log_throttle::LogThrottle;
use crate::tweet::wire::{Notice, StreamError as ApiError, StreamMessage, Tweet, parse_line};

/// `tweet.fields` asked for (by default a tweet has only id, text and edit history).
pub const TWEET_FIELDS: &str = "created_at,lang,entities,author_id";
/// `expansions`: the author, so that `includes.users` carries the username.
pub const EXPANSIONS: &str = "author_id";
/// `user.fields` of the expanded author.
pub const USER_FIELDS: &str = "username";
/// Longest line accepted by default: 1 MiB, as for every line source.
pub const DEFAULT_MAX_LINE_BYTES: usize = crate::io::lines::DEFAULT_MAX_LINE_BYTES;
/// Default stall timeout: the API sends a keep-alive at least every 20 s.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(21);
/// Default TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The API accepts `backfill_minutes` from 0 to 5.
pub const MAX_BACKFILL_MINUTES: u8 = 5;
/// Tweets handed over per channel message, at most.
pub const BATCH: usize = 256;
/// Bytes of an error response read for its message, at most.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// What one streaming connection asks for and how it is watched.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamConfig {
    pub endpoint: Endpoint,
    /// `https://api.x.com` unless testing against a mock.
    pub base_url: String,
    /// No bytes (not even a keep-alive) for this long drops the connection.
    pub stall_timeout: Duration,
    /// `backfill_minutes` (0–5) asked for on the connections after the first established
    /// one (never on the first), to recover tweets missed while disconnected (needs an
    /// access level that allows it; may deliver duplicates). 0: never sent.
    pub backfill_minutes: u8,
    /// TCP connect timeout (the wait for response headers is bounded by
    /// `connect_timeout + stall_timeout`).
    pub connect_timeout: Duration,
    /// Longer lines are skipped and counted as malformed.
    pub max_line_bytes: usize,
    /// The base durations of the reconnect policy.
    pub reconnect: PolicyConfig,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            endpoint: Endpoint::Filtered,
            base_url: super::DEFAULT_BASE_URL.to_string(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            backfill_minutes: 0,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            reconnect: PolicyConfig::documented(),
        }
    }
}

impl StreamConfig {
    /// Checks every option (the URL included).
    pub fn validate(&self) -> Result<(), StreamError> {
        let bad = |m: String| Err(StreamError::Config(m));
        if self.backfill_minutes > MAX_BACKFILL_MINUTES {
            return bad(format!(
                "backfill_minutes must be 0 to {MAX_BACKFILL_MINUTES}, got {}",
                self.backfill_minutes
            ));
        }
        if self.stall_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("stall_timeout and connect_timeout must be positive".into());
        }
        if self.max_line_bytes == 0 {
            return bad("max_line_bytes must be at least 1".into());
        }
        self.reconnect
            .validate()
            .map_err(|e| StreamError::Config(e.to_string()))?;
        stream_url(&self.base_url, self.endpoint, None).map(|_| ())
    }

    /// The wait for response headers.
    fn header_timeout(&self) -> Duration {
        self.connect_timeout.saturating_add(self.stall_timeout)
    }
}

/// Why streaming stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// An unusable option.
    #[error("{0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The API answered with an error that retrying cannot fix (401, 403, 409, 4xx).
    #[error("GET {url} (attempt {attempt}): {message}")]
    Fatal {
        /// The request URL (never contains the token).
        url: String,
        /// The HTTP status.
        status: Option<u16>,
        /// The connection attempt of this run (1-based).
        attempt: u64,
        /// What happened and what to check.
        message: String,
    },
}

/// The request URL: `base_url` + the endpoint's path, with the field parameters and,
/// when given, `backfill_minutes`.
pub fn stream_url(
    base_url: &str,
    endpoint: Endpoint,
    backfill_minutes: Option<u8>,
) -> Result<Url, StreamError> {
    let bad = |reason: &str| {
        StreamError::Config(format!(
            "invalid base_url `{}`: {reason}",
            safe_url_text(base_url)
        ))
    };
    let mut url = Url::parse(&format!(
        "{}{}",
        base_url.trim_end_matches('/'),
        endpoint.path()
    ))
    .map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not supported (the token is read from `token_env`)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    let mut query =
        format!("tweet.fields={TWEET_FIELDS}&expansions={EXPANSIONS}&user.fields={USER_FIELDS}");
    if let Some(m) = backfill_minutes {
        query.push_str(&format!("&backfill_minutes={m}"));
    }
    url.set_query(Some(&query));
    Ok(url)
}

/// A URL given by the user, for messages: anything before an `@` in the authority is
/// cut (it could be a credential).
fn safe_url_text(s: &str) -> String {
    match (s.find("://"), s.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…@{}", &s[..scheme_end], &s[at + 1..])
        }
        _ => s.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Counters.

/// The events of a stream, counted (shared with a component's metrics or a CLI).
#[derive(Clone, Debug, Default)]
pub struct StreamCounters {
    /// Connections established (HTTP 200).
    pub connects: Arc<AtomicU64>,
    /// Attempts that failed before streaming (network error or non-200 status).
    pub connect_errors: Arc<AtomicU64>,
    /// Established connections that ended.
    pub disconnects: Arc<AtomicU64>,
    /// Milliseconds waited before reconnecting, in total (each wait rounded down).
    pub reconnect_waits_ms: Arc<AtomicU64>,
    /// Keep-alive lines.
    pub keepalives: Arc<AtomicU64>,
    /// Connections dropped for a stall.
    pub stalls: Arc<AtomicU64>,
    /// In-stream `errors` messages (each ends its connection).
    pub stream_errors: Arc<AtomicU64>,
    /// v1.1 notices (delete, limit, disconnect, warning).
    pub notices: Arc<AtomicU64>,
    /// Valid JSON messages of an unknown kind (skipped).
    pub unknown_messages: Arc<AtomicU64>,
    /// Lines that are not a valid message, or longer than the limit (skipped).
    pub malformed: Arc<AtomicU64>,
    /// The warnings about such lines, rate-limited.
    malformed_log: Arc<LogThrottle>,
    oversized_log: Arc<LogThrottle>,
}

impl StreamCounters {
    /// The counters' names, as reported.
    pub const NAMES: [&'static str; 10] = [
        "connects",
        "connect_errors",
        "disconnects",
        "reconnect_waits_ms",
        "keepalives",
        "stalls",
        "stream_errors",
        "notices",
        "unknown_messages",
        "malformed",
    ];

    /// Counters obtained by name (e.g. `|n| ctx.counter(n)`).
    pub fn with(mut counter: impl FnMut(&str) -> Arc<AtomicU64>) -> Self {
        StreamCounters {
            connects: counter("connects"),
            connect_errors: counter("connect_errors"),
            disconnects: counter("disconnects"),
            reconnect_waits_ms: counter("reconnect_waits_ms"),
            keepalives: counter("keepalives"),
            stalls: counter("stalls"),
            stream_errors: counter("stream_errors"),
            notices: counter("notices"),
            unknown_messages: counter("unknown_messages"),
            malformed: counter("malformed"),
            malformed_log: Arc::default(),
            oversized_log: Arc::default(),
        }
    }

    /// `(name, value)` of every counter, in [`Self::NAMES`] order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let all = [
            &self.connects,
            &self.connect_errors,
            &self.disconnects,
            &self.reconnect_waits_ms,
            &self.keepalives,
            &self.stalls,
            &self.stream_errors,
            &self.notices,
            &self.unknown_messages,
            &self.malformed,
        ];
        Self::NAMES
            .iter()
            .zip(all)
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .collect()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------
// One connection.

/// How an established connection ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// The server ended the body.
    Closed,
    /// Reading the body failed (connection reset, broken chunking, …).
    ReadError(String),
    /// No bytes for the stall timeout.
    Stalled(Duration),
    /// The server sent an in-stream `errors` message (e.g. an operational disconnect).
    ErrorMessage(Vec<ApiError>),
    /// The receiver of the tweets is gone: stop.
    ReceiverGone,
}

/// Reads lines, turns them into tweets and hands them over in batches.
struct Reader<'a> {
    counters: &'a StreamCounters,
    tx: &'a mpsc::Sender<Vec<Tweet>>,
    wake: &'a (dyn Fn() + Send + Sync),
    url: &'a str,
    batch: Vec<Tweet>,
    /// A line other than an error message arrived.
    delivered: bool,
    /// An error message arrived: the connection ends.
    errors: Option<Vec<ApiError>>,
}

impl Reader<'_> {
    fn on_piece(&mut self, piece: Piece<'_>) {
        if self.errors.is_some() {
            return; // The server closes after an error message; ignore what follows.
        }
        match piece {
            Piece::Oversized(len) => {
                self.delivered = true;
                bump(&self.counters.malformed);
                if let Some(n) = self.counters.oversized_log.hit() {
                    tracing::warn!(url = %self.url, bytes = len, "stream line over the length limit skipped{n}");
                }
            }
            Piece::Line([]) => {
                self.delivered = true;
                bump(&self.counters.keepalives);
            }
            Piece::Line(line) => self.on_line(line),
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        match parse_line(line) {
            Ok(StreamMessage::Tweet(t)) => {
                self.delivered = true;
                self.batch.push(t);
            }
            Ok(StreamMessage::KeepAlive) => {
                self.delivered = true;
                bump(&self.counters.keepalives);
            }
            Ok(StreamMessage::Errors(errors)) => {
                bump(&self.counters.stream_errors);
                self.errors = Some(errors);
            }
            Ok(StreamMessage::Notice(n)) => {
                self.delivered = true;
                bump(&self.counters.notices);
                log_notice(self.url, &n);
            }
            Ok(StreamMessage::Unknown) => {
                self.delivered = true;
                bump(&self.counters.unknown_messages);
                tracing::debug!(url = %self.url, "stream message of an unknown kind skipped");
            }
            Err(e) => {
                self.delivered = true;
                bump(&self.counters.malformed);
                if let Some(n) = self.counters.malformed_log.hit() {
                    tracing::warn!(url = %self.url, bytes = line.len(), "malformed stream line skipped: {e}{n}");
                }
            }
        }
    }

    /// Hands the batch over (in parts of at most [`BATCH`]); `false` if the receiver is
    /// gone.
    async fn flush(&mut self) -> bool {
        while !self.batch.is_empty() {
            let rest = if self.batch.len() > BATCH {
                self.batch.split_off(BATCH)
            } else {
                Vec::new()
            };
            let part = std::mem::replace(&mut self.batch, rest);
            if self.tx.send(part).await.is_err() {
                return false;
            }
            (self.wake)();
        }
        true
    }
}

fn log_notice(url: &str, n: &Notice) {
    match n {
        Notice::Disconnect {
            code,
            stream_name,
            reason,
        } => tracing::warn!(%url, code, stream_name, reason, "disconnect notice"),
        Notice::Warning { code, message, .. } => {
            tracing::warn!(%url, code, "stream warning: {message}")
        }
        Notice::Limit { track, .. } => {
            tracing::info!(%url, track, "limit notice: tweets matched but not delivered")
        }
        Notice::Delete { .. } => tracing::debug!(%url, "delete notice"),
    }
}

fn log_stream_errors(url: &str, errors: &[ApiError]) {
    for e in errors {
        tracing::warn!(
            %url,
            title = %e.title,
            disconnect_type = e.disconnect_type.as_deref().unwrap_or(""),
            r#type = e.error_type.as_deref().unwrap_or(""),
            "stream error message: {}",
            e.detail.as_deref().unwrap_or("")
        );
    }
}

/// Reads an established connection's body until it ends. Returns how it ended and
/// whether it delivered any line (other than an error message).
pub async fn read_body<S, E>(
    body: S,
    config: &StreamConfig,
    url: &str,
    tx: &mpsc::Sender<Vec<Tweet>>,
    counters: &StreamCounters,
    wake: &(dyn Fn() + Send + Sync),
) -> (StreamEnd, bool)
where
    S: Stream<Item = Result<Bytes, E>>,
    E: StdError,
{
    let mut body = std::pin::pin!(body);
    let mut lines = LineSplitter::new(config.max_line_bytes);
    let mut r = Reader {
        counters,
        tx,
        wake,
        url,
        batch: Vec::new(),
        delivered: false,
        errors: None,
    };
    let end = loop {
        let next = tokio::select! {
            biased;
            _ = tx.closed() => break StreamEnd::ReceiverGone,
            next = tokio::time::timeout(config.stall_timeout, body.next()) => next,
        };
        let chunk = match next {
            Err(_) => break StreamEnd::Stalled(config.stall_timeout),
            Ok(None) => break StreamEnd::Closed,
            Ok(Some(Err(e))) => break StreamEnd::ReadError(error_chain(&e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        lines.feed(&chunk, |p| r.on_piece(p));
        if !r.flush().await {
            break StreamEnd::ReceiverGone;
        }
        if let Some(errors) = r.errors.take() {
            break StreamEnd::ErrorMessage(errors);
        }
    };
    (end, r.delivered)
}

/// The API's error text from an error response body: `title: detail` (plus the
/// connection issue or reason when given), or the start of a non-JSON body.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        let one_line: String = text
            .chars()
            .take(200)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Some(one_line);
    };
    let first_error = v.get("errors").and_then(|e| e.get(0));
    let field = |name: &str| {
        v.get(name)
            .or_else(|| first_error.and_then(|e| e.get(name)))
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
    };
    let mut parts: Vec<&str> = Vec::new();
    for name in ["title", "detail", "message"] {
        if let Some(s) = field(name)
            && !parts.contains(&s)
        {
            parts.push(s);
        }
    }
    let mut out = parts.join(": ");
    for name in ["connection_issue", "reason"] {
        if let Some(s) = field(name) {
            out.push_str(&format!(" [{name}: {s}]"));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an error response, within `timeout`.
async fn read_error_body(resp: reqwest::Response, timeout: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = resp.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            let room = MAX_ERROR_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    body
}

/// The rate-limit headers of a response, for logs.
fn rate_limit_headers(h: &HeaderMap) -> String {
    [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
    ]
    .iter()
    .filter_map(|name| {
        let v = h.get(*name)?.to_str().ok()?;
        Some(format!("{name}={v}"))
    })
    .collect::<Vec<_>>()
    .join(" ")
}

/// Sends the request; a non-200 answer becomes an [`Ending`] with the API's text.
async fn connect(
    client: &reqwest::Client,
    token: &BearerToken,
    url: &Url,
    config: &StreamConfig,
) -> Result<reqwest::Response, (Ending, String)> {
    let req = token
        .authorize(client.get(url.clone()))
        .header(ACCEPT, "application/json");
    let timeout = config.header_timeout();
    let resp = match tokio::time::timeout(timeout, req.send()).await {
        Err(_) => {
            return Err((Ending::Network, format!("no response within {timeout:?}")));
        }
        Ok(Err(e)) => return Err((Ending::Network, error_chain(&e))),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status();
    if status == reqwest::StatusCode::OK {
        return Ok(resp);
    }
    let limits = rate_limit_headers(resp.headers());
    let detail = error_detail(&read_error_body(resp, timeout).await);
    let text = format!(
        "HTTP {}{}{}",
        status.as_u16(),
        detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default(),
        if limits.is_empty() {
            String::new()
        } else {
            format!(" ({limits})")
        }
    );
    Err((
        Ending::Status {
            status: status.as_u16(),
            detail,
        },
        text,
    ))
}

// ---------------------------------------------------------------------------
// The loop.

/// Keeps one stream open: see the module docs.
pub struct Streamer {
    client: reqwest::Client,
    token: BearerToken,
    config: StreamConfig,
    counters: StreamCounters,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Streamer {
    /// Validates `config` and builds the HTTP client.
    pub fn new(config: StreamConfig, token: BearerToken) -> Result<Self, StreamError> {
        config.validate()?;
        let client = http_client(config.connect_timeout)
            .map_err(|e| StreamError::Client(error_chain(&e)))?;
        Ok(Streamer {
            client,
            token,
            config,
            counters: StreamCounters::default(),
            wake: Arc::new(|| {}),
        })
    }

    /// Counts into these counters (e.g. a component's metrics).
    pub fn with_counters(mut self, counters: StreamCounters) -> Self {
        self.counters = counters;
        self
    }

    /// Called after every batch handed over (e.g. to wake a spout).
    pub fn with_wake(mut self, wake: impl Fn() + Send + Sync + 'static) -> Self {
        self.wake = Arc::new(wake);
        self
    }

    pub fn counters(&self) -> &StreamCounters {
        &self.counters
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Streams tweets into `tx` until `tx`'s receiver is dropped (`Ok`) or an error that
    /// retrying cannot fix (`Err`: 401, 403, 409, other 4xx).
    pub async fn run(&self, tx: mpsc::Sender<Vec<Tweet>>) -> Result<(), StreamError> {
        let mut policy = ReconnectPolicy::new(self.config.reconnect, self.config.endpoint);
        let mut established = false;
        for attempt in 1u64.. {
            let backfill = (established && self.config.backfill_minutes > 0)
                .then_some(self.config.backfill_minutes);
            let url = stream_url(&self.config.base_url, self.config.endpoint, backfill)?;
            let ending = match self.attempt(&url, attempt, &tx).await {
                Attempt::Streamed { delivered } => {
                    established = true;
                    Ending::Dropped { delivered }
                }
                Attempt::Failed(ending) => ending,
                Attempt::ReceiverGone => return Ok(()),
            };
            match policy.on_end(&ending) {
                Decision::Fatal(message) => {
                    return Err(self.fatal(&url, attempt, &ending, message));
                }
                Decision::Reconnect { wait, kind } => {
                    if !self.wait(&url, wait, kind, &tx).await {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// One connection attempt, streamed to its end.
    async fn attempt(&self, url: &Url, attempt: u64, tx: &mpsc::Sender<Vec<Tweet>>) -> Attempt {
        let resp = match connect(&self.client, &self.token, url, &self.config).await {
            Ok(resp) => resp,
            Err((ending, text)) => {
                bump(&self.counters.connect_errors);
                tracing::warn!(%url, attempt, "stream connection failed: {text}");
                return Attempt::Failed(ending);
            }
        };
        bump(&self.counters.connects);
        tracing::info!(%url, attempt, endpoint = self.config.endpoint.name(), "stream connected");
        let url_text = url.as_str();
        let (end, delivered) = read_body(
            resp.bytes_stream(),
            &self.config,
            url_text,
            tx,
            &self.counters,
            &*self.wake,
        )
        .await;
        if matches!(end, StreamEnd::ReceiverGone) {
            return Attempt::ReceiverGone;
        }
        bump(&self.counters.disconnects);
        self.log_end(url_text, attempt, &end);
        Attempt::Streamed { delivered }
    }

    fn log_end(&self, url: &str, attempt: u64, end: &StreamEnd) {
        match end {
            StreamEnd::Closed => tracing::warn!(%url, attempt, "the server closed the stream"),
            StreamEnd::ReadError(e) => tracing::warn!(%url, attempt, "stream read error: {e}"),
            StreamEnd::Stalled(t) => {
                bump(&self.counters.stalls);
                tracing::warn!(%url, attempt, "stream stalled: no data or keep-alive for {t:?}; reconnecting");
            }
            StreamEnd::ErrorMessage(errors) => log_stream_errors(url, errors),
            StreamEnd::ReceiverGone => {}
        }
    }

    /// Sleeps `wait` (counted); `false` if the receiver went away meanwhile.
    async fn wait(
        &self,
        url: &Url,
        wait: Duration,
        kind: WaitKind,
        tx: &mpsc::Sender<Vec<Tweet>>,
    ) -> bool {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.counters
            .reconnect_waits_ms
            .fetch_add(ms, Ordering::Relaxed);
        if wait.is_zero() {
            return !tx.is_closed();
        }
        tracing::info!(%url, backoff = ?kind, "reconnecting in {wait:?}");
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = tx.closed() => false,
        }
    }

    fn fatal(&self, url: &Url, attempt: u64, ending: &Ending, message: String) -> StreamError {
        let status = match ending {
            Ending::Status { status, .. } => Some(*status),
            _ => None,
        };
        let message = match status {
            Some(401 | 403) => format!("{message} (token from ${})", self.token.source()),
            _ => message,
        };
        StreamError::Fatal {
            url: url.to_string(),
            status,
            attempt,
            message,
        }
    }
}

/// How one attempt went.
enum Attempt {
    /// Connected (200) and streamed until the connection ended.
    Streamed {
        delivered: bool,
    },
    /// No stream: a network error or a non-200 status.
    Failed(Ending),
    ReceiverGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |p| {
                out.push(match p {
                    Piece::Line(l) => format!("L:{}", String::from_utf8_lossy(l)),
                    Piece::Oversized(n) => format!("O:{n}"),
                })
            });
        }
        out
    }

    #[test]
    fn splits_on_newlines_strips_cr_and_keeps_keepalives() {
        assert_eq!(
            pieces(100, &[b"\r\n{\"a\":1}\r\n\r\n{\"b\"", b":2}\r", b"\n\r\n"]),
            ["L:", "L:{\"a\":1}", "L:", "L:{\"b\":2}", "L:"]
        );
        // Byte by byte gives the same.
        let body = b"one\r\ntwo\n\r\nthree\r\n";
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(pieces(100, &bytes), ["L:one", "L:two", "L:", "L:three"]);
        // A partial last line is held, not emitted.
        assert_eq!(pieces(100, &[b"done\r\npart"]), ["L:done"]);
    }

    #[test]
    fn oversized_lines_are_skipped_without_buffering() {
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        let mut on = |p: Piece<'_>| {
            out.push(match p {
                Piece::Line(l) => format!("L:{}", String::from_utf8_lossy(l)),
                Piece::Oversized(n) => format!("O:{n}"),
            })
        };
        s.feed(b"12345678\r\n", &mut on);
        s.feed(b"123456789", &mut on);
        s.feed(&[b'x'; 10_000], &mut on);
        assert_eq!(s.pending(), 0, "an oversized line is not held");
        s.feed(b"xx\r\nok\r\n", &mut on);
        s.feed(b"123456789\r\n", &mut on);
        assert_eq!(out, ["L:12345678", "O:10011", "L:ok", "O:9"]);
        // Exactly at the limit with the CR arriving separately.
        assert_eq!(pieces(3, &[b"abc", b"\r", b"\n"]), ["L:abc"]);
        assert_eq!(pieces(3, &[b"abcd", b"\r\n"]), ["O:4"]);
    }

    #[test]
    fn urls_carry_the_fields_and_backfill_only_when_asked() {
        let u = stream_url("https://api.x.com", Endpoint::Filtered, None).unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.x.com/2/tweets/search/stream?tweet.fields=created_at,lang,entities,author_id&expansions=author_id&user.fields=username"
        );
        let u = stream_url("http://127.0.0.1:8080/prefix/", Endpoint::Sample, Some(3)).unwrap();
        assert_eq!(u.path(), "/prefix/2/tweets/sample/stream");
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            q,
            [
                ("tweet.fields", TWEET_FIELDS),
                ("expansions", "author_id"),
                ("user.fields", "username"),
                ("backfill_minutes", "3")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn bad_base_urls_are_refused_without_echoing_credentials() {
        for (url, why) in [
            ("not a url", "invalid base_url"),
            ("ftp://example.org", "http or https"),
            ("https://example.org?x=1", "query"),
        ] {
            let e = stream_url(url, Endpoint::Filtered, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        let e = stream_url("https://user:hunter2@example.org", Endpoint::Filtered, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("credentials"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn config_validation() {
        assert!(StreamConfig::default().validate().is_ok());
        let c = StreamConfig {
            backfill_minutes: 6,
            ..StreamConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("0 to 5"));
        let c = StreamConfig {
            stall_timeout: Duration::ZERO,
            ..StreamConfig::default()
        };
        assert!(c.validate().is_err());
        let c = StreamConfig {
            reconnect: PolicyConfig {
                http_initial: Duration::ZERO,
                ..PolicyConfig::documented()
            },
            ..StreamConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("http_initial")
        );
    }

    #[test]
    fn error_details_from_the_example_bodies() {
        let d = |s: &str| error_detail(s.as_bytes());
        assert_eq!(
            d(r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#)
                .as_deref(),
            Some("Unauthorized")
        );
        let forbidden = d(r#"{"client_id":"1","detail":"you must use keys and tokens from a Twitter developer App that is attached to a Project.","title":"Client Forbidden","reason":"client-not-enrolled"}"#).unwrap();
        assert!(
            forbidden.starts_with("Client Forbidden: you must use keys"),
            "{forbidden}"
        );
        assert!(
            forbidden.ends_with("[reason: client-not-enrolled]"),
            "{forbidden}"
        );
        assert_eq!(
            d(r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections"}"#).as_deref(),
            Some("ConnectionException: This stream is currently at the maximum allowed connection limit. [connection_issue: TooManyConnections]")
        );
        assert_eq!(
            d(r#"{"errors":[{"message":"Invalid tweet.fields"}]}"#).as_deref(),
            Some("Invalid tweet.fields")
        );
        assert_eq!(
            d("Bad gateway\n<html>").as_deref(),
            Some("Bad gateway <html>")
        );
        assert_eq!(d("  "), None);
        assert_eq!(d("{}"), None);
    }

    #[test]
    fn counters_by_name() {
        let c = StreamCounters::default();
        bump(&c.stalls);
        let snap = c.snapshot();
        assert_eq!(snap.len(), StreamCounters::NAMES.len());
        assert!(snap.contains(&("stalls", 1)));
        let mut names = Vec::new();
        StreamCounters::with(|n| {
            names.push(n.to_string());
            Arc::default()
        });
        assert_eq!(names, StreamCounters::NAMES);
    }

    type Chunk = Result<Bytes, std::io::Error>;

    fn body(parts: &[&str]) -> impl Stream<Item = Chunk> + use<> {
        let parts: Vec<Chunk> = parts
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p.as_bytes())))
            .collect();
        futures::stream::iter(parts)
    }

    const TWEET: &str = r#"{"data":{"id":"1","text":"hi #Rust","author_id":"7"},"includes":{"users":[{"id":"7","username":"ann"}]},"matching_rules":[{"id":"9","tag":"rust"}]}"#;
    const OP_DISCONNECT: &str = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;

    async fn read(
        parts: impl Stream<Item = Chunk>,
        config: &StreamConfig,
    ) -> (StreamEnd, bool, Vec<Tweet>, StreamCounters) {
        let (tx, mut rx) = mpsc::channel(16);
        let counters = StreamCounters::default();
        let (end, delivered) =
            read_body(parts, config, "http://test", &tx, &counters, &|| {}).await;
        drop(tx);
        let mut tweets = Vec::new();
        while let Some(b) = rx.recv().await {
            tweets.extend(b);
        }
        (end, delivered, tweets, counters)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_body_is_read_into_tweets_and_counted() {
        rt().block_on(async {
            let line = format!("{TWEET}\r\n");
            let half = line.len() / 2;
            let parts = body(&[
                "\r\n",
                &line[..half],
                &line[half..],
                "\r\nnot json\r\n{\"limit\":{\"track\":3}}\r\n{\"what\":1}\r\n",
                &line,
            ]);
            let (end, delivered, tweets, c) = read(parts, &StreamConfig::default()).await;
            assert!(matches!(end, StreamEnd::Closed), "{end:?}");
            assert!(delivered);
            assert_eq!(tweets.len(), 2);
            assert_eq!(tweets[0].author.as_deref(), Some("ann"));
            assert_eq!(tweets[0].rule_tags, ["rust"]);
            let snap = c.snapshot();
            for (name, want) in [
                ("keepalives", 2),
                ("malformed", 1),
                ("notices", 1),
                ("unknown_messages", 1),
            ] {
                assert!(snap.contains(&(name, want)), "{name}: {snap:?}");
            }
        });
    }

    #[test]
    fn an_error_message_ends_the_connection_after_handing_over_what_came_before() {
        rt().block_on(async {
            let parts = body(&[&format!("{TWEET}\r\n{OP_DISCONNECT}\r\n{TWEET}\r\n")]);
            let (end, delivered, tweets, c) = read(parts, &StreamConfig::default()).await;
            match end {
                StreamEnd::ErrorMessage(e) => assert_eq!(e[0].title, "operational-disconnect"),
                other => panic!("{other:?}"),
            }
            assert!(delivered);
            assert_eq!(tweets.len(), 1, "the tweet after the error is ignored");
            assert!(c.snapshot().contains(&("stream_errors", 1)));
            // Only an error message: nothing delivered.
            let (_, delivered, _, _) = read(
                body(&[&format!("{OP_DISCONNECT}\r\n")]),
                &StreamConfig::default(),
            )
            .await;
            assert!(!delivered);
        });
    }

    #[test]
    fn silence_longer_than_the_stall_timeout_ends_the_connection() {
        rt().block_on(async {
            let config = StreamConfig {
                stall_timeout: Duration::from_millis(50),
                ..StreamConfig::default()
            };
            let parts = body(&["\r\n"]).chain(futures::stream::pending());
            let started = std::time::Instant::now();
            let (end, delivered, _, c) = read(parts, &config).await;
            assert!(matches!(end, StreamEnd::Stalled(_)), "{end:?}");
            assert!(delivered, "the keep-alive counts");
            assert!(started.elapsed() >= Duration::from_millis(50));
            assert!(c.snapshot().contains(&("keepalives", 1)));
        });
    }

    #[test]
    fn a_dropped_receiver_stops_the_read() {
        rt().block_on(async {
            let (tx, rx) = mpsc::channel(1);
            drop(rx);
            let counters = StreamCounters::default();
            let parts = body(&["\r\n"]).chain(futures::stream::pending());
            let (end, _) =
                read_body(parts, &StreamConfig::default(), "u", &tx, &counters, &|| {}).await;
            assert!(matches!(end, StreamEnd::ReceiverGone), "{end:?}");
        });
    }

    /// Fuzz properties (see `crate::fuzz_support`): a body of tweets, keep-alives, notices,
    /// unknown and malformed messages, over-long lines and error objects, cut into chunks
    /// anywhere, is read into exactly the tweets before the first error object, with every
    /// other line counted once; any bytes at all end the read without a panic.
    mod fuzz {
        use super::*;
        use crate::fuzz_support::{config, framing_bytes};
        use proptest::prelude::*;

        const MAX: usize = 512;

        fn line() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                3 => Just(Vec::new()),
                4 => Just(TWEET.as_bytes().to_vec()),
                1 => Just(OP_DISCONNECT.as_bytes().to_vec()),
                1 => Just(br#"{"limit":{"track":3}}"#.to_vec()),
                1 => Just(br#"{"what":1}"#.to_vec()),
                1 => Just(b"  \t ".to_vec()),
                2 => framing_bytes(60).prop_map(|mut b| {
                    b.retain(|&c| c != b'\n');
                    b
                }),
                1 => (MAX + 1..3 * MAX).prop_map(|n| vec![b'{'; n]),
                1 => Just(vec![b'x'; MAX]),
            ]
        }

        /// What reading `lines` must give: tweets, keep-alives, notices, unknown,
        /// malformed, error messages.
        fn expected(lines: &[Vec<u8>]) -> [u64; 6] {
            let mut c = [0u64; 6];
            for l in lines {
                let i = if l.len() > MAX {
                    4
                } else if l.is_empty() {
                    1
                } else {
                    match parse_line(l) {
                        Ok(StreamMessage::Tweet(_)) => 0,
                        Ok(StreamMessage::KeepAlive) => 1,
                        Ok(StreamMessage::Notice(_)) => 2,
                        Ok(StreamMessage::Unknown) => 3,
                        Err(_) => 4,
                        Ok(StreamMessage::Errors(_)) => 5,
                    }
                };
                c[i] += 1;
                if i == 5 {
                    break;
                }
            }
            c
        }

        fn read_chunks(body: &[u8], sizes: &[usize]) -> (StreamEnd, Vec<Tweet>, StreamCounters) {
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut rest = body;
            let mut k = 0;
            while !rest.is_empty() {
                let n = sizes[k % sizes.len()].min(rest.len());
                k += 1;
                chunks.push(Ok(Bytes::copy_from_slice(&rest[..n])));
                rest = &rest[n..];
            }
            let config = StreamConfig {
                max_line_bytes: MAX,
                ..StreamConfig::default()
            };
            rt().block_on(async {
                let (tx, mut rx) = mpsc::channel(chunks.len() + 1);
                let counters = StreamCounters::default();
                let (end, _) = read_body(
                    futures::stream::iter(chunks),
                    &config,
                    "http://test",
                    &tx,
                    &counters,
                    &|| {},
                )
                .await;
                drop(tx);
                let mut tweets = Vec::new();
                while let Some(b) = rx.recv().await {
                    tweets.extend(b);
                }
                (end, tweets, counters)
            })
        }

        fn count(c: &StreamCounters, name: &str) -> u64 {
            c.snapshot()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| v)
        }

        proptest! {
            #![proptest_config(config(128))]

            #[test]
            fn fuzz_stream_body_any_chunking(
                lines in prop::collection::vec(line(), 0..24),
                sizes in prop::collection::vec(prop_oneof![1usize..8, 8usize..600], 1..6),
            ) {
                let mut body = Vec::new();
                for l in &lines {
                    body.extend_from_slice(l);
                    body.extend_from_slice(b"\r\n");
                }
                let (end, tweets, c) = read_chunks(&body, &sizes);
                let [t, keepalives, notices, unknown, malformed, errors] = expected(&lines);
                prop_assert_eq!(tweets.len() as u64, t);
                prop_assert_eq!(count(&c, "keepalives"), keepalives);
                prop_assert_eq!(count(&c, "notices"), notices);
                prop_assert_eq!(count(&c, "unknown_messages"), unknown);
                prop_assert_eq!(count(&c, "malformed"), malformed);
                prop_assert_eq!(count(&c, "stream_errors"), errors);
                match end {
                    StreamEnd::ErrorMessage(_) => prop_assert_eq!(errors, 1),
                    StreamEnd::Closed => prop_assert_eq!(errors, 0),
                    other => prop_assert!(false, "ended with {other:?}"),
                }
            }

            #[test]
            fn fuzz_stream_body_any_bytes(
                body in framing_bytes(2_000),
                sizes in prop::collection::vec(1usize..300, 1..6),
            ) {
                let (end, _, _) = read_chunks(&body, &sizes);
                prop_assert!(
                    matches!(end, StreamEnd::Closed | StreamEnd::ErrorMessage(_)),
                    "ended with {end:?}"
                );
            }

            /// An error response body of any bytes gives a short message or none.
            #[test]
            fn fuzz_error_detail(body in framing_bytes(400)) {
                if let Some(d) = error_detail(&body) {
                    prop_assert!(!d.is_empty());
                }
            }
        }
    }
}
