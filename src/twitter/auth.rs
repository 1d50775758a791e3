//! The bearer token (read from an environment variable, never from a file, never
//! printed) and the HTTP client every Twitter call uses.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};

/// `squall/<version>`, sent as `User-Agent` (the API asks for a versioned one).
pub const USER_AGENT: &str = concat!("squall/", env!("CARGO_PKG_VERSION"));

/// Why there are no credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the environment variable {0} is not set: set it to your X API app's bearer token \
         (option `token_env` names another variable)"
    )]
    Missing(String),
    #[error(
        "the environment variable {0} does not hold a usable bearer token (empty or not ASCII)"
    )]
    Invalid(String),
}

/// An app-only bearer token. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct BearerToken {
    header: HeaderValue,
    /// The variable it came from (safe to show).
    var: String,
}

impl BearerToken {
    /// Reads the token from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<BearerToken, AuthError> {
        let token = std::env::var(var).map_err(|_| AuthError::Missing(var.to_string()))?;
        BearerToken::new(token.trim(), var)
    }

    /// A token given directly (tests); `var` names its origin in messages.
    pub fn new(token: &str, var: &str) -> Result<BearerToken, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Invalid(var.to_string()));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| AuthError::Invalid(var.to_string()))?;
        header.set_sensitive(true);
        Ok(BearerToken {
            header,
            var: var.to_string(),
        })
    }

    /// Adds `Authorization: Bearer …` to a request.
    pub fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header(AUTHORIZATION, self.header.clone())
    }

    /// The environment variable the token came from.
    pub fn source(&self) -> &str {
        &self.var
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(from ${}, redacted)", self.var)
    }
}

impl fmt::Display for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<bearer token from ${}>", self.var)
    }
}

/// An HTTP client for the API: rustls (ring) TLS, a versioned `User-Agent`, a connect
/// timeout, no overall timeout (streams last for days).
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a default crypto provider: install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows() {
        let t = BearerToken::new("s3cr3t-token", "MY_TOKEN").unwrap();
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert!(!format!("{t}").contains("s3cr3t"));
        assert!(format!("{t:?}").contains("MY_TOKEN"));
    }

    #[test]
    fn a_missing_variable_says_what_to_set() {
        let e = BearerToken::from_env("SQUALL_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(
            e.to_string()
                .contains("SQUALL_TEST_SURELY_UNSET_VAR is not set"),
            "{e}"
        );
    }

    #[test]
    fn a_client_builds() {
        assert!(http_client(Duration::from_secs(1)).is_ok());
    }
}
