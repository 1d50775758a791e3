//! Registering your own bolt so that topology files can use it, then handing over to
//! squall's CLI. Try:
//!
//!   cargo run --release --example custom_component -- components
//!   cargo run --release --example custom_component -- topology run my-topology.toml
//!
//! with a bolt declared as `type = "shout"` in `my-topology.toml`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use squall::component::BoltFactory;
use squall::component::registry::{BoltConfig, BuildError, ComponentConfig};
use squall::{Bolt, BoltCollector, ComponentResult, Fields, OutputDeclarer, Tuple, Value};

/// Options of the `shout` bolt: upper-cases a text field.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ShoutConfig {
    field: Option<String>,
}

impl ComponentConfig for ShoutConfig {
    const NAME: &'static str = "shout";
    const DESCRIPTION: &'static str = "upper-cases a text field (an example of a user component)";
}

impl BoltConfig for ShoutConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        let field = self.field.clone().unwrap_or_else(|| "word".into());
        Ok(Arc::new(move || {
            Box::new(Shout {
                field: field.clone(),
            })
        }))
    }
}

struct Shout {
    field: String,
}

impl Bolt for Shout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let text = input
            .get_str(&self.field)
            .ok_or_else(|| format!("no field `{}`", self.field))?;
        out.emit(vec![Value::from(text.to_uppercase())])
    }
}

fn main() -> std::process::ExitCode {
    let mut registry = squall::builtin::registry();
    registry.register_bolt::<ShoutConfig>();
    squall::cli::main_with(registry)
}
