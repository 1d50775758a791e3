//! What the fuzz properties share (test builds only). Every parser that reads untrusted
//! bytes has `fuzz_*` proptest properties next to it: never a panic, memory bounded, every
//! rejected input a typed error or a counted anomaly. See `docs/reliability.md`.
//!
//! Each property runs a few cases by default, so the whole suite stays fast; a long
//! campaign sets `PROPTEST_CASES` (e.g. `PROPTEST_CASES=20000 cargo test --profile
//! test-release --lib fuzz_`). A failure is saved under `proptest-regressions/` (kept in
//! the repository) and replayed first on every later run.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// A proptest config running `default_cases` cases, or `PROPTEST_CASES` when set.
pub(crate) fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// Any JSON value, up to a few levels deep.
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        "[#@a-zA-Z0-9 _\u{FFFD}é🦀]{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One change to a JSON document, at the node picked by the index.
#[derive(Debug, Clone)]
pub(crate) enum JsonMutation {
    /// Remove the node (a missing field or array element).
    Remove(Index),
    /// Replace the node by any value (a wrong type, an odd value).
    Replace(Index, serde_json::Value),
    /// Wrap the node in an array (`x` becomes `[x]`).
    WrapInArray(Index),
    /// Add a field to an object node.
    AddField(Index, String, serde_json::Value),
}

pub(crate) fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        any::<Index>().prop_map(JsonMutation::Remove),
        (any::<Index>(), json_value()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        any::<Index>().prop_map(JsonMutation::WrapInArray),
        (
            any::<Index>(),
            prop_oneof![
                Just("data".to_string()),
                Just("text".to_string()),
                Just("id".to_string()),
                Just("errors".to_string()),
                Just("retweeted_status".to_string()),
                Just("entities".to_string()),
                "[a-z_]{1,8}"
            ],
            json_value()
        )
            .prop_map(|(i, k, v)| JsonMutation::AddField(i, k, v)),
    ]
}

/// Every node of `v`, as the path of keys and indices that leads to it (root: empty).
fn json_paths(v: &serde_json::Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, c) in m {
                here.push(k.clone());
                json_paths(c, here, out);
                here.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(i.to_string());
                json_paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn json_at<'a>(v: &'a mut serde_json::Value, path: &[String]) -> Option<&'a mut serde_json::Value> {
    path.iter().try_fold(v, |v, seg| match v {
        serde_json::Value::Object(m) => m.get_mut(seg),
        serde_json::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// `v` with `muts` applied in order.
pub(crate) fn mutate_json(mut v: serde_json::Value, muts: &[JsonMutation]) -> serde_json::Value {
    for m in muts {
        let mut paths = Vec::new();
        json_paths(&v, &mut Vec::new(), &mut paths);
        let pick = |i: &Index| paths[i.index(paths.len())].clone();
        match m {
            JsonMutation::Remove(i) => {
                let path = pick(i);
                if let Some((last, parent)) = path.split_last()
                    && let Some(p) = json_at(&mut v, parent)
                {
                    match p {
                        serde_json::Value::Object(o) => {
                            o.remove(last);
                        }
                        serde_json::Value::Array(a) => {
                            if let Ok(k) = last.parse::<usize>()
                                && k < a.len()
                            {
                                a.remove(k);
                            }
                        }
                        _ => {}
                    }
                }
            }
            JsonMutation::Replace(i, new) => {
                if let Some(node) = json_at(&mut v, &pick(i)) {
                    *node = new.clone();
                }
            }
            JsonMutation::WrapInArray(i) => {
                if let Some(node) = json_at(&mut v, &pick(i)) {
                    *node = serde_json::Value::Array(vec![node.take()]);
                }
            }
            JsonMutation::AddField(i, k, new) => {
                if let Some(serde_json::Value::Object(o)) = json_at(&mut v, &pick(i)) {
                    o.insert(k.clone(), new.clone());
                }
            }
        }
    }
    v
}

/// One change to a byte string.
#[derive(Debug, Clone)]
pub(crate) enum ByteMutation {
    /// Cut the input at this point.
    Truncate(Index),
    /// Flip one bit of the byte at this point.
    FlipBit(Index, u8),
    /// Put a byte in at this point.
    Insert(Index, u8),
    /// Overwrite the bytes from this point.
    Overwrite(Index, Vec<u8>),
}

pub(crate) fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        any::<Index>().prop_map(ByteMutation::Truncate),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteMutation::FlipBit(i, b)),
        (
            any::<Index>(),
            prop_oneof![
                any::<u8>(),
                Just(b'\n'),
                Just(b'\r'),
                Just(0),
                Just(b'"'),
                Just(b'{'),
                Just(b'\\')
            ]
        )
            .prop_map(|(i, b)| ByteMutation::Insert(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| ByteMutation::Overwrite(i, b)),
    ]
}

/// `bytes` with `muts` applied in order.
pub(crate) fn mutate_bytes(mut bytes: Vec<u8>, muts: &[ByteMutation]) -> Vec<u8> {
    for m in muts {
        let n = bytes.len();
        match m {
            ByteMutation::Truncate(i) => bytes.truncate(i.index(n + 1)),
            ByteMutation::FlipBit(i, b) if n > 0 => bytes[i.index(n)] ^= 1 << b,
            ByteMutation::FlipBit(..) => {}
            ByteMutation::Insert(i, b) => bytes.insert(i.index(n + 1), *b),
            ByteMutation::Overwrite(i, new) if n > 0 => {
                let at = i.index(n);
                let end = (at + new.len()).min(n);
                bytes[at..end].copy_from_slice(&new[..end - at]);
            }
            ByteMutation::Overwrite(..) => {}
        }
    }
    bytes
}

/// Bytes weighted towards what framers and JSON parsers care about.
pub(crate) fn framing_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"ab{}\":,[]".to_vec()),
            2 => Just(b'\n'),
            2 => Just(b'\r'),
            1 => Just(0u8),
            1 => prop::sample::select(vec![0xffu8, 0xfe, 0xc3, 0xa9, 0x80, 0xe2]),
            1 => any::<u8>(),
        ],
        0..max_len,
    )
}

/// The files of `tests/fuzz-corpus/<dir>`, by name.
fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|f| {
            let f = f.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let bytes = std::fs::read(f.path()).unwrap_or_else(|e| panic!("{e}"));
            (f.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} is empty", path.display());
    out
}

/// Replays every input of `tests/fuzz-corpus/` through its parser.
#[test]
fn fuzz_corpus_replays() {
    use crate::io::lines::{LineSplitter, RawLine};
    use crate::tweet::wire::{StreamMessage, parse_line, to_v2_json};

    for (name, bytes) in corpus("tweet") {
        if let Ok(StreamMessage::Tweet(t)) = parse_line(&bytes) {
            match parse_line(to_v2_json(&t).as_bytes()) {
                Ok(StreamMessage::Tweet(back)) => assert_eq!(back, t, "{name}"),
                other => panic!("{name}: rendered back as {other:?}"),
            }
        }
    }
    for (_name, bytes) in corpus("stream") {
        for size in [1, 2, 7, 64, 4096] {
            let mut s = LineSplitter::new(64);
            for chunk in bytes.chunks(size) {
                s.feed(chunk, |l| {
                    if let RawLine::Line(l) = l {
                        let _ = parse_line(l);
                    }
                });
                assert!(s.pending() <= 65);
            }
        }
    }
    let registry = crate::builtin::registry();
    let load = |src: &str, sets: &[String]| {
        crate::topology::file::load_str(src, "t.toml", sets, &registry)
            .err()
            .map(|e| e.to_string())
    };
    for (name, bytes) in corpus("topology") {
        let e = load(&String::from_utf8_lossy(&bytes), &[]);
        assert_eq!(e.is_none(), name.starts_with("ok-"), "{name}: {e:?}");
    }
    let base = include_str!("../topologies/trending-hashtags.toml");
    for (_name, bytes) in corpus("set") {
        for set in String::from_utf8_lossy(&bytes).lines() {
            let _ = load(base, &[set.replace("\\n", "\n")]);
        }
    }
}
