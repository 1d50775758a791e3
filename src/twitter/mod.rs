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

/// An error and its sources, joined with `: `, each source left out when the text so far
/// already contains it (reqwest's top-level message alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(text: &'static str, source: Option<E>) -> E {
        E {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn the_chain_joins_sources_that_add_something() {
        assert_eq!(error_chain(&e("top", None)), "top");
        let chain = e(
            "request failed",
            Some(e("connect", Some(e("refused", None)))),
        );
        assert_eq!(error_chain(&chain), "request failed: connect: refused");
        let repeats = e("connect: refused", Some(e("refused", None)));
        assert_eq!(error_chain(&repeats), "connect: refused");
    }
}
