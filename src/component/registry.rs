//! The registry of components by name: what topology files and the CLI can use.
//!
//! Each built-in component is a serde config struct with `build()`; the same struct is
//! used from Rust (`GeneratorSpoutConfig { seed: 7, ..Default::default() }.build()`) and
//! from TOML (`type = "generator"`, `seed = 7`). Users register their own in their own
//! `main` and call [`crate::cli::main_with`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::component::{BoltFactory, SpoutFactory};

/// Why a component could not be built from its options.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An option whose value does not fit: `key` is its path among the options (empty
    /// when the message names the option, as for an unknown or a missing one).
    #[error("{message}")]
    Options { key: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A component's options: a serde struct with defaults.
pub trait ComponentConfig: DeserializeOwned + Serialize + Default + 'static {
    /// The `type` name in topology files.
    const NAME: &'static str;
    /// One line for `squall components`.
    const DESCRIPTION: &'static str;
}

pub trait SpoutConfig: ComponentConfig {
    fn build(&self) -> Result<SpoutFactory, BuildError>;
}

pub trait BoltConfig: ComponentConfig {
    fn build(&self) -> Result<BoltFactory, BuildError>;
}

type SpoutBuilder = Arc<dyn Fn(toml::Value) -> Result<SpoutFactory, BuildError> + Send + Sync>;
type BoltBuilder = Arc<dyn Fn(toml::Value) -> Result<BoltFactory, BuildError> + Send + Sync>;

/// What `squall components` shows of one component.
#[derive(Clone, Debug)]
pub struct ComponentInfo {
    pub name: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    /// The options with their defaults, as TOML.
    pub defaults: toml::Table,
}

/// Components by name.
#[derive(Clone, Default)]
pub struct Registry {
    spouts: BTreeMap<&'static str, (SpoutBuilder, ComponentInfo)>,
    bolts: BTreeMap<&'static str, (BoltBuilder, ComponentInfo)>,
}

fn info<C: ComponentConfig>(kind: &'static str) -> ComponentInfo {
    let defaults = toml::Table::try_from(C::default()).unwrap_or_default();
    ComponentInfo {
        name: C::NAME,
        kind,
        description: C::DESCRIPTION,
        defaults,
    }
}

fn parse<C: ComponentConfig>(options: toml::Value) -> Result<C, BuildError> {
    serde_path_to_error::deserialize(options).map_err(
        |e: serde_path_to_error::Error<toml::de::Error>| {
            let path = e.path().to_string();
            BuildError::Options {
                key: if matches!(path.as_str(), "" | "." | "?") {
                    String::new()
                } else {
                    path
                },
                message: e.inner().message().to_string(),
            }
        },
    )
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry::default()
    }

    pub fn register_spout<C: SpoutConfig>(&mut self) -> &mut Self {
        let b: SpoutBuilder = Arc::new(|v| parse::<C>(v)?.build());
        self.spouts.insert(C::NAME, (b, info::<C>("spout")));
        self
    }

    pub fn register_bolt<C: BoltConfig>(&mut self) -> &mut Self {
        let b: BoltBuilder = Arc::new(|v| parse::<C>(v)?.build());
        self.bolts.insert(C::NAME, (b, info::<C>("bolt")));
        self
    }

    pub fn build_spout(
        &self,
        kind: &str,
        options: toml::Value,
    ) -> Option<Result<SpoutFactory, BuildError>> {
        self.spouts.get(kind).map(|(b, _)| b(options))
    }

    pub fn build_bolt(
        &self,
        kind: &str,
        options: toml::Value,
    ) -> Option<Result<BoltFactory, BuildError>> {
        self.bolts.get(kind).map(|(b, _)| b(options))
    }

    pub fn spout_names(&self) -> Vec<&'static str> {
        self.spouts.keys().copied().collect()
    }

    pub fn bolt_names(&self) -> Vec<&'static str> {
        self.bolts.keys().copied().collect()
    }

    /// Every component, spouts first.
    pub fn infos(&self) -> Vec<ComponentInfo> {
        self.spouts
            .values()
            .map(|(_, i)| i.clone())
            .chain(self.bolts.values().map(|(_, i)| i.clone()))
            .collect()
    }
}
