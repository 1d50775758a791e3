//! The filtered stream's rules (`/2/tweets/search/stream/rules`): list, add, delete.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use squall::twitter::{DEFAULT_BASE_URL, DEFAULT_TOKEN_ENV, auth::BearerToken};
//! use squall::twitter::rules::RulesClient;
//!
//! let token = BearerToken::from_env(DEFAULT_TOKEN_ENV)?;
//! let client = RulesClient::new(DEFAULT_BASE_URL, token)?;
//! let added = client.add(&[("#rustlang -is:retweet", Some("rust posts"))], false).await?;
//! println!("created {}", added.meta.summary.created);
//! for rule in client.list().await? {
//!     println!("{} {} {:?}", rule.id, rule.value, rule.tag);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Rule-level problems (a duplicate or an invalid rule) are not errors of the call: they
//! come back in [`AddResponse::errors`] / [`DeleteResponse::errors`] next to the API's
//! summary. HTTP-level failures (401, 403, 429, 5xx, …) become [`RulesError::Http`] with
//! the status, the API's `title`/`detail`, and what to check. No message ever contains
//! the bearer token.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

use super::auth::{BearerToken, http_client};
use super::error_chain;

/// The rules endpoint, relative to the base URL.
pub const RULES_PATH: &str = "/2/tweets/search/stream/rules";

/// Connect timeout of the client built by [`RulesClient::new`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Overall timeout of one rules request (they are small, unlike the stream).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Most pages [`RulesClient::list`] follows (`meta.next_token`), a guard against a server
/// that never stops paginating.
const MAX_PAGES: usize = 100;

/// At most this many characters of a non-JSON body are quoted in an error.
const SNIPPET_CHARS: usize = 200;

// ---------------------------------------------------------------------------
// Wire types (unknown fields are ignored everywhere; `null` counts as absent).

/// A `null` or missing value becomes `T::default()`.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One filtered-stream rule as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    /// The rule's query, e.g. `#rustlang -is:retweet`.
    pub value: String,
    /// The label tweets matching the rule carry in `matching_rules[].tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// `GET` response: `{"data":[Rule…],"meta":{"sent","result_count","next_token"}}`
/// (`data` is absent when there are no rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<Rule>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: ListMeta,
}

/// `meta` of a `GET` response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeta {
    #[serde(default)]
    pub sent: Option<String>,
    #[serde(default)]
    pub result_count: Option<u64>,
    /// Present when there are more rules to fetch (`pagination_token`).
    #[serde(default)]
    pub next_token: Option<String>,
}

/// `meta.summary` of an add request: how many rules were created / are valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddSummary {
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub not_created: u64,
    #[serde(default)]
    pub valid: u64,
    #[serde(default)]
    pub invalid: u64,
}

/// `meta.summary` of a delete request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSummary {
    #[serde(default)]
    pub deleted: u64,
    #[serde(default)]
    pub not_deleted: u64,
}

/// `meta` of a `POST` response, with its summary `S`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct PostMeta<S> {
    #[serde(default)]
    pub sent: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub summary: S,
}

/// A rule the API did not create or delete (`errors[]` of a `POST` response), e.g.
/// `{"value":"#rust","id":"1800…","title":"DuplicateRule","type":"…/duplicate-rules"}` or
/// `{"value":"--b","details":["Rules must contain a non-negation term…"],
/// "title":"UnprocessableEntity","type":"…/invalid-rules"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleError {
    /// `DuplicateRule`, `UnprocessableEntity`, …
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    #[serde(default)]
    pub detail: Option<String>,
    /// What is wrong with an invalid rule.
    #[serde(default, deserialize_with = "null_default")]
    pub details: Vec<String>,
    /// The rule's value (add) or id (delete) the error is about.
    #[serde(default)]
    pub value: Option<String>,
    /// For a duplicate: the id of the existing rule.
    #[serde(default)]
    pub id: Option<String>,
    /// The problem type URI (`"type"` on the wire).
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
}

impl fmt::Display for RuleError {
    /// `DuplicateRule: #rust (id 123)`, `UnprocessableEntity: --b — Rules must contain…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = if self.title.is_empty() {
            self.error_type.as_deref().unwrap_or("error")
        } else {
            &self.title
        };
        f.write_str(title)?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        let mut notes: Vec<&str> = self.details.iter().map(String::as_str).collect();
        if let Some(d) = self.detail.as_deref()
            && d != title
        {
            notes.push(d);
        }
        if !notes.is_empty() {
            write!(f, " — {}", notes.join("; "))?;
        }
        Ok(())
    }
}

/// Response to an add request: the created rules (`data`), `meta.summary`, `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResponse {
    /// The rules created (or that would be, on a dry run).
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<Rule>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: PostMeta<AddSummary>,
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<RuleError>,
}

/// Response to a delete request: `meta.summary` and `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    #[serde(default, deserialize_with = "null_default")]
    pub meta: PostMeta<DeleteSummary>,
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<RuleError>,
}

/// An add request's body: `{"add":[{"value","tag"}]}`.
#[derive(Debug, Serialize)]
struct AddBody<'a> {
    add: Vec<NewRule<'a>>,
}

#[derive(Debug, Serialize)]
struct NewRule<'a> {
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
}

/// A delete request's body: `{"delete":{"ids":[…]}}`.
#[derive(Debug, Serialize)]
struct DeleteBody<'a> {
    delete: DeleteIds<'a>,
}

#[derive(Debug, Serialize)]
struct DeleteIds<'a> {
    ids: Vec<&'a str>,
}

/// The body of an HTTP error response (RFC 7807 style, plus the v2 `errors[]` of
/// "Invalid Request" answers). Everything optional.
#[derive(Debug, Default, Deserialize)]
struct ProblemBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    /// 403 client-forbidden: e.g. `client-not-enrolled`.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    registration_url: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    errors: Vec<ProblemItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ProblemItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

// ---------------------------------------------------------------------------
// Errors.

/// An HTTP error answer of the rules API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// `GET` or `POST`.
    pub method: &'static str,
    pub url: String,
    pub status: u16,
    /// The API's `title`, e.g. `Unauthorized`, `Client Forbidden`.
    pub title: Option<String>,
    /// The API's `detail` (or the start of a non-JSON body).
    pub detail: Option<String>,
    /// Further messages of the body (`errors[].message`, a 403's `reason`, …).
    pub messages: Vec<String>,
    /// `x-rate-limit-reset` (Unix seconds), when sent.
    pub rate_limit_reset: Option<u64>,
    /// The environment variable the token came from (named in the 401/403 hint).
    pub token_env: String,
}

impl HttpError {
    /// Whether trying again later may succeed (429 and 5xx).
    pub fn is_retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }

    /// What to check or do about this status.
    pub fn hint(&self) -> Option<String> {
        let var = &self.token_env;
        Some(match self.status {
            401 => format!(
                "check that ${var} holds your X app's bearer token (developer portal → your \
                 app → Keys and tokens → Bearer Token: app-only, not the API key/secret or a \
                 user access token) and that it has not been regenerated or revoked"
            ),
            403 => "check that your X app is attached to a Project in the developer portal \
                    and that your access level includes the v2 filtered stream"
                .to_string(),
            404 => format!(
                "check the base URL ({}): the rules endpoint is {RULES_PATH}",
                self.url.strip_suffix(RULES_PATH).unwrap_or(&self.url)
            ),
            429 => {
                let mut s = "rate limited (rules: 450 GET and 100 POST requests per 15 \
                             minutes); try again later"
                    .to_string();
                if let Some(reset) = self.rate_limit_reset {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    s.push_str(&format!(
                        ": the limit resets in {} s (at Unix time {reset})",
                        reset.saturating_sub(now)
                    ));
                }
                s
            }
            500..=599 => "a server-side problem of the API; try again later".to_string(),
            _ => return None,
        })
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "HTTP {} {reason} from {} {}",
            self.status, self.method, self.url
        )?;
        let mut parts: Vec<&str> = Vec::new();
        for p in [self.title.as_deref(), self.detail.as_deref()]
            .into_iter()
            .flatten()
            .chain(self.messages.iter().map(String::as_str))
        {
            if !p.is_empty() && !parts.contains(&p) && p != reason {
                parts.push(p);
            }
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join(" — "))?;
        }
        if let Some(h) = self.hint() {
            write!(f, ". {h}")?;
        }
        Ok(())
    }
}

/// Why a rules call failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The base URL does not parse.
    #[error("invalid base URL `{url}`: {reason}")]
    BaseUrl { url: String, reason: String },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    /// No answer: connect failure, timeout, broken connection.
    #[error("{method} {url} failed: {reason}")]
    Request {
        method: &'static str,
        url: String,
        reason: String,
    },
    /// The API answered with an HTTP error status.
    #[error("{0}")]
    Http(Box<HttpError>),
    /// A success status with a body that is not the expected JSON.
    #[error("{method} {url}: HTTP {status} with an unexpected body ({reason}): {snippet}")]
    Decode {
        method: &'static str,
        url: String,
        status: u16,
        reason: String,
        snippet: String,
    },
}

impl RulesError {
    /// The HTTP status, for [`RulesError::Http`] and [`RulesError::Decode`].
    pub fn status(&self) -> Option<u16> {
        match self {
            RulesError::Http(e) => Some(e.status),
            RulesError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The first [`SNIPPET_CHARS`] characters of `body`, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s.trim().to_string()
}

// ---------------------------------------------------------------------------
// The client.

/// An async client of the rules endpoints.
#[derive(Debug, Clone)]
pub struct RulesClient {
    http: reqwest::Client,
    url: String,
    token: BearerToken,
}

impl RulesClient {
    /// A client of `base_url` (e.g. [`super::DEFAULT_BASE_URL`]) with its own HTTP client.
    pub fn new(base_url: &str, token: BearerToken) -> Result<RulesClient, RulesError> {
        let http = http_client(CONNECT_TIMEOUT).map_err(|e| RulesError::Client(error_chain(&e)))?;
        RulesClient::with_client(http, base_url, token)
    }

    /// A client sharing `http` (see [`http_client`]).
    pub fn with_client(
        http: reqwest::Client,
        base_url: &str,
        token: BearerToken,
    ) -> Result<RulesClient, RulesError> {
        let base = base_url.trim().trim_end_matches('/');
        let bad = |reason: String| RulesError::BaseUrl {
            url: base_url.to_string(),
            reason,
        };
        let parsed = reqwest::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https".to_string()));
        }
        Ok(RulesClient {
            http,
            url: format!("{base}{RULES_PATH}"),
            token,
        })
    }

    /// The rules endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// All rules (following `meta.next_token` pages).
    pub async fn list(&self) -> Result<Vec<Rule>, RulesError> {
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut req = self.http.get(&self.url);
            if let Some(t) = &token {
                req = req.query(&[("pagination_token", t.as_str())]);
            }
            let page: ListResponse = self.send("GET", req).await?;
            rules.extend(page.data);
            match page.meta.next_token {
                Some(next) if Some(&next) != token.as_ref() && !next.is_empty() => {
                    token = Some(next);
                }
                _ => break,
            }
        }
        Ok(rules)
    }

    /// Adds rules `(value, tag)`; with `dry_run` the API only validates them. An empty
    /// slice sends nothing.
    pub async fn add(
        &self,
        rules: &[(&str, Option<&str>)],
        dry_run: bool,
    ) -> Result<AddResponse, RulesError> {
        if rules.is_empty() {
            return Ok(AddResponse::default());
        }
        let body = AddBody {
            add: rules
                .iter()
                .map(|&(value, tag)| NewRule { value, tag })
                .collect(),
        };
        self.send("POST", self.post(dry_run).json(&body)).await
    }

    /// Deletes rules by id; with `dry_run` nothing is deleted. An empty slice sends nothing.
    pub async fn delete<S: AsRef<str>>(
        &self,
        ids: &[S],
        dry_run: bool,
    ) -> Result<DeleteResponse, RulesError> {
        if ids.is_empty() {
            return Ok(DeleteResponse::default());
        }
        let body = DeleteBody {
            delete: DeleteIds {
                ids: ids.iter().map(AsRef::as_ref).collect(),
            },
        };
        self.send("POST", self.post(dry_run).json(&body)).await
    }

    /// Lists the rules, then deletes them all: the rules found and the delete response
    /// (no delete request when there were none).
    pub async fn delete_all(
        &self,
        dry_run: bool,
    ) -> Result<(Vec<Rule>, DeleteResponse), RulesError> {
        let rules = self.list().await?;
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        let response = self.delete(&ids, dry_run).await?;
        Ok((rules, response))
    }

    fn post(&self, dry_run: bool) -> reqwest::RequestBuilder {
        let req = self.http.post(&self.url);
        if dry_run {
            req.query(&[("dry_run", "true")])
        } else {
            req
        }
    }

    /// Sends `req` with the token; a 2xx body is decoded as `T`, anything else becomes
    /// an error.
    async fn send<T: DeserializeOwned>(
        &self,
        method: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RulesError> {
        let failed = |e: reqwest::Error| RulesError::Request {
            method,
            url: self.url.clone(),
            reason: error_chain(&e.without_url()),
        };
        let resp = self
            .token
            .authorize(req)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(failed)?;
        let status = resp.status();
        let reset = resp
            .headers()
            .get("x-rate-limit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp.bytes().await.map_err(failed)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| RulesError::Decode {
                method,
                url: self.url.clone(),
                status: status.as_u16(),
                reason: e.to_string(),
                snippet: snippet(&body),
            });
        }
        Err(RulesError::Http(Box::new(self.http_error(
            method,
            status.as_u16(),
            &body,
            reset,
        ))))
    }

    fn http_error(
        &self,
        method: &'static str,
        status: u16,
        body: &[u8],
        rate_limit_reset: Option<u64>,
    ) -> HttpError {
        let (title, detail, messages) = match serde_json::from_slice::<ProblemBody>(body) {
            Ok(p) => {
                let mut messages: Vec<String> = p
                    .errors
                    .into_iter()
                    .flat_map(|e| [e.title, e.detail, e.message])
                    .flatten()
                    .collect();
                if let Some(r) = p.reason {
                    messages.push(format!("reason: {r}"));
                }
                if let Some(u) = p.registration_url {
                    messages.push(format!("see {u}"));
                }
                (p.title, p.detail, messages)
            }
            Err(_) => {
                let s = snippet(body);
                (None, (!s.is_empty()).then_some(s), Vec::new())
            }
        };
        HttpError {
            method,
            url: self.url.clone(),
            status,
            title,
            detail,
            messages,
            rate_limit_reset,
            token_env: self.token.source().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copies of the reference payloads (X API v2 rules endpoints).
    const GET_RESPONSE: &str = r##"{
      "data": [
        {"id": "1800000000000000001", "value": "#rustlang -is:retweet", "tag": "rust posts"},
        {"id": "1800000000000000002", "value": "#json lang:en", "tag": "json posts"}
      ],
      "meta": {"sent": "2024-05-01T12:00:00.000Z", "result_count": 2}
    }"##;
    const GET_EMPTY: &str =
        r##"{"meta": {"sent": "2024-05-01T11:58:00.000Z", "result_count": 0}}"##;
    const ADD_REQUEST: &str = r##"{"add": [
        {"value": "#rustlang -is:retweet", "tag": "rust posts"},
        {"value": "#json lang:en", "tag": "json posts"}]}"##;
    const ADD_RESPONSE: &str = r##"{
      "data": [
        {"value": "#rustlang -is:retweet", "tag": "rust posts", "id": "1800000000000000001"},
        {"value": "#json lang:en", "tag": "json posts", "id": "1800000000000000002"}
      ],
      "meta": {"sent": "2024-05-01T11:59:00.000Z",
               "summary": {"created": 2, "not_created": 0, "valid": 2, "invalid": 0}}
    }"##;
    const ADD_DUPLICATE: &str = r##"{
      "meta": {"sent": "2024-05-01T11:59:30.000Z",
               "summary": {"created": 0, "not_created": 1, "valid": 0, "invalid": 1}},
      "errors": [{"value": "#rustlang -is:retweet", "id": "1800000000000000001",
                  "title": "DuplicateRule",
                  "type": "https://api.twitter.com/2/problems/duplicate-rules"}]
    }"##;
    const ADD_INVALID: &str = r##"{
      "meta": {"sent": "2024-05-01T11:59:40.000Z",
               "summary": {"created": 0, "not_created": 1, "valid": 0, "invalid": 1}},
      "errors": [{"value": "--b",
                  "details": ["Rules must contain a non-negation term (at position 1)"],
                  "title": "UnprocessableEntity",
                  "type": "https://api.twitter.com/2/problems/invalid-rules"}]
    }"##;
    const DELETE_REQUEST: &str = r##"{"delete": {"ids": ["1800000000000000002"]}}"##;
    const DELETE_RESPONSE: &str = r##"{"meta": {"sent": "2024-05-01T12:10:00.000Z",
      "summary": {"deleted": 1, "not_deleted": 0}}}"##;
    const HTTP401: &str = r##"{"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}"##;
    const HTTP403: &str = r##"{"client_id": "12345678",
      "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
      "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
      "title": "Client Forbidden", "required_enrollment": "Appropriate Level of API Access",
      "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden"}"##;
    const HTTP429: &str = r##"{"title": "Too Many Requests", "detail": "Too Many Requests",
      "type": "about:blank", "status": 429}"##;

    fn client(var: &str) -> RulesClient {
        let token = BearerToken::new("s3cr3t-token", var).unwrap();
        RulesClient::new("http://127.0.0.1:9/", token).unwrap()
    }

    #[test]
    fn list_responses_decode() {
        let r: ListResponse = serde_json::from_str(GET_RESPONSE).unwrap();
        assert_eq!(r.meta.result_count, Some(2));
        assert_eq!(r.meta.next_token, None);
        assert_eq!(
            r.data[0],
            Rule {
                id: "1800000000000000001".into(),
                value: "#rustlang -is:retweet".into(),
                tag: Some("rust posts".into()),
            }
        );
        assert_eq!(r.data[1].tag.as_deref(), Some("json posts"));
        let empty: ListResponse = serde_json::from_str(GET_EMPTY).unwrap();
        assert!(empty.data.is_empty());
        assert_eq!(empty.meta.result_count, Some(0));
        // `null`s, missing tags and unknown fields are tolerated.
        let odd: ListResponse =
            serde_json::from_str(r#"{"data":null,"meta":null,"extra":{"x":1}}"#).unwrap();
        assert_eq!(odd, ListResponse::default());
        let untagged: ListResponse =
            serde_json::from_str(r#"{"data":[{"id":"7","value":"cats","new":true}]}"#).unwrap();
        assert_eq!(untagged.data[0].tag, None);
    }

    #[test]
    fn add_request_body_matches_the_example() {
        let body = AddBody {
            add: vec![
                NewRule {
                    value: "#rustlang -is:retweet",
                    tag: Some("rust posts"),
                },
                NewRule {
                    value: "#json lang:en",
                    tag: Some("json posts"),
                },
            ],
        };
        let ours = serde_json::to_value(&body).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(ADD_REQUEST).unwrap();
        assert_eq!(ours, theirs);
        let untagged = serde_json::to_string(&AddBody {
            add: vec![NewRule {
                value: "cats",
                tag: None,
            }],
        })
        .unwrap();
        assert_eq!(untagged, r#"{"add":[{"value":"cats"}]}"#);
    }

    #[test]
    fn delete_request_body_matches_the_example() {
        let body = DeleteBody {
            delete: DeleteIds {
                ids: vec!["1800000000000000002"],
            },
        };
        let theirs: serde_json::Value = serde_json::from_str(DELETE_REQUEST).unwrap();
        assert_eq!(serde_json::to_value(&body).unwrap(), theirs);
    }

    #[test]
    fn add_responses_decode_with_summary_and_errors() {
        let ok: AddResponse = serde_json::from_str(ADD_RESPONSE).unwrap();
        assert_eq!(
            ok.meta.summary,
            AddSummary {
                created: 2,
                not_created: 0,
                valid: 2,
                invalid: 0
            }
        );
        assert_eq!(ok.data.len(), 2);
        assert_eq!(ok.data[1].id, "1800000000000000002");
        assert!(ok.errors.is_empty());
        assert_eq!(ok.meta.sent.as_deref(), Some("2024-05-01T11:59:00.000Z"));

        let dup: AddResponse = serde_json::from_str(ADD_DUPLICATE).unwrap();
        assert_eq!(dup.meta.summary.not_created, 1);
        assert!(dup.data.is_empty());
        let e = &dup.errors[0];
        assert_eq!(e.title, "DuplicateRule");
        assert_eq!(e.value.as_deref(), Some("#rustlang -is:retweet"));
        assert_eq!(e.id.as_deref(), Some("1800000000000000001"));
        assert_eq!(
            e.error_type.as_deref(),
            Some("https://api.twitter.com/2/problems/duplicate-rules")
        );
        assert_eq!(
            e.to_string(),
            "DuplicateRule: #rustlang -is:retweet (id 1800000000000000001)"
        );

        let bad: AddResponse = serde_json::from_str(ADD_INVALID).unwrap();
        let e = &bad.errors[0];
        assert_eq!(e.title, "UnprocessableEntity");
        assert_eq!(e.value.as_deref(), Some("--b"));
        assert_eq!(
            e.details,
            ["Rules must contain a non-negation term (at position 1)"]
        );
        assert_eq!(
            e.to_string(),
            "UnprocessableEntity: --b — Rules must contain a non-negation term (at position 1)"
        );
    }

    #[test]
    fn delete_response_decodes() {
        let r: DeleteResponse = serde_json::from_str(DELETE_RESPONSE).unwrap();
        assert_eq!(
            r.meta.summary,
            DeleteSummary {
                deleted: 1,
                not_deleted: 0
            }
        );
        assert!(r.errors.is_empty());
        // A failed delete as the API reports it (nested errors, detail) decodes too.
        let r: DeleteResponse = serde_json::from_str(
            r#"{"meta":{"sent":"x","summary":{"deleted":0,"not_deleted":1}},
                "errors":[{"value":"42","details":["Rule does not exist"],
                           "title":"Invalid Request","detail":"One or more rules could not be deleted.",
                           "errors":[{"parameters":{},"message":"nested"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.meta.summary.not_deleted, 1);
        assert_eq!(
            r.errors[0].to_string(),
            "Invalid Request: 42 — Rule does not exist; One or more rules could not be deleted."
        );
        // A summary-less body still decodes (all zeros).
        let r: DeleteResponse = serde_json::from_str("{}").unwrap();
        assert_eq!(r.meta.summary, DeleteSummary::default());
    }

    #[test]
    fn http_401_says_what_to_check_and_never_shows_the_token() {
        let c = client("MY_TW_TOKEN");
        let e = c.http_error("GET", 401, HTTP401.as_bytes(), None);
        assert_eq!(e.title.as_deref(), Some("Unauthorized"));
        assert!(!e.is_retryable());
        let msg = RulesError::Http(Box::new(e)).to_string();
        assert!(
            msg.starts_with(
                "HTTP 401 Unauthorized from GET http://127.0.0.1:9/2/tweets/search/stream/rules"
            ),
            "{msg}"
        );
        assert!(msg.contains("$MY_TW_TOKEN"), "{msg}");
        assert!(msg.contains("bearer token"), "{msg}");
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn http_403_keeps_title_detail_reason() {
        let e = client("T").http_error("POST", 403, HTTP403.as_bytes(), None);
        assert_eq!(e.title.as_deref(), Some("Client Forbidden"));
        assert!(
            e.detail
                .as_deref()
                .unwrap()
                .contains("attached to a Project")
        );
        assert!(
            e.messages
                .contains(&"reason: client-not-enrolled".to_string())
        );
        let msg = e.to_string();
        assert!(msg.contains("HTTP 403 Forbidden from POST"), "{msg}");
        assert!(msg.contains("Client Forbidden"), "{msg}");
        assert!(
            msg.contains("check that your X app is attached to a Project"),
            "{msg}"
        );
    }

    #[test]
    fn http_429_and_5xx_are_retryable_with_hints() {
        let e = client("T").http_error("GET", 429, HTTP429.as_bytes(), Some(u64::MAX));
        assert!(e.is_retryable());
        let msg = e.to_string();
        // title == detail == reason phrase: said once.
        assert_eq!(msg.matches("Too Many Requests").count(), 1, "{msg}");
        assert!(msg.contains("rate limited"), "{msg}");
        assert!(msg.contains("resets in"), "{msg}");
        let e = client("T").http_error("GET", 503, b"<html>\n<b>down</b></html>", None);
        assert!(e.is_retryable());
        assert_eq!(e.detail.as_deref(), Some("<html> <b>down</b></html>"));
        assert!(e.to_string().contains("try again later"));
        let e = client("T").http_error("GET", 404, b"", None);
        assert_eq!(e.detail, None);
        assert!(
            e.to_string()
                .contains("check the base URL (http://127.0.0.1:9)")
        );
        // A v2 "Invalid Request" body: nested messages are kept.
        let e = client("T").http_error(
            "POST",
            400,
            br#"{"errors":[{"parameters":{"dry_run":["x"]},"message":"The `dry_run` query parameter value [x] is not one of [true,false]"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#,
            None,
        );
        assert!(e.to_string().contains("is not one of [true,false]"), "{e}");
        assert!(e.hint().is_none());
    }

    #[test]
    fn base_urls_are_checked_and_normalized() {
        let t = || BearerToken::new("x", "T").unwrap();
        let c = RulesClient::new("https://api.x.com/", t()).unwrap();
        assert_eq!(c.url(), "https://api.x.com/2/tweets/search/stream/rules");
        assert!(matches!(
            RulesClient::new("not a url", t()),
            Err(RulesError::BaseUrl { .. })
        ));
        assert!(matches!(
            RulesClient::new("ftp://example.org", t()),
            Err(RulesError::BaseUrl { .. })
        ));
    }

    #[test]
    fn snippets_are_short_single_lines() {
        let long = "x\n".repeat(500);
        let s = snippet(long.as_bytes());
        assert!(!s.contains('\n'));
        assert!(s.ends_with('…'));
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn empty_requests_send_nothing() {
        // The base URL points at a closed port: any request would fail.
        let c = client("T");
        assert_eq!(c.add(&[], false).await.unwrap(), AddResponse::default());
        let none: [&str; 0] = [];
        assert_eq!(
            c.delete(&none, true).await.unwrap(),
            DeleteResponse::default()
        );
        let e = c.list().await.unwrap_err();
        assert!(
            matches!(e, RulesError::Request { method: "GET", .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("/2/tweets/search/stream/rules failed"),
            "{e}"
        );
    }
}
