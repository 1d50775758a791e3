//! The X/Twitter API v2: credentials and HTTP client, the streaming connection and its
//! reconnect policy, the filtered-stream rules, and the `twitter` spout. The protocol, as squall uses it, is
//! described in `docs/twitter.md`.

pub mod auth;
pub mod policy;
pub mod rules;
pub mod spout;
pub mod stream;

/// The API's base URL (formerly `https://api.twitter.com`).
pub const DEFAULT_BASE_URL: &str = "https://api.x.com";

/// The environment variable holding the bearer token, unless configured otherwise.
pub const DEFAULT_TOKEN_ENV: &str = "TWITTER_BEARER_TOKEN";
