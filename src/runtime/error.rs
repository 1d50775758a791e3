//! Why a run could not start or ended badly.

use crate::config::ConfigError;

/// Why a run could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not start the runtime thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the runtime thread panicked")]
    Panicked,
    #[error("{}", .0.join("; "))]
    Fatal(Vec<String>),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Priority(#[from] crate::config::priority::PriorityError),
}
