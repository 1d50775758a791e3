//! The options a component's stored state depends on (micro-batch mode).
//!
//! State written under one option value is wrong under another: a window kept as 6 slots
//! of 10 s is not a 2 s window, a ranking kept to 10 keys is not one of 3, and a
//! generator's recorded batches (sequence ranges) stand for other tweets under another
//! seed. So the store keeps, per component, the options its state depends on
//! ([`crate::component::Bolt::state_options`], [`crate::component::Spout::state_options`]) and a run whose
//! values differ is refused, naming each option with its stored and new value.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

/// Options by name (JSON values, as the component's options serialize).
pub type StateOptions = serde_json::Map<String, Json>;

/// Every component's state options, by component name (components without any left out).
pub type TopologyOptions = BTreeMap<String, StateOptions>;

/// The options of `cfg` (a component's serde options struct) named in `names`.
pub fn pick<C: Serialize>(cfg: &C, names: &[&str]) -> StateOptions {
    let all = all_but(cfg, &[]);
    names
        .iter()
        .map(|n| (n.to_string(), all.get(*n).cloned().unwrap_or(Json::Null)))
        .collect()
}

/// Every option of `cfg` except those named in `except` (options that change neither the
/// state nor the batches, e.g. a rate).
pub fn all_but<C: Serialize>(cfg: &C, except: &[&str]) -> StateOptions {
    // Plain option structs always serialize; anything else has no options to compare.
    let mut all = match serde_json::to_value(cfg) {
        Ok(Json::Object(m)) => m,
        _ => StateOptions::new(),
    };
    for n in except {
        all.remove(*n);
    }
    all
}

pub(crate) fn shown(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => "(not set)".into(),
        Some(Json::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// One line per option whose value differs between the stored options and this run's.
pub fn changes(stored: &TopologyOptions, now: &TopologyOptions) -> Vec<String> {
    let empty = StateOptions::new();
    let mut names: Vec<&String> = stored.keys().chain(now.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for c in names {
        let (old, new) = (
            stored.get(c).unwrap_or(&empty),
            now.get(c).unwrap_or(&empty),
        );
        let mut opts: Vec<&String> = old.keys().chain(new.keys()).collect();
        opts.sort();
        opts.dedup();
        for o in opts {
            let (a, b) = (old.get(o), new.get(o));
            if a.unwrap_or(&Json::Null) != b.unwrap_or(&Json::Null) {
                out.push(format!(
                    "component `{c}` option `{o}` was {} when the state was written, and is {} in this run",
                    shown(a),
                    shown(b)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Opts {
        window: &'static str,
        seed: u64,
        rate: f64,
        field: Option<String>,
    }

    fn of(window: &'static str, seed: u64) -> TopologyOptions {
        let o = Opts {
            window,
            seed,
            rate: 1.0,
            field: None,
        };
        BTreeMap::from([("c".to_string(), all_but(&o, &["rate"]))])
    }

    #[test]
    fn changes_name_the_component_the_option_and_both_values() {
        assert!(changes(&of("1m", 7), &of("1m", 7)).is_empty());
        let c = changes(&of("1m", 7), &of("2s", 8));
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].contains("`c`") && c[0].contains("`seed`"), "{c:?}");
        assert!(c[0].contains("was 7") && c[0].contains("is 8"), "{c:?}");
        assert!(c[1].contains("`window`") && c[1].contains("1m") && c[1].contains("2s"));
        let picked = pick(
            &Opts {
                window: "1m",
                seed: 1,
                rate: 2.0,
                field: None,
            },
            &["window", "field"],
        );
        assert_eq!(picked.len(), 2);
        assert_eq!(picked.get("field"), Some(&Json::Null));
    }

    #[test]
    fn a_component_missing_on_one_side_counts_as_changed() {
        let c = changes(&of("1m", 7), &TopologyOptions::new());
        assert!(c.iter().any(|l| l.contains("(not set)")), "{c:?}");
    }
}
