//! `squall twitter rules …` end to end: the real binary against a local mock of the X API
//! v2 rules endpoints (`GET`/`POST /2/tweets/search/stream/rules`), written here with
//! actix-web. The mock checks the bearer token, keeps the rules in memory, and answers
//! like the API's documented examples: `meta.summary`, `errors[]` for duplicate and invalid
//! rules, `?dry_run=true`, 401/403/429 problem bodies, `meta.next_token` pages.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::support::cli::{Output, root, tail};

const PATH: &str = "/2/tweets/search/stream/rules";
const TOKEN_VAR: &str = "SQUALL_TEST_TWITTER_TOKEN";
const TOKEN: &str = "good-test-token-2b7f";
/// Gets a 403 client-forbidden answer.
const FORBIDDEN_TOKEN: &str = "forbidden-test-token-91c";
/// Gets a 429 answer with `x-rate-limit-reset`.
const LIMITED_TOKEN: &str = "limited-test-token-5e0";
const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The mock API.

#[derive(Debug, Clone, PartialEq, Eq)]
struct MockRule {
    id: String,
    value: String,
    tag: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<MockRule>,
    next_id: u64,
    /// Rules per `GET` page (`None`: all at once).
    page_size: Option<usize>,
    /// `(method, query string, user agent)` of every request that got past auth.
    requests: Vec<(String, String, String)>,
    /// Requests refused for their token.
    refused: usize,
}

type Shared = Arc<Mutex<State>>;

/// A running mock; stops its server when dropped.
struct Mock {
    addr: SocketAddr,
    state: Shared,
    handle: actix_web::dev::ServerHandle,
}

impl Mock {
    fn start() -> Mock {
        let state: Shared = Arc::new(Mutex::new(State {
            next_id: 1_800_000_000_000_000_001,
            ..State::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::new(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route(PATH, web::get().to(get_rules))
                        .route(PATH, web::post().to(post_rules))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("bind the mock");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle()))
                    .expect("report the address");
                server.await
            })
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("mock server started");
        Mock {
            addr,
            state,
            handle,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Puts a rule straight into the mock's store.
    fn seed(&self, value: &str, tag: Option<&str>) -> String {
        let mut s = self.state();
        let id = s.next_id.to_string();
        s.next_id += 1;
        s.rules.push(MockRule {
            id: id.clone(),
            value: value.to_string(),
            tag: tag.map(str::to_string),
        });
        id
    }

    fn values(&self) -> Vec<String> {
        self.state().rules.iter().map(|r| r.value.clone()).collect()
    }

    fn posts(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter(|(m, _, _)| m == "POST")
            .map(|(_, q, _)| q.clone())
            .collect()
    }

    /// `squall twitter rules ARGS --base-url <mock> --token-env TOKEN_VAR` with `TOKEN`.
    fn rules(&self, args: &[&str]) -> Output {
        self.rules_with_token(args, Some(TOKEN))
    }

    fn rules_with_token(&self, args: &[&str], token: Option<&str>) -> Output {
        let base = self.base_url();
        // The API options go right after the subcommand (so `-- VALUE` still works).
        let mut all = vec!["twitter", "rules"];
        all.extend_from_slice(&args[..1]);
        all.extend_from_slice(&["--base-url", &base, "--token-env", TOKEN_VAR]);
        all.extend_from_slice(&args[1..]);
        run(&all, token)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        // Sends the stop command at once; the server thread then ends on its own.
        drop(self.handle.stop(false));
    }
}

fn now() -> String {
    "2024-05-01T12:00:00.000Z".to_string()
}

/// The problem body of a refused token, or `None` when the token is good.
fn check_auth(req: &HttpRequest, state: &Shared) -> Option<HttpResponse> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let refused = match auth.strip_prefix("Bearer ") {
        Some(t) if t == TOKEN => None,
        Some(t) if t == FORBIDDEN_TOKEN => Some(HttpResponse::Forbidden().json(json!({
            "client_id": "12345678",
            "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
            "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
            "title": "Client Forbidden",
            "required_enrollment": "Appropriate Level of API Access",
            "reason": "client-not-enrolled",
            "type": "https://api.twitter.com/2/problems/client-forbidden"
        }))),
        Some(t) if t == LIMITED_TOKEN => Some(
            HttpResponse::TooManyRequests()
                .insert_header(("x-rate-limit-limit", "450"))
                .insert_header(("x-rate-limit-remaining", "0"))
                .insert_header(("x-rate-limit-reset", "4102444800"))
                .json(json!({"title": "Too Many Requests", "detail": "Too Many Requests",
                             "type": "about:blank", "status": 429})),
        ),
        _ => Some(HttpResponse::Unauthorized().json(json!({
            "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"
        }))),
    };
    let mut s = state.lock().unwrap();
    match refused {
        Some(r) => {
            s.refused += 1;
            Some(r)
        }
        None => {
            let ua = req
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            s.requests
                .push((req.method().to_string(), req.query_string().to_string(), ua));
            None
        }
    }
}

fn rule_json(r: &MockRule) -> Value {
    let mut v = json!({"id": r.id, "value": r.value});
    if let Some(t) = &r.tag {
        v["tag"] = json!(t);
    }
    v
}

async fn get_rules(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refused) = check_auth(&req, &state) {
        return refused;
    }
    let s = state.lock().unwrap();
    let start: usize = query
        .get("pagination_token")
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let size = s.page_size.unwrap_or(usize::MAX);
    let page: Vec<Value> = s
        .rules
        .iter()
        .skip(start)
        .take(size)
        .map(rule_json)
        .collect();
    let mut meta = json!({"sent": now(), "result_count": page.len()});
    if start.saturating_add(size) < s.rules.len() {
        meta["next_token"] = json!(format!("page-{}", start + size));
    }
    if page.is_empty() {
        HttpResponse::Ok().json(json!({ "meta": meta }))
    } else {
        HttpResponse::Ok().json(json!({ "data": page, "meta": meta }))
    }
}

fn invalid_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "errors": [{"parameters": {}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request"
    }))
}

async fn post_rules(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refused) = check_auth(&req, &state) {
        return refused;
    }
    let dry_run = match query.get("dry_run").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return invalid_request(&format!(
                "The `dry_run` query parameter value [{other}] is not one of [true,false]"
            ));
        }
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid_request("The request body is not valid JSON");
    };
    let mut s = state.lock().unwrap();
    if let Some(add) = body.get("add").and_then(Value::as_array) {
        let mut created: Vec<MockRule> = Vec::new();
        let mut errors = Vec::new();
        for r in add {
            let Some(value) = r.get("value").and_then(Value::as_str) else {
                return invalid_request("Each rule needs a `value`");
            };
            let tag = r.get("tag").and_then(Value::as_str).map(str::to_string);
            let terms: Vec<&str> = value.split_whitespace().collect();
            if terms.is_empty() || terms.iter().all(|t| t.starts_with('-')) {
                errors.push(json!({
                    "value": value,
                    "details": ["Rules must contain a non-negation term (at position 1)"],
                    "title": "UnprocessableEntity",
                    "type": "https://api.twitter.com/2/problems/invalid-rules"
                }));
            } else if let Some(existing) = s
                .rules
                .iter()
                .chain(created.iter())
                .find(|e| e.value == value)
            {
                errors.push(json!({
                    "value": value,
                    "id": existing.id,
                    "title": "DuplicateRule",
                    "type": "https://api.twitter.com/2/problems/duplicate-rules"
                }));
            } else {
                let id = (s.next_id + created.len() as u64).to_string();
                created.push(MockRule {
                    id,
                    value: value.to_string(),
                    tag,
                });
            }
        }
        let summary = json!({
            "created": created.len(), "not_created": errors.len(),
            "valid": created.len(), "invalid": errors.len()
        });
        let data: Vec<Value> = created.iter().map(rule_json).collect();
        if !dry_run {
            s.next_id += created.len() as u64;
            s.rules.extend(created);
        }
        let mut resp = json!({"meta": {"sent": now(), "summary": summary}});
        if !data.is_empty() {
            resp["data"] = json!(data);
        }
        if !errors.is_empty() {
            resp["errors"] = json!(errors);
        }
        return HttpResponse::Ok().json(resp);
    }
    if let Some(ids) = body.pointer("/delete/ids").and_then(Value::as_array) {
        let (mut deleted, mut errors) = (0, Vec::new());
        for id in ids {
            let id = id.as_str().unwrap_or_default();
            match s.rules.iter().position(|r| r.id == id) {
                Some(i) => {
                    if !dry_run {
                        s.rules.remove(i);
                    }
                    deleted += 1;
                }
                None => errors.push(json!({
                    "value": id,
                    "details": ["Rule does not exist"],
                    "title": "Invalid Request",
                    "type": "https://api.twitter.com/2/problems/invalid-request"
                })),
            }
        }
        let mut resp = json!({"meta": {"sent": now(),
            "summary": {"deleted": deleted, "not_deleted": errors.len()}}});
        if !errors.is_empty() {
            resp["errors"] = json!(errors);
        }
        return HttpResponse::Ok().json(resp);
    }
    invalid_request("The request body needs `add` or `delete`")
}

// ---------------------------------------------------------------------------
// Running the binary with (or without) the token in its environment.

/// Runs `squall ARGS` with `TOKEN_VAR` set to `token` (removed when `None`); kills it and
/// panics after `TIMEOUT`.
fn run(args: &[&str], token: Option<&str>) -> Output {
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("SQUALL_LOG")
        .env_remove(TOKEN_VAR)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env(TOKEN_VAR, t);
    }
    let mut child = cmd.spawn().expect("spawn the squall binary");
    let out_t = reader(child.stdout.take().expect("stdout"));
    let err_t = reader(child.stderr.take().expect("stderr"));
    let status = loop {
        match child.try_wait().expect("wait for squall") {
            Some(s) => break s,
            None if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("squall {args:?} did not exit within {TIMEOUT:?}; killed it");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Reads all of `r` on a thread.
fn reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = r.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    })
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn list_without_rules_says_so() {
    let m = Mock::start();
    let o = m.rules(&["list"]);
    o.assert_success();
    assert_eq!(lines(&o.stdout), ["no rules"]);
    assert_eq!(o.stderr, "");
}

#[test]
fn add_then_list_shows_id_value_and_tag() {
    let m = Mock::start();
    let o = m.rules(&["add", "#rustlang -is:retweet", "--tag", "rust posts"]);
    o.assert_success();
    assert_eq!(
        lines(&o.stdout),
        [
            "created 1, not created 0 (valid 1, invalid 0)",
            "  1800000000000000001  #rustlang -is:retweet  [tag: rust posts]"
        ]
    );
    m.rules(&["add", "#json lang:en"]).assert_success();
    assert_eq!(m.values(), ["#rustlang -is:retweet", "#json lang:en"]);

    let o = m.rules(&["list"]);
    o.assert_success();
    assert_eq!(
        lines(&o.stdout),
        [
            "1800000000000000001  #rustlang -is:retweet  [tag: rust posts]",
            "1800000000000000002  #json lang:en",
            "2 rules"
        ]
    );
    // The client sent the token (requests got past auth), a versioned User-Agent, and no
    // dry_run parameter on real adds.
    let s = m.state();
    assert_eq!(s.refused, 0);
    assert_eq!(s.requests.len(), 3);
    for (_, q, ua) in &s.requests {
        assert!(ua.starts_with("squall/"), "{ua}");
        assert_eq!(q, "");
    }
}

#[test]
fn add_duplicate_prints_the_api_error_and_exits_1() {
    let m = Mock::start();
    let id = m.seed("#rust", Some("rust"));
    let o = m.rules(&["add", "#rust"]);
    o.assert_failure();
    assert_eq!(o.code(), Some(1));
    assert_eq!(
        lines(&o.stdout),
        ["created 0, not created 1 (valid 0, invalid 1)"]
    );
    assert_eq!(
        lines(&o.stderr),
        [format!("error: DuplicateRule: #rust (id {id})")]
    );
    assert_eq!(m.values(), ["#rust"]);
}

#[test]
fn add_invalid_prints_the_details_and_exits_1() {
    let m = Mock::start();
    let o = m.rules(&["add", "--", "--b"]);
    assert_eq!(o.code(), Some(1), "{o:?}");
    // Values starting with `-` need no `--`.
    let o = m.rules(&["add", "--b", "--tag", "t"]);
    assert_eq!(o.code(), Some(1), "{o:?}");
    assert_eq!(
        lines(&o.stdout),
        ["created 0, not created 1 (valid 0, invalid 1)"]
    );
    assert_eq!(
        lines(&o.stderr),
        [
            "error: UnprocessableEntity: --b — Rules must contain a non-negation term (at position 1)"
        ]
    );
    assert!(m.values().is_empty());
}

#[test]
fn dry_run_add_validates_without_creating() {
    let m = Mock::start();
    let o = m.rules(&["add", "#rust", "--tag", "r", "--dry-run"]);
    o.assert_success();
    assert_eq!(
        lines(&o.stdout)[0],
        "created 1, not created 0 (valid 1, invalid 0) (dry run)"
    );
    assert!(m.values().is_empty(), "a dry run created a rule");
    assert_eq!(m.posts(), ["dry_run=true"]);
    // A dry run still reports what the API refuses.
    m.seed("#rust", None);
    let o = m.rules(&["add", "#rust", "--dry-run"]);
    assert_eq!(o.code(), Some(1));
    assert!(o.stdout.contains("not created 1"), "{}", o.stdout);
    assert!(o.stdout.contains("(dry run)"), "{}", o.stdout);
    assert!(
        o.stderr.contains("error: DuplicateRule: #rust (id "),
        "{}",
        o.stderr
    );
}

#[test]
fn delete_by_id_removes_only_those_rules() {
    let m = Mock::start();
    let a = m.seed("#a", None);
    let b = m.seed("#b", Some("bee"));
    let c = m.seed("#c", None);
    let o = m.rules(&["delete", &a, &c]);
    o.assert_success();
    assert_eq!(lines(&o.stdout), ["deleted 2, not deleted 0"]);
    assert_eq!(m.values(), ["#b"]);
    // An unknown id: the API's error, exit 1, nothing else deleted.
    let o = m.rules(&["delete", "42", &b]);
    assert_eq!(o.code(), Some(1));
    assert_eq!(lines(&o.stdout), ["deleted 1, not deleted 1"]);
    assert_eq!(
        lines(&o.stderr),
        ["error: Invalid Request: 42 — Rule does not exist"]
    );
    assert!(m.values().is_empty());
}

#[test]
fn delete_all_lists_then_deletes_everything() {
    let m = Mock::start();
    let a = m.seed("#a", Some("tag a"));
    let b = m.seed("cats OR dogs", None);
    let o = m.rules(&["delete", "--all"]);
    o.assert_success();
    assert_eq!(
        lines(&o.stdout),
        [
            format!("  {a}  #a  [tag: tag a]"),
            format!("  {b}  cats OR dogs"),
            "deleted 2, not deleted 0".to_string()
        ]
    );
    assert!(m.values().is_empty());
    // Nothing left: no delete request at all.
    let posts_before = m.posts().len();
    let o = m.rules(&["delete", "--all"]);
    o.assert_success();
    assert_eq!(lines(&o.stdout), ["no rules to delete"]);
    assert_eq!(m.posts().len(), posts_before);
}

#[test]
fn dry_run_delete_keeps_the_rules() {
    let m = Mock::start();
    let a = m.seed("#a", None);
    m.seed("#b", None);
    let o = m.rules(&["delete", &a, "--dry-run"]);
    o.assert_success();
    assert_eq!(lines(&o.stdout), ["deleted 1, not deleted 0 (dry run)"]);
    let o = m.rules(&["delete", "--all", "--dry-run"]);
    o.assert_success();
    assert_eq!(
        lines(&o.stdout).last(),
        Some(&"deleted 2, not deleted 0 (dry run)")
    );
    assert_eq!(m.values(), ["#a", "#b"]);
    assert_eq!(m.posts(), ["dry_run=true", "dry_run=true"]);
}

#[test]
fn list_follows_pages() {
    let m = Mock::start();
    m.state().page_size = Some(2);
    for i in 0..5 {
        m.seed(&format!("#t{i}"), None);
    }
    let o = m.rules(&["list"]);
    o.assert_success();
    let out = lines(&o.stdout);
    assert_eq!(out.len(), 6, "{}", o.stdout);
    assert_eq!(out[5], "5 rules");
    assert!(out[4].ends_with("#t4"), "{}", o.stdout);
    let queries: Vec<String> = m.state().requests.iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        queries,
        ["", "pagination_token=page-2", "pagination_token=page-4"]
    );
}

#[test]
fn wrong_token_gives_a_clear_401_without_the_token() {
    let m = Mock::start();
    let secret = "wrong-S3CRET-token-7781";
    for args in [
        &["list"][..],
        &["add", "#rust"][..],
        &["delete", "1"][..],
        &["delete", "--all"][..],
    ] {
        let o = m.rules_with_token(args, Some(secret));
        assert_eq!(o.code(), Some(1), "{args:?}: {o:?}");
        assert_eq!(o.stdout, "", "{args:?}");
        let err = o.stderr.trim_end();
        assert!(
            err.starts_with("error: HTTP 401 Unauthorized from "),
            "{err}"
        );
        assert!(err.contains(PATH), "{err}");
        assert!(
            err.contains(&format!("check that ${TOKEN_VAR} holds")),
            "{err}"
        );
        assert!(err.contains("bearer token"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for out in [&o.stdout, &o.stderr] {
            assert!(!out.contains(secret), "the token leaked: {}", tail(out));
            assert!(!out.contains("S3CRET"), "the token leaked: {}", tail(out));
        }
    }
    assert!(m.values().is_empty());
    assert_eq!(m.state().refused, 4);
}

#[test]
fn forbidden_and_rate_limited_say_what_to_do() {
    let m = Mock::start();
    let o = m.rules_with_token(&["list"], Some(FORBIDDEN_TOKEN));
    assert_eq!(o.code(), Some(1));
    assert!(o.stderr.contains("HTTP 403 Forbidden"), "{}", o.stderr);
    assert!(o.stderr.contains("Client Forbidden"), "{}", o.stderr);
    assert!(o.stderr.contains("attached to a Project"), "{}", o.stderr);
    assert!(o.stderr.contains("client-not-enrolled"), "{}", o.stderr);
    assert!(!o.stderr.contains(FORBIDDEN_TOKEN));
    let o = m.rules_with_token(&["add", "#x"], Some(LIMITED_TOKEN));
    assert_eq!(o.code(), Some(1));
    assert!(
        o.stderr.contains("HTTP 429 Too Many Requests"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("rate limited"), "{}", o.stderr);
    assert!(o.stderr.contains("at Unix time 4102444800"), "{}", o.stderr);
    assert!(!o.stderr.contains(LIMITED_TOKEN));
}

#[test]
fn missing_token_variable_is_a_clear_error_and_sends_nothing() {
    let m = Mock::start();
    let o = m.rules_with_token(&["list"], None);
    assert_eq!(o.code(), Some(1));
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr
            .contains(&format!("the environment variable {TOKEN_VAR} is not set")),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("--token-env"), "{}", o.stderr);
    // An empty variable is refused the same way.
    let o = m.rules_with_token(&["add", "#x"], Some(""));
    assert_eq!(o.code(), Some(1));
    assert!(o.stderr.contains(TOKEN_VAR), "{}", o.stderr);
    let s = m.state();
    assert_eq!((s.requests.len(), s.refused), (0, 0));
}

#[test]
fn unreachable_api_fails_cleanly() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let o = run(
        &[
            "twitter",
            "rules",
            "list",
            "--base-url",
            &base,
            "--token-env",
            TOKEN_VAR,
        ],
        Some(TOKEN),
    );
    assert_eq!(o.code(), Some(1));
    assert!(
        o.stderr
            .starts_with(&format!("error: GET {base}{PATH} failed: ")),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains(TOKEN));
    let o = run(
        &[
            "twitter",
            "rules",
            "list",
            "--base-url",
            "nonsense",
            "--token-env",
            TOKEN_VAR,
        ],
        Some(TOKEN),
    );
    assert_eq!(o.code(), Some(1));
    assert!(
        o.stderr.contains("invalid base URL `nonsense`"),
        "{}",
        o.stderr
    );
}

#[test]
fn usage_errors_come_from_clap() {
    let o = run(&["twitter", "rules", "delete"], Some(TOKEN));
    assert_eq!(o.code(), Some(2));
    assert!(o.stderr.contains("<ID|--all>"), "{}", o.stderr);
    let o = run(&["twitter", "rules", "delete", "1", "--all"], Some(TOKEN));
    assert_eq!(o.code(), Some(2));
    assert!(o.stderr.contains("cannot be used with"), "{}", o.stderr);
    let o = run(&["twitter", "rules", "--help"], None);
    o.assert_success();
    for sub in ["list", "add", "delete"] {
        assert!(o.stdout.contains(sub), "{}", o.stdout);
    }
}
