//! Topology files (`topologies/*.toml`): the same topology as the Rust builder, with the
//! registry's components and their options. Errors name the file, line and key.

use std::fmt;
use std::path::Path;

use super::builder::{Topology, TopologyBuilder};
use super::error::TopologyError;
use super::grouping::{Grouping, StreamRef};
use crate::component::registry::Registry;
use crate::config::Config;

/// A topology file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: ", self.file, l)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

/// A loaded topology file: the validated topology and its run config.
pub struct TopologyFile {
    pub topology: Topology,
    pub config: Config,
    /// What `--brokers` did (nothing without it).
    pub brokers: super::BrokersFilled,
}

/// What the command line changes in a topology file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--set KEY=VALUE`, applied in order.
    pub sets: Vec<String>,
    /// `--brokers`: the brokers of every Kafka spout and sink that names none, in the
    /// file or by `--set`.
    pub brokers: Option<String>,
}

/// Loads and validates a topology file, applying `--set KEY=VALUE` overrides first.
pub fn load(path: &Path, sets: &[String], registry: &Registry) -> Result<TopologyFile, FileError> {
    let overrides = Overrides {
        sets: sets.to_vec(),
        brokers: None,
    };
    load_with(path, &overrides, registry)
}

/// Loads and validates a topology file with the command line's overrides.
pub fn load_with(
    path: &Path,
    overrides: &Overrides,
    registry: &Registry,
) -> Result<TopologyFile, FileError> {
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| FileError {
        file: origin.clone(),
        line: None,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    load_str_with(&src, &origin, overrides, registry)
}

struct Ctx<'a> {
    src: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, section: Option<&str>, key: &str, message: impl Into<String>) -> FileError {
        FileError {
            file: self.file.to_string(),
            line: section.and_then(|s| locate(self.src, s, key.rsplit('.').next())),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The 1-based line of `key` inside table `[section]` (or of the header when the key is
/// not found there).
fn locate(src: &str, section: &str, key: Option<&str>) -> Option<usize> {
    let mut in_section = false;
    let mut header = None;
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').trim_end_matches(']').trim();
            in_section = name == section;
            if in_section {
                header = Some(i + 1);
            }
            continue;
        }
        if in_section && let Some(k) = key {
            let lhs = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if t.contains('=') && lhs == k {
                return Some(i + 1);
            }
        }
    }
    header
}

fn line_of_offset(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// Parses a `--set` value as TOML (numbers, booleans, arrays, quoted strings); anything
/// else is taken as a bare string.
fn parse_set_value(v: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {v}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(v.to_string())),
        Err(_) => toml::Value::String(v.to_string()),
    }
}

fn apply_set(doc: &mut toml::Table, set: &str, file: &str) -> Result<(), FileError> {
    let bad = |message: String| FileError {
        file: file.to_string(),
        line: None,
        key: set.to_string(),
        message,
    };
    let (path, value) = set
        .split_once('=')
        .ok_or_else(|| bad("--set needs KEY=VALUE, e.g. spouts.source.rate=50000".into()))?;
    let parts: Vec<&str> = path.trim().split('.').collect();
    let value = parse_set_value(value.trim());
    match parts.as_slice() {
        ["config", key] => {
            let t = doc
                .entry("config")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = t {
                t.insert(key.to_string(), value);
            }
            Ok(())
        }
        [section @ ("spouts" | "bolts"), comp, rest @ ..] if !rest.is_empty() => {
            let table = doc
                .get_mut(*section)
                .and_then(|s| s.as_table_mut())
                .and_then(|s| s.get_mut(*comp))
                .and_then(|c| c.as_table_mut())
                .ok_or_else(|| bad(format!("there is no component `{comp}` under [{section}]")))?;
            let mut t = table;
            for p in &rest[..rest.len() - 1] {
                t = t
                    .entry(p.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| bad(format!("`{p}` is not a table")))?;
            }
            t.insert(rest[rest.len() - 1].to_string(), value);
            Ok(())
        }
        _ => Err(bad(
            "keys look like spouts.NAME.OPTION, bolts.NAME.OPTION or config.OPTION".into(),
        )),
    }
}

fn parse_grouping(
    v: &toml::Table,
    at: &dyn Fn(&str) -> FileError,
) -> Result<(StreamRef, Grouping, bool), FileError> {
    let from = v
        .get("from")
        .and_then(|f| f.as_str())
        .ok_or_else(|| at("each input needs `from = \"component\"`"))?;
    let stream = v
        .get("stream")
        .and_then(|s| s.as_str())
        .unwrap_or(crate::data::tuple::DEFAULT_STREAM);
    let fields: Vec<String> = v
        .get("fields")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let g = match v
        .get("grouping")
        .and_then(|g| g.as_str())
        .unwrap_or("shuffle")
    {
        "shuffle" => Grouping::Shuffle,
        "fields" => Grouping::Fields(fields),
        "all" => Grouping::All,
        "global" => Grouping::Global,
        "direct" => Grouping::Direct,
        "local_or_shuffle" => Grouping::LocalOrShuffle,
        other => {
            return Err(at(&format!(
                "unknown grouping `{other}` (shuffle, fields, all, global, direct, local_or_shuffle)"
            )));
        }
    };
    for k in v.keys() {
        if !matches!(
            k.as_str(),
            "from" | "stream" | "grouping" | "fields" | "distributed"
        ) {
            return Err(at(&format!(
                "unknown input key `{k}` (from, stream, grouping, fields, distributed)"
            )));
        }
    }
    let distributed = match v.get("distributed") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return Err(at("`distributed` is true or false")),
    };
    if distributed && !matches!(g, Grouping::Fields(_) | Grouping::Global) {
        return Err(at(&format!(
            "a `{}` grouping cannot be distributed: only `fields` and `global` inputs cross processes",
            g.name()
        )));
    }
    Ok((
        StreamRef {
            component: from.to_string(),
            stream: stream.to_string(),
        },
        g,
        distributed,
    ))
}

/// Loads a topology from TOML text; `origin` names it in errors.
pub fn load_str(
    src: &str,
    origin: &str,
    sets: &[String],
    registry: &Registry,
) -> Result<TopologyFile, FileError> {
    let overrides = Overrides {
        sets: sets.to_vec(),
        brokers: None,
    };
    load_str_with(src, origin, &overrides, registry)
}

/// Loads a topology from TOML text with the command line's overrides.
pub fn load_str_with(
    src: &str,
    origin: &str,
    overrides: &Overrides,
    registry: &Registry,
) -> Result<TopologyFile, FileError> {
    let cx = Ctx { src, file: origin };
    let mut doc: toml::Table = toml::from_str(src).map_err(|e| FileError {
        file: origin.to_string(),
        line: e.span().map(|s| line_of_offset(src, s.start)),
        key: String::new(),
        message: e.message().to_string(),
    })?;
    for s in &overrides.sets {
        apply_set(&mut doc, s, origin)?;
    }
    let brokers = match &overrides.brokers {
        Some(b) => super::brokers::fill_in(&mut doc, b),
        None => Default::default(),
    };
    for k in doc.keys() {
        if !matches!(k.as_str(), "name" | "config" | "spouts" | "bolts") {
            return Err(cx.err(
                None,
                k,
                "unknown top-level key (name, config, spouts, bolts)",
            ));
        }
    }
    let name = doc
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("topology")
        .to_string();
    let config: Config = match doc.get("config") {
        None => Config::default(),
        Some(c) => serde_path_to_error::deserialize(c.clone()).map_err(
            |e: serde_path_to_error::Error<toml::de::Error>| {
                // The path names the key whose value is wrong; for an unknown key it
                // is empty and the message names it.
                let path = e.path().to_string();
                let message = e.inner().message().to_string();
                let key = if path.is_empty() || path == "." || path == "?" {
                    field_in(&message).to_string()
                } else {
                    path
                };
                cx.err(Some("config"), &format!("config.{key}"), message)
            },
        )?,
    };
    config.validate().map_err(|e| {
        cx.err(
            Some("config"),
            &format!("config.{}", e.key),
            e.reason.clone(),
        )
    })?;

    let mut b = TopologyBuilder::new(name);
    let empty = toml::Table::new();
    let spouts = doc
        .get("spouts")
        .and_then(|s| s.as_table())
        .unwrap_or(&empty);
    let bolts = doc
        .get("bolts")
        .and_then(|s| s.as_table())
        .unwrap_or(&empty);
    if spouts.is_empty() {
        return Err(cx.err(
            None,
            "spouts",
            "the topology has no spout; add a [spouts.source] table",
        ));
    }
    for (kind, table) in [("spouts", spouts), ("bolts", bolts)] {
        for (cname, def) in table {
            let section = format!("{kind}.{cname}");
            let key = |k: &str| format!("{section}.{k}");
            let def = def
                .as_table()
                .ok_or_else(|| cx.err(None, &section, "must be a table"))?;
            let mut options = def.clone();
            let ty = options
                .remove("type")
                .and_then(|t| t.as_str().map(str::to_string))
                .ok_or_else(|| {
                    cx.err(
                        Some(&section),
                        &key("type"),
                        "missing `type` (see `squall components`)",
                    )
                })?;
            let parallelism = match options.remove("parallelism") {
                None => 1,
                Some(toml::Value::Integer(p)) if p >= 0 => p as usize,
                Some(other) => {
                    return Err(cx.err(
                        Some(&section),
                        &key("parallelism"),
                        format!("must be a positive integer, got {other}"),
                    ));
                }
            };
            let inputs = options.remove("inputs");
            let opt_err = |e: crate::component::registry::BuildError| {
                let msg = e.to_string();
                // The option whose value is wrong, else the one the message names.
                let option = match &e {
                    crate::component::registry::BuildError::Options { key: k, .. }
                        if !k.is_empty() =>
                    {
                        k
                    }
                    _ => field_in(&msg),
                };
                cx.err(Some(&section), &key(option), msg)
            };
            if kind == "spouts" {
                if inputs.is_some() {
                    return Err(cx.err(Some(&section), &key("inputs"), "a spout has no inputs"));
                }
                let event_time = match options.remove("event_time") {
                    None => None,
                    Some(v) => {
                        let cfg: crate::time::event_time::EventTimeConfig =
                            v.try_into().map_err(|e: toml::de::Error| {
                                cx.err(
                                    Some(&section),
                                    &key("event_time"),
                                    format!(
                                        "{} (expected {{ field = \"created_at\", lag = \"5s\", idle_timeout = \"10s\" }})",
                                        e.message()
                                    ),
                                )
                            })?;
                        cfg.validate().map_err(|e| {
                            cx.err(Some(&section), &key("event_time"), e.to_string())
                        })?;
                        Some(cfg)
                    }
                };
                let factory = registry
                    .build_spout(&ty, toml::Value::Table(options))
                    .ok_or_else(|| {
                        cx.err(
                            Some(&section),
                            &key("type"),
                            format!(
                                "unknown spout `{ty}` (built-in spouts: {})",
                                registry.spout_names().join(", ")
                            ),
                        )
                    })?
                    .map_err(opt_err)?;
                b.spout_factory(cname, factory, parallelism);
                if let Some(cfg) = event_time {
                    b.set_event_time(cname, cfg);
                }
            } else {
                let factory = registry
                    .build_bolt(&ty, toml::Value::Table(options))
                    .ok_or_else(|| {
                        cx.err(
                            Some(&section),
                            &key("type"),
                            format!(
                                "unknown bolt `{ty}` (built-in bolts: {})",
                                registry.bolt_names().join(", ")
                            ),
                        )
                    })?
                    .map_err(opt_err)?;
                let at = |m: &str| cx.err(Some(&section), &key("inputs"), m.to_string());
                let inputs = match inputs {
                    Some(toml::Value::Array(a)) => a,
                    Some(_) => return Err(at("must be an array of { from, grouping, fields }")),
                    None => Vec::new(),
                };
                let mut d = b.bolt_factory(cname, factory, parallelism);
                for i in &inputs {
                    let t = i
                        .as_table()
                        .ok_or_else(|| at("each input is a table { from, grouping, fields }"))?;
                    let (src_ref, g, distributed) = parse_grouping(t, &at)?;
                    d = d.input(src_ref, g, distributed);
                }
            }
        }
    }
    let topology = b.build().map_err(|e| topology_error(&cx, e))?;
    Ok(TopologyFile {
        topology,
        config,
        brokers,
    })
}

/// The field an error message is about: serde's "unknown field `x`" or "missing field `x`".
fn field_in(msg: &str) -> &str {
    msg.split('`').nth(1).unwrap_or("")
}

fn topology_error(cx: &Ctx<'_>, e: TopologyError) -> FileError {
    let (section, key) = match &e {
        TopologyError::UnknownSource { bolt, .. }
        | TopologyError::UnknownStream { bolt, .. }
        | TopologyError::UnknownField { bolt, .. }
        | TopologyError::EmptyFields { bolt, .. } => {
            (format!("bolts.{bolt}"), "inputs".to_string())
        }
        TopologyError::NoInputs(b) => (format!("bolts.{b}"), "inputs".to_string()),
        TopologyError::TooManyConnections { bolt, .. } => {
            (format!("bolts.{bolt}"), "parallelism".to_string())
        }
        TopologyError::ZeroParallelism(c)
        | TopologyError::TooManyTasks { component: c, .. }
        | TopologyError::TooManyTasksInAll { largest: c, .. } => (
            if cx.src.contains(&format!("[spouts.{c}]")) {
                format!("spouts.{c}")
            } else {
                format!("bolts.{c}")
            },
            "parallelism".to_string(),
        ),
        TopologyError::Cycle(path) => (
            format!("bolts.{}", path.first().cloned().unwrap_or_default()),
            "inputs".to_string(),
        ),
        TopologyError::DuplicateName(n) => (format!("bolts.{n}"), String::new()),
        TopologyError::NoSpouts => ("spouts".to_string(), String::new()),
        TopologyError::UnknownTimeField { spout, .. } => {
            (format!("spouts.{spout}"), "event_time.field".to_string())
        }
    };
    let full_key = if key.is_empty() {
        section.clone()
    } else {
        format!("{section}.{key}")
    };
    cx.err(Some(&section), &full_key, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Result<TopologyFile, FileError> {
        load_str(src, "t.toml", &[], &crate::builtin::registry())
    }

    const OK: &str = r#"
name = "t"
[spouts.source]
type = "generator"
limit = 10

[bolts.split]
type = "tokenize"
inputs = [{ from = "source" }]

[bolts.sink]
type = "null"
inputs = [{ from = "split", grouping = "fields", fields = ["word"] }]
"#;

    #[test]
    fn loads_a_valid_file() {
        let t = load(OK).map_err(|e| e.to_string());
        assert!(t.is_ok(), "{t:?}", t = t.err());
    }

    #[test]
    fn set_overrides_and_rejects_unknown_component() {
        let r = load_str(
            OK,
            "t.toml",
            &["spouts.nope.limit=1".into()],
            &crate::builtin::registry(),
        );
        assert_eq!(
            r.err().map(|e| e.to_string()),
            Some(
                "t.toml: `spouts.nope.limit=1`: there is no component `nope` under [spouts]".into()
            )
        );
        assert!(
            load_str(
                OK,
                "t.toml",
                &["spouts.source.limit=5".into()],
                &crate::builtin::registry()
            )
            .is_ok()
        );
    }

    #[test]
    fn parse_set_values() {
        assert_eq!(parse_set_value("5"), toml::Value::Integer(5));
        assert_eq!(parse_set_value("true"), toml::Value::Boolean(true));
        assert_eq!(
            parse_set_value("localhost"),
            toml::Value::String("localhost".into())
        );
    }

    /// Fuzz properties (see `crate::fuzz_support`): the repository's topology files with
    /// values removed, retyped or added, their text cut or bit-flipped, and any `--set`,
    /// load or give a `FileError`, never a panic.
    mod fuzz {
        use super::*;
        use crate::fuzz_support::{
            byte_mutation, config, json_mutation, mutate_bytes, mutate_json,
        };
        use proptest::prelude::*;

        const FILES: [&str; 9] = [
            OK,
            include_str!("../../topologies/distributed-hashtags.toml"),
            include_str!("../../topologies/file-hashtags.toml"),
            include_str!("../../topologies/kafka-hashtags.toml"),
            include_str!("../../topologies/socket-hashtags.toml"),
            include_str!("../../topologies/socket-wordcount.toml"),
            include_str!("../../topologies/trending-hashtags-event-time.toml"),
            include_str!("../../topologies/trending-hashtags.toml"),
            include_str!("../../topologies/twitter-hashtags.toml"),
        ];

        fn load_sets(src: &str, sets: &[String]) -> Result<(), TestCaseError> {
            let registry = crate::builtin::registry();
            if let Err(e) = load_str(src, "t.toml", sets, &registry) {
                prop_assert!(!e.message.is_empty(), "an error without a message: {e:?}");
                if let Some(line) = e.line {
                    prop_assert!(line >= 1 && line <= src.lines().count() + 1, "line {line}");
                }
            }
            Ok(())
        }

        fn set() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z._]{0,24}=[^\n]{0,16}",
                "(spouts|bolts)\\.(source|count|split|nope)\\.[a-z_.]{0,12}=[0-9a-z\"\\[\\]{}.=, -]{0,16}",
                "config\\.[a-z_]{0,16}=[0-9a-z\"\\[\\]{}.=, \n-]{0,16}",
                ".{0,40}",
            ]
        }

        proptest! {
            #![proptest_config(config(128))]

            #[test]
            fn fuzz_topology_near_valid(
                file in 0..FILES.len(),
                muts in prop::collection::vec(json_mutation(), 0..4),
            ) {
                let doc: toml::Table = toml::from_str(FILES[file])
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let json = serde_json::to_value(&doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
                // A mutation TOML cannot hold (a null) is left out.
                let Ok(back) = toml::Table::try_from(mutate_json(json, &muts)) else {
                    return Ok(());
                };
                let Ok(text) = toml::to_string(&back) else {
                    return Ok(());
                };
                load_sets(&text, &[])?;
            }

            #[test]
            fn fuzz_topology_text(
                file in 0..FILES.len(),
                bytes in prop::collection::vec(byte_mutation(), 1..4),
            ) {
                let text = mutate_bytes(FILES[file].as_bytes().to_vec(), &bytes);
                load_sets(&String::from_utf8_lossy(&text), &[])?;
            }

            #[test]
            fn fuzz_set_values(file in 0..FILES.len(), sets in prop::collection::vec(set(), 1..4)) {
                load_sets(FILES[file], &sets)?;
                for s in &sets {
                    if let Some((_, v)) = s.split_once('=') {
                        let _ = parse_set_value(v.trim());
                    }
                }
            }
        }
    }
}
