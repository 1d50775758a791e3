//! A mock of the X API v2 streaming and rules endpoints for the integration tests
//! (actix-web on 127.0.0.1, one worker, on its own thread; stopped on drop).
//!
//! ```ignore
//! use crate::support::twitter_mock::{MockX, Script, set_token_env, tweet_line};
//!
//! let mock = MockX::start();                    // token: twitter_mock::TOKEN
//! mock.add_rule("#rustlang", "rust posts");     // the filtered stream needs a rule (else 409)
//! mock.push(Script::serve_then_close(vec![tweet_line(1, &["rust posts"])]));
//! mock.push(Script::status(503));               // the next connection gets a 503
//! set_token_env();                              // TOKEN_ENV holds TOKEN from now on
//! // spout options: base_url = mock.base_url(), token_env = TOKEN_ENV
//! let reqs = mock.wait_for_stream_requests(2, Duration::from_secs(5));
//! assert_eq!(reqs[0].param("expansions"), Some("author_id"));
//! ```
//!
//! Endpoints:
//! - `GET /2/tweets/search/stream`, `GET /2/tweets/sample/stream`: checks
//!   `Authorization: Bearer <token>` (401 with the documented JSON body otherwise); the
//!   filtered stream answers 409 while no rule exists (unless `set_require_rules(false)`).
//!   Then each connection takes the next [`Script`] from a queue: a streamed body of
//!   `\r\n`-terminated lines (tweets, keep-alives, pauses, raw bytes) ending in a close,
//!   an abort (connection reset mid-body), a stall (silence until the client leaves) or
//!   endless keep-alives; or an HTTP status with a body (the documented example bodies
//!   for 401/403/409/429/503 via [`Script::status`]). An empty queue serves the idle
//!   script ([`MockX::set_idle`]; default: a keep-alive every 100 ms, forever).
//! - `GET /2/tweets/search/stream/rules` (`?ids=` optional), `POST
//!   /2/tweets/search/stream/rules` (`?dry_run=true` optional) with `{"add":[…]}` or
//!   `{"delete":{"ids":[…]}}` / `{"delete":{"values":[…]}}`: in-memory rules, `meta.sent`,
//!   `meta.result_count`, `meta.summary`, `DuplicateRule` / `UnprocessableEntity` errors
//!   like the examples (an add with an invalid rule creates nothing). Scriptable with
//!   [`MockX::push_rules_status`].
//!
//! Every request is recorded ([`Request`]: method, path, query, decoded parameters,
//! headers with the `Authorization` value redacted, whether auth matched, body, time,
//! status answered); every tweet line written is recorded in [`MockX::served`].
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use serde_json::{Value, json};

use squall::tweet::wire::{Tweet, to_v2_json};

/// The bearer token the mock accepts unless started with another.
pub const TOKEN: &str = "mock-token-Zx9-never-print-me";

/// The environment variable the tests' twitter spouts read [`TOKEN`] from (their
/// `token_env`), set by [`set_token_env`]; the `squall` processes the tests start inherit
/// it.
pub const TOKEN_ENV: &str = "SQUALL_TEST_TWITTER_BEARER_TOKEN";

/// Sets [`TOKEN_ENV`] to [`TOKEN`], once per process; call it before anything reads it.
///
/// Every integration test runs in this one process, on parallel threads, and setting a
/// variable is unsound while another thread reads the environment through libc (std's
/// own readers, `std::env::var` and `Command::spawn`, take std's environment lock). So
/// this is the only place the tests write the environment, and it writes one variable
/// once: glibc then copies the environment into a newly allocated array and frees
/// nothing that a concurrent `getenv` could be reading.
pub fn set_token_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the one write to the environment in this process; see above.
        unsafe { std::env::set_var(TOKEN_ENV, TOKEN) };
    });
}

/// Error bodies as the X API sends them (its documented examples).
pub const BODY_401: &str =
    r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#;
pub const BODY_403: &str = r#"{"client_id":"12345678","detail":"When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.","registration_url":"https://developer.twitter.com/en/docs/projects/overview","title":"Client Forbidden","required_enrollment":"Appropriate Level of API Access","reason":"client-not-enrolled","type":"https://api.twitter.com/2/problems/client-forbidden"}"#;
pub const BODY_429_TOO_MANY_CONNECTIONS: &str = r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.twitter.com/2/problems/streaming-connection"}"#;
pub const BODY_429_RATE_LIMITED: &str = r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#;
pub const BODY_429_USAGE_CAPPED: &str = r#"{"title":"UsageCapExceeded","detail":"Usage cap exceeded: Monthly product cap","type":"https://api.twitter.com/2/problems/usage-capped","period":"Monthly","scope":"Product"}"#;
/// Not among the examples: the shape of the API's problem bodies.
pub const BODY_409_NO_RULES: &str = r#"{"title":"ConnectionException","detail":"You must add rules to the stream before connecting.","type":"https://api.twitter.com/2/problems/streaming-connection","status":409}"#;
/// Not among the examples: the shape of the API's problem bodies.
pub const BODY_503: &str = r#"{"title":"Service Unavailable","detail":"Service Unavailable","type":"about:blank","status":503}"#;
/// The in-stream error message of an operational disconnect.
pub const OPERATIONAL_DISCONNECT: &str = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;

/// One step of a streamed body.
#[derive(Clone, Debug)]
pub enum Step {
    /// A JSON line; `\r\n` is added. Tweet lines are recorded in `served`.
    Line(String),
    /// A bare `\r\n`.
    KeepAlive,
    /// Wait before the next step.
    Pause(Duration),
    /// Bytes written as they are (partial lines, broken JSON, …).
    Raw(Vec<u8>),
}

/// How a streamed body ends.
#[derive(Clone, Debug)]
pub enum End {
    /// The body ends cleanly (the server closes the stream).
    Close,
    /// The connection is reset mid-body (after a short pause that flushes what was
    /// written).
    Abort,
    /// Nothing more is sent, not even keep-alives, until the client goes away.
    Stall,
    /// A keep-alive every this long, until the client goes away.
    KeepAlives(Duration),
}

/// What one streaming connection gets.
#[derive(Clone, Debug)]
pub enum Script {
    /// `200 OK` and a chunked body.
    Stream { steps: Vec<Step>, end: End },
    /// An error status with a JSON body.
    Status { status: u16, body: String },
}

impl Script {
    /// The lines (as [`Step::Line`]s) then `end`.
    pub fn lines(lines: Vec<String>, end: End) -> Script {
        Script::Stream {
            steps: lines.into_iter().map(Step::Line).collect(),
            end,
        }
    }

    /// Serve these lines, then close the stream.
    pub fn serve_then_close(lines: Vec<String>) -> Script {
        Script::lines(lines, End::Close)
    }

    /// Serve these lines, then reset the connection.
    pub fn serve_then_abort(lines: Vec<String>) -> Script {
        Script::lines(lines, End::Abort)
    }

    /// Serve these lines, then go silent (a stall).
    pub fn serve_then_stall(lines: Vec<String>) -> Script {
        Script::lines(lines, End::Stall)
    }

    /// Serve these lines, then the operational-disconnect error message, then close.
    pub fn serve_then_disconnect(mut lines: Vec<String>) -> Script {
        lines.push(OPERATIONAL_DISCONNECT.to_string());
        Script::lines(lines, End::Close)
    }

    /// Serve these lines, then a keep-alive every `every`, forever.
    pub fn serve_then_hold(lines: Vec<String>, every: Duration) -> Script {
        Script::lines(lines, End::KeepAlives(every))
    }

    /// An error answer with the documented body for 401, 403, 409, 429 (too many
    /// connections) and 503; a generic problem body for other statuses.
    pub fn status(status: u16) -> Script {
        let body = match status {
            401 => BODY_401.to_string(),
            403 => BODY_403.to_string(),
            409 => BODY_409_NO_RULES.to_string(),
            429 => BODY_429_TOO_MANY_CONNECTIONS.to_string(),
            503 => BODY_503.to_string(),
            s => json!({"title": format!("Error {s}"), "detail": format!("HTTP {s}"), "type": "about:blank", "status": s}).to_string(),
        };
        Script::Status { status, body }
    }

    /// An error answer with this body.
    pub fn status_with(status: u16, body: &str) -> Script {
        Script::Status {
            status,
            body: body.to_string(),
        }
    }
}

/// A v2 stream line of tweet `id` (text with two hashtags, author `user{id % 5}`,
/// `matching_rules` with these tags).
pub fn tweet_line(id: u64, rule_tags: &[&str]) -> String {
    to_v2_json(&tweet(id, rule_tags))
}

/// The tweet [`tweet_line`] renders.
pub fn tweet(id: u64, rule_tags: &[&str]) -> Tweet {
    Tweet {
        id: format!("{}", 1_900_000_000_000_000_000 + id),
        text: format!("mock tweet {id} about #RustLang and #tag{}", id % 3),
        author_id: Some(format!("{}", 1_000_000_000_000_000_000 + id % 5)),
        author: Some(format!("user{}", id % 5)),
        created_at: Some("2024-05-01T12:00:03.000Z".into()),
        lang: Some("en".into()),
        hashtags: vec!["rustlang".into(), format!("tag{}", id % 3)],
        rule_tags: rule_tags.iter().map(|s| s.to_string()).collect(),
    }
}

/// The tweet id of a stream line (`data.id`), if it is a tweet.
pub fn tweet_id(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    v.get("data")?.get("id")?.as_str().map(str::to_string)
}

/// Whether the `Authorization` header carried the expected token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Ok,
    Wrong,
    Missing,
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The decoded query parameters, in order.
    pub params: Vec<(String, String)>,
    /// Every header; the `Authorization` value is replaced by `<redacted>`.
    pub headers: Vec<(String, String)>,
    pub auth: Auth,
    /// The request body (rules POST).
    pub body: String,
    /// The status answered.
    pub status: u16,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A streaming endpoint (not the rules).
    pub fn is_stream(&self) -> bool {
        self.path.ends_with("/stream")
    }
}

/// A stored rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub value: String,
    pub tag: Option<String>,
}

/// A tweet line written to a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// 1-based index of the streaming connection (`200 OK` answers only).
    pub connection: usize,
    pub tweet_id: String,
}

struct State {
    scripts: VecDeque<Script>,
    idle: Script,
    requests: Vec<Request>,
    served: Vec<Served>,
    rules: Vec<Rule>,
    next_rule_id: u64,
    require_rules: bool,
    rules_scripts: VecDeque<Script>,
    connections: usize,
}

struct Shared {
    token: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running mock (see the module docs). Stops on drop.
pub struct MockX {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl MockX {
    /// Starts on a free port, accepting [`TOKEN`].
    pub fn start() -> MockX {
        MockX::start_with_token(TOKEN)
    }

    /// Starts on a free port, accepting `token`.
    pub fn start_with_token(token: &str) -> MockX {
        let shared = Arc::new(Shared {
            token: token.to_string(),
            state: Mutex::new(State {
                scripts: VecDeque::new(),
                idle: Script::serve_then_hold(Vec::new(), Duration::from_millis(100)),
                requests: Vec::new(),
                served: Vec::new(),
                rules: Vec::new(),
                next_rule_id: 1_800_000_000_000_000_001,
                require_rules: true,
                rules_scripts: VecDeque::new(),
                connections: 0,
            }),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let data = web::Data::new(shared.clone());
        let thread = std::thread::Builder::new()
            .name("twitter-mock".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .route("/2/tweets/search/stream", web::get().to(filtered_stream))
                            .route("/2/tweets/sample/stream", web::get().to(sample_stream))
                            .route("/2/tweets/search/stream/rules", web::get().to(get_rules))
                            .route("/2/tweets/search/stream/rules", web::post().to(post_rules))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .bind(("127.0.0.1", 0))
                    .expect("bind the mock");
                    let addr = server.addrs()[0];
                    let server = server.run();
                    tx.send((addr, server.handle()))
                        .expect("report the address");
                    let _ = server.await;
                });
            })
            .expect("spawn the mock thread");
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the mock did not start");
        MockX {
            addr,
            shared,
            handle,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`: the spout's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues the script of a future streaming connection.
    pub fn push(&self, script: Script) {
        self.shared.lock().scripts.push_back(script);
    }

    /// Scripts not used yet.
    pub fn scripts_left(&self) -> usize {
        self.shared.lock().scripts.len()
    }

    /// What connections get once the queue is empty.
    pub fn set_idle(&self, script: Script) {
        self.shared.lock().idle = script;
    }

    /// Whether the filtered stream answers 409 while there are no rules (default: yes).
    pub fn set_require_rules(&self, on: bool) {
        self.shared.lock().require_rules = on;
    }

    /// Adds a rule directly; returns its id.
    pub fn add_rule(&self, value: &str, tag: &str) -> String {
        let mut st = self.shared.lock();
        let id = st.next_rule_id.to_string();
        st.next_rule_id += 1;
        st.rules.push(Rule {
            id: id.clone(),
            value: value.to_string(),
            tag: (!tag.is_empty()).then(|| tag.to_string()),
        });
        id
    }

    pub fn rules(&self) -> Vec<Rule> {
        self.shared.lock().rules.clone()
    }

    /// The next rules request (GET or POST) is answered with this `Script::Status`.
    pub fn push_rules_status(&self, script: Script) {
        self.shared.lock().rules_scripts.push_back(script);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The streaming requests so far.
    pub fn stream_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_stream)
            .collect()
    }

    /// Waits until at least `n` streaming requests arrived; panics after `timeout`.
    pub fn wait_for_stream_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let end = Instant::now() + timeout;
        loop {
            let reqs = self.stream_requests();
            if reqs.len() >= n {
                return reqs;
            }
            assert!(
                Instant::now() < end,
                "{} streaming requests within {timeout:?}, expected {n}: {:?}",
                reqs.len(),
                reqs.iter()
                    .map(|r| (r.path.as_str(), r.status))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every tweet line written, in order.
    pub fn served(&self) -> Vec<Served> {
        self.shared.lock().served.clone()
    }

    /// The ids of every tweet line written, in order.
    pub fn served_ids(&self) -> Vec<String> {
        self.served().into_iter().map(|s| s.tweet_id).collect()
    }

    /// Streaming connections answered `200 OK` so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }
}

impl Drop for MockX {
    fn drop(&mut self) {
        // Sends the stop at once; the future only waits for its completion.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Handlers.

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn check_auth(shared: &Shared, req: &HttpRequest) -> Auth {
    match req.headers().get("authorization") {
        None => Auth::Missing,
        Some(v) if v.as_bytes() == format!("Bearer {}", shared.token).as_bytes() => Auth::Ok,
        Some(_) => Auth::Wrong,
    }
}

fn record(shared: &Shared, req: &HttpRequest, auth: Auth, body: &str, status: u16) {
    let params = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let value = if k.as_str().eq_ignore_ascii_case("authorization") {
                "<redacted>".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (k.as_str().to_string(), value)
        })
        .collect();
    shared.lock().requests.push(Request {
        at: Instant::now(),
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        params,
        headers,
        auth,
        body: body.to_string(),
        status,
    });
}

fn rate_limit_headers(
    mut resp: actix_web::HttpResponseBuilder,
    remaining: u32,
) -> actix_web::HttpResponseBuilder {
    let reset = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() + 900)
        .unwrap_or(0);
    resp.insert_header(("x-rate-limit-limit", "50"))
        .insert_header(("x-rate-limit-remaining", remaining.to_string()))
        .insert_header(("x-rate-limit-reset", reset.to_string()));
    resp
}

fn json_response(status: u16, body: String) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let remaining = if status == 429 { 0 } else { 49 };
    rate_limit_headers(HttpResponse::build(code), remaining)
        .content_type("application/json")
        .body(body)
}

async fn filtered_stream(req: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    stream_endpoint(&req, &shared, true)
}

async fn sample_stream(req: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    stream_endpoint(&req, &shared, false)
}

/// Picks what this connection gets: 401, 409 (no rules), or the next script.
fn stream_endpoint(req: &HttpRequest, shared: &Arc<Shared>, filtered: bool) -> HttpResponse {
    let auth = check_auth(shared, req);
    if auth != Auth::Ok {
        record(shared, req, auth, "", 401);
        return json_response(401, BODY_401.into());
    }
    let (script, connection) = {
        let mut st = shared.lock();
        if filtered && st.require_rules && st.rules.is_empty() {
            (Script::status(409), 0)
        } else {
            let script = st.scripts.pop_front().unwrap_or_else(|| st.idle.clone());
            if matches!(script, Script::Stream { .. }) {
                st.connections += 1;
            }
            (script, st.connections)
        }
    };
    match script {
        Script::Status { status, body } => {
            record(shared, req, auth, "", status);
            json_response(status, body)
        }
        Script::Stream { steps, end } => {
            record(shared, req, auth, "", 200);
            let body = body_stream(shared.clone(), connection, steps, end);
            rate_limit_headers(HttpResponse::Ok(), 49)
                .content_type("application/json")
                .streaming(body)
        }
    }
}

type Chunk = Result<Bytes, actix_web::Error>;

/// The body of a scripted connection.
fn body_stream(
    shared: Arc<Shared>,
    connection: usize,
    steps: Vec<Step>,
    end: End,
) -> impl futures::Stream<Item = Chunk> {
    let state = (shared, VecDeque::from(steps), Some(end));
    futures::stream::unfold(state, move |(shared, mut steps, mut end)| async move {
        loop {
            if let Some(step) = steps.pop_front() {
                match step {
                    Step::Pause(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    Step::KeepAlive => {
                        return Some((Ok(Bytes::from_static(b"\r\n")), (shared, steps, end)));
                    }
                    Step::Raw(b) => return Some((Ok(Bytes::from(b)), (shared, steps, end))),
                    Step::Line(line) => {
                        if let Some(tweet_id) = tweet_id(&line) {
                            shared.lock().served.push(Served {
                                connection,
                                tweet_id,
                            });
                        }
                        let bytes = Bytes::from(format!("{line}\r\n"));
                        return Some((Ok(bytes), (shared, steps, end)));
                    }
                }
            }
            match end.take()? {
                End::Close => return None,
                End::Abort => {
                    // Let what was written reach the client, then reset.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let err = actix_web::error::ErrorInternalServerError("mock abort");
                    return Some((Err(err), (shared, steps, None)));
                }
                End::Stall => {
                    futures::future::pending::<()>().await;
                    return None;
                }
                End::KeepAlives(every) => {
                    tokio::time::sleep(every).await;
                    let bytes = Bytes::from_static(b"\r\n");
                    return Some((Ok(bytes), (shared, steps, Some(End::KeepAlives(every)))));
                }
            }
        }
    })
}

/// A scripted answer for the rules endpoints, if one is queued.
fn rules_script(shared: &Shared) -> Option<HttpResponse> {
    match shared.lock().rules_scripts.pop_front()? {
        Script::Status { status, body } => Some(json_response(status, body)),
        Script::Stream { .. } => None,
    }
}

fn rule_json(r: &Rule) -> Value {
    match &r.tag {
        Some(tag) => json!({"id": r.id, "value": r.value, "tag": tag}),
        None => json!({"id": r.id, "value": r.value}),
    }
}

async fn get_rules(req: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let auth = check_auth(&shared, &req);
    if auth != Auth::Ok {
        record(&shared, &req, auth, "", 401);
        return json_response(401, BODY_401.into());
    }
    if let Some(resp) = rules_script(&shared) {
        record(&shared, &req, auth, "", resp.status().as_u16());
        return resp;
    }
    record(&shared, &req, auth, "", 200);
    let wanted: Option<Vec<String>> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .ok()
            .and_then(|q| {
                q.iter()
                    .find(|(k, _)| k == "ids")
                    .map(|(_, v)| v.split(',').map(str::to_string).collect())
            });
    let rules: Vec<Value> = shared
        .lock()
        .rules
        .iter()
        .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&r.id)))
        .map(rule_json)
        .collect();
    let meta = json!({"sent": now_rfc3339(), "result_count": rules.len()});
    let body = if rules.is_empty() {
        json!({ "meta": meta })
    } else {
        json!({"data": rules, "meta": meta})
    };
    json_response(200, body.to_string())
}

/// Why a rule value is invalid (a simplified version of the API's checks).
fn invalid_rule(value: &str) -> Option<String> {
    let terms: Vec<&str> = value.split_whitespace().collect();
    if terms.is_empty() {
        return Some("Rules must not be empty".into());
    }
    if value.chars().count() > 1024 {
        return Some("Rules must be at most 1024 characters long".into());
    }
    if terms.iter().all(|t| t.starts_with('-')) {
        return Some("Rules must contain a non-negation term (at position 1)".into());
    }
    let open = value.matches('(').count();
    if open != value.matches(')').count() {
        return Some("Rules must have balanced parentheses".into());
    }
    None
}

async fn post_rules(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let text = String::from_utf8_lossy(&body).into_owned();
    let auth = check_auth(&shared, &req);
    if auth != Auth::Ok {
        record(&shared, &req, auth, &text, 401);
        return json_response(401, BODY_401.into());
    }
    if let Some(resp) = rules_script(&shared) {
        record(&shared, &req, auth, &text, resp.status().as_u16());
        return resp;
    }
    let dry_run = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.iter().any(|(k, v)| k == "dry_run" && v == "true"))
        .unwrap_or(false);
    let (status, answer) = match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("add").is_some() => (200, add_rules(&shared, &v["add"], dry_run)),
        Ok(v) if v.get("delete").is_some() => (200, delete_rules(&shared, &v["delete"], dry_run)),
        _ => (
            400,
            json!({
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
                "errors": [{"message": "the body must be {\"add\":[...]} or {\"delete\":{...}}"}]
            }),
        ),
    };
    record(&shared, &req, auth, &text, status);
    json_response(status, answer.to_string())
}

fn add_rules(shared: &Shared, add: &Value, dry_run: bool) -> Value {
    let asked: Vec<(String, Option<String>)> = add
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let value = r["value"].as_str().unwrap_or("").to_string();
                    let tag = r["tag"].as_str().map(str::to_string);
                    (value, tag)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut st = shared.lock();
    let mut errors = Vec::new();
    for (value, _) in &asked {
        if let Some(existing) = st.rules.iter().find(|r| &r.value == value) {
            errors.push(
                json!({"value": value, "id": existing.id, "title": "DuplicateRule",
                "type": "https://api.twitter.com/2/problems/duplicate-rules"}),
            );
        } else if let Some(why) = invalid_rule(value) {
            errors.push(
                json!({"value": value, "details": [why], "title": "UnprocessableEntity",
                "type": "https://api.twitter.com/2/problems/invalid-rules"}),
            );
        }
    }
    let invalid = errors.len();
    let valid = asked.len() - invalid;
    let mut summary =
        json!({"created": 0, "not_created": asked.len(), "valid": valid, "invalid": invalid});
    let mut out = json!({});
    if invalid == 0 {
        let mut created = Vec::new();
        for (value, tag) in asked {
            let rule = Rule {
                id: st.next_rule_id.to_string(),
                value,
                tag,
            };
            st.next_rule_id += 1;
            created.push(rule_json(&rule));
            if !dry_run {
                st.rules.push(rule);
            }
        }
        summary = json!({"created": created.len(), "not_created": 0, "valid": valid, "invalid": 0});
        if !created.is_empty() {
            out["data"] = Value::Array(created);
        }
    } else {
        out["errors"] = Value::Array(errors);
    }
    out["meta"] = json!({"sent": now_rfc3339(), "summary": summary});
    out
}

fn delete_rules(shared: &Shared, delete: &Value, dry_run: bool) -> Value {
    let list = |k: &str| -> Vec<String> {
        delete[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ids, values) = (list("ids"), list("values"));
    let mut st = shared.lock();
    let mut deleted = 0;
    let mut errors = Vec::new();
    for (key, by_id) in ids
        .iter()
        .map(|i| (i, true))
        .chain(values.iter().map(|v| (v, false)))
    {
        let pos = st
            .rules
            .iter()
            .position(|r| if by_id { &r.id == key } else { &r.value == key });
        match pos {
            Some(p) => {
                deleted += 1;
                if !dry_run {
                    st.rules.remove(p);
                }
            }
            None => errors.push(json!({"value": key, "title": "Not Found Error",
                "detail": format!("rule {key} does not exist"),
                "type": "https://api.twitter.com/2/problems/resource-not-found"})),
        }
    }
    let mut out = json!({"meta": {"sent": now_rfc3339(),
        "summary": {"deleted": deleted, "not_deleted": errors.len()}}});
    if !errors.is_empty() {
        out["errors"] = Value::Array(errors);
    }
    out
}
