//! `null`: accepts and acks everything (for benchmarks).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::{Bolt, ComponentResult};
use crate::data::tuple::Tuple;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct NullConfig {}

impl ComponentConfig for NullConfig {
    const NAME: &'static str = "null";
    const DESCRIPTION: &'static str = "discards every tuple (acking it)";
}

impl BoltConfig for NullConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        Ok(Arc::new(|| Box::new(NullSink)))
    }
}

#[derive(Clone)]
pub struct NullSink;

impl Bolt for NullSink {
    fn execute(&mut self, _input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }
}
