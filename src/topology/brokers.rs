//! `--brokers` (on `topology run` and `kafka replay`): the Kafka cluster of the whole
//! topology. It sets `brokers` on every Kafka spout and sink of a topology file that does
//! not name its own, in the file or by `--set`: a component that names its brokers keeps
//! them.

use crate::component::registry::ComponentConfig;
use crate::kafka::sink::KafkaSinkConfig;
use crate::kafka::spout::KafkaSpoutConfig;

/// The option `--brokers` fills in.
const BROKERS: &str = "brokers";

/// What `--brokers` did to a topology file: its Kafka components (`spouts.NAME`,
/// `bolts.NAME`) by what became of their brokers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokersFilled {
    /// Named no brokers: now those of `--brokers`.
    pub set: Vec<String>,
    /// Named the same brokers already.
    pub same: Vec<String>,
    /// Name other brokers of their own, and keep them.
    pub kept: Vec<String>,
}

impl BrokersFilled {
    /// What to tell a user whose `--brokers` does not reach every Kafka component.
    pub fn warning(&self, brokers: &str) -> Option<String> {
        if !self.kept.is_empty() {
            Some(format!(
                "--brokers {brokers} does not reach {}: they name their own `brokers`",
                self.kept.join(", ")
            ))
        } else if self.set.is_empty() && self.same.is_empty() {
            Some(format!(
                "--brokers {brokers} changed nothing: the topology has no Kafka spout or sink"
            ))
        } else {
            None
        }
    }
}

/// Sets `brokers` on every `kafka` spout and `kafka` sink of `doc` (a topology file with
/// its `--set` overrides applied) that has none.
pub fn fill_in(doc: &mut toml::Table, brokers: &str) -> BrokersFilled {
    let mut filled = BrokersFilled::default();
    for (section, kafka) in [
        ("spouts", KafkaSpoutConfig::NAME),
        ("bolts", KafkaSinkConfig::NAME),
    ] {
        let Some(components) = doc.get_mut(section).and_then(|s| s.as_table_mut()) else {
            continue;
        };
        for (name, def) in components.iter_mut() {
            let Some(def) = def.as_table_mut() else {
                continue;
            };
            if def.get("type").and_then(|t| t.as_str()) != Some(kafka) {
                continue;
            }
            let component = format!("{section}.{name}");
            match def.get(BROKERS) {
                None => {
                    def.insert(BROKERS.into(), toml::Value::String(brokers.into()));
                    filled.set.push(component);
                }
                Some(own) if own.as_str() == Some(brokers) => filled.same.push(component),
                Some(_) => filled.kept.push(component),
            }
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[spouts.source]
type = "kafka"
[spouts.other]
type = "kafka"
brokers = "own:9092"
[spouts.gen]
type = "generator"
[bolts.out]
type = "kafka"
topic = "t"
[bolts.mirror]
type = "kafka"
topic = "m"
brokers = "mirror:9092"
[bolts.sink]
type = "console"
"#;

    fn brokers_of(doc: &toml::Table, section: &str, name: &str) -> Option<String> {
        doc[section][name]
            .get(BROKERS)
            .and_then(|b| b.as_str())
            .map(str::to_string)
    }

    #[test]
    fn fills_in_every_kafka_spout_and_sink_without_brokers_only() {
        let mut doc: toml::Table = toml::from_str(FILE).unwrap_or_default();
        let filled = fill_in(&mut doc, "own:9092");
        assert_eq!(filled.set, ["spouts.source", "bolts.out"]);
        assert_eq!(filled.same, ["spouts.other"]);
        assert_eq!(filled.kept, ["bolts.mirror"]);
        let warning = filled.warning("own:9092").unwrap_or_default();
        assert!(warning.contains("does not reach bolts.mirror"), "{warning}");
        assert_eq!(
            brokers_of(&doc, "spouts", "source").as_deref(),
            Some("own:9092")
        );
        assert_eq!(
            brokers_of(&doc, "bolts", "out").as_deref(),
            Some("own:9092")
        );
        assert_eq!(
            brokers_of(&doc, "spouts", "other").as_deref(),
            Some("own:9092")
        );
        assert_eq!(
            brokers_of(&doc, "bolts", "mirror").as_deref(),
            Some("mirror:9092")
        );
        assert_eq!(brokers_of(&doc, "spouts", "gen"), None);
        assert_eq!(brokers_of(&doc, "bolts", "sink"), None);
    }

    /// A spout and a sink of kind kafka, neither naming its brokers.
    const RUNNABLE: &str = r#"
[spouts.source]
type = "kafka"
[bolts.out]
type = "kafka"
topic = "t"
inputs = [{ from = "source" }]
"#;

    #[test]
    fn the_loader_fills_in_after_the_sets_so_a_set_brokers_is_kept() {
        use crate::topology::file::{Overrides, load_str_with};
        let registry = crate::builtin::registry();
        let load = |sets: &[&str]| {
            let o = Overrides {
                sets: sets.iter().map(|s| s.to_string()).collect(),
                brokers: Some("b:1".into()),
            };
            load_str_with(RUNNABLE, "t.toml", &o, &registry)
                .map(|f| f.brokers.set)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            load(&[]),
            Ok(vec!["spouts.source".into(), "bolts.out".into()])
        );
        assert_eq!(
            load(&["bolts.out.brokers=\"own:1\""]),
            Ok(vec!["spouts.source".into()])
        );
    }

    #[test]
    fn warns_when_brokers_reach_nothing() {
        let mut doc: toml::Table =
            toml::from_str("[spouts.gen]\ntype = \"generator\"\n").unwrap_or_default();
        let filled = fill_in(&mut doc, "b:1");
        assert_eq!(filled, BrokersFilled::default());
        assert!(
            filled
                .warning("b:1")
                .is_some_and(|w| w.contains("no Kafka spout or sink"))
        );
    }
}
