//! A versioned encoding of a bolt's state ([`Bolt::snapshot`](super::Bolt::snapshot),
//! [`Bolt::restore`](super::Bolt::restore)), for changelog topics in distributed mode.
//!
//! A snapshot is one JSON object:
//!
//! ```json
//! {"version":1,"bolt":"rolling_count","options":{"field":null,"slide":"10s","window":"30s"},"state":{...}}
//! ```
//!
//! `version` is the format version ([`SNAPSHOT_VERSION`]); a snapshot of another version is
//! refused, naming both. `bolt` names the kind of bolt that wrote it and `options` are
//! the options its state depends on (as [`Bolt::state_options`](super::Bolt::state_options)
//! gives them): a snapshot is only restored into the same kind of bolt with the same values
//! of these options, and a refusal names each option that differs with both values.
//! `state` is the bolt's own state (each bolt documents its fields). Decoding never
//! panics: bytes that are not such a snapshot (corrupt, truncated) are an error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::ComponentError;
use crate::state::StateOptions;

/// The snapshot format this build writes, and the only one it reads.
pub const SNAPSHOT_VERSION: u64 = 1;

#[derive(Serialize)]
struct Written<'a, S> {
    version: u64,
    bolt: &'a str,
    options: &'a StateOptions,
    state: &'a S,
}

/// The envelope of a snapshot, read before its state (loosely typed, so that any
/// version's envelope can be read far enough to refuse it clearly).
#[derive(Deserialize)]
struct Head {
    version: Option<Json>,
    bolt: Option<Json>,
    options: Option<Json>,
}

#[derive(Deserialize)]
struct Body<S> {
    state: S,
}

/// Encodes the state of a `bolt` (its kind, e.g. `"rank"`) whose state depends on
/// `options`.
pub fn encode<S: Serialize>(
    bolt: &str,
    options: &StateOptions,
    state: &S,
) -> Result<Vec<u8>, ComponentError> {
    serde_json::to_vec(&Written {
        version: SNAPSHOT_VERSION,
        bolt,
        options,
        state,
    })
    .map_err(|e| ComponentError::new(format!("{bolt}: cannot encode a snapshot: {e}")))
}

/// Decodes the state [`encode`] wrote for a `bolt` of this kind with these `options`; an
/// error says why the bytes are not that (another format version, another kind of bolt,
/// other options, corrupt or truncated bytes).
pub fn decode<S: DeserializeOwned>(
    bolt: &str,
    options: &StateOptions,
    bytes: &[u8],
) -> Result<S, ComponentError> {
    let err = |msg: String| ComponentError::new(format!("{bolt}: cannot restore: {msg}"));
    let head: Head = serde_json::from_slice(bytes).map_err(|e| {
        err(format!(
            "not a snapshot (corrupt or truncated, {} bytes): {e}",
            bytes.len()
        ))
    })?;
    match head.version {
        Some(Json::Number(n)) if n.as_u64() == Some(SNAPSHOT_VERSION) => {}
        Some(v) => {
            return Err(err(format!(
                "the snapshot is in format version {v}, this build reads version {SNAPSHOT_VERSION} only"
            )));
        }
        None => return Err(err("not a snapshot: it has no `version`".into())),
    }
    match head.bolt {
        Some(Json::String(b)) if b == bolt => {}
        Some(Json::String(b)) => {
            return Err(err(format!(
                "the snapshot is of a `{b}` bolt, not of a `{bolt}` bolt"
            )));
        }
        _ => return Err(err("not a snapshot: it names no bolt".into())),
    }
    let theirs = match head.options {
        Some(Json::Object(m)) => m,
        _ => return Err(err("not a snapshot: it has no `options`".into())),
    };
    let changes = option_changes(&theirs, options);
    if !changes.is_empty() {
        return Err(err(format!(
            "the snapshot was taken with other options: {}",
            changes.join("; ")
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let body: Body<S> =
        serde_path_to_error::deserialize(de).map_err(|e| err(format!("corrupt snapshot: {e}")))?;
    Ok(body.state)
}

/// One line per option whose value differs between the snapshot's options and the bolt's.
fn option_changes(snapshot: &StateOptions, bolt: &StateOptions) -> Vec<String> {
    let mut names: Vec<&String> = snapshot.keys().chain(bolt.keys()).collect();
    names.sort();
    names.dedup();
    let shown = crate::state::options::shown;
    names
        .into_iter()
        .filter_map(|o| {
            let (a, b) = (snapshot.get(o), bolt.get(o));
            (a.unwrap_or(&Json::Null) != b.unwrap_or(&Json::Null)).then(|| {
                format!(
                    "option `{o}` is {} in the snapshot and {} in this bolt",
                    shown(a),
                    shown(b)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(window: &str) -> StateOptions {
        StateOptions::from_iter([("window".to_string(), Json::from(window))])
    }

    fn refused(bytes: &[u8]) -> String {
        match decode::<Vec<u32>>("rank", &opts("30s"), bytes) {
            Ok(v) => panic!("restored {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_its_snapshot() {
        let bytes = encode("rank", &opts("30s"), &vec![1u32, 2]).unwrap_or_default();
        assert!(bytes.starts_with(br#"{"version":1,"bolt":"rank","#));
        let back: Vec<u32> = decode("rank", &opts("30s"), &bytes).unwrap_or_default();
        assert_eq!(back, vec![1, 2]);

        let e = match decode::<Vec<u32>>("rank", &opts("1m"), &bytes) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("option `window` is 30s in the snapshot and 1m in this bolt"),
            "{e}"
        );
        let e = match decode::<Vec<u32>>("count", &opts("30s"), &bytes) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("of a `rank` bolt, not of a `count` bolt"), "{e}");

        let e = refused(br#"{"version":2,"bolt":"rank","options":{},"state":"?"}"#);
        assert!(
            e.contains("format version 2, this build reads version 1 only"),
            "{e}"
        );
        let e = refused(br#"{"bolt":"rank"}"#);
        assert!(e.contains("no `version`"), "{e}");
        let e = refused(&bytes[..bytes.len() - 1]);
        assert!(e.contains("corrupt or truncated"), "{e}");
        let e =
            refused(br#"{"version":1,"bolt":"rank","options":{"window":"30s"},"state":[1,"x"]}"#);
        assert!(e.contains("corrupt snapshot: state[1]"), "{e}");
        assert!(refused(b"").contains("corrupt or truncated"));
    }
}
