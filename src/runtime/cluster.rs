//! `LocalCluster`: runs a topology in this process, in the mode its config names.

use super::error::RuntimeError;
use super::running::RunningTopology;
use crate::config::{Config, Mode};
use crate::topology::Topology;

/// Runs topologies in this process, like Storm's `LocalCluster`.
pub struct LocalCluster;

impl LocalCluster {
    /// Starts the topology on its own worker threads and returns at once.
    pub fn submit(topology: Topology, config: Config) -> Result<RunningTopology, RuntimeError> {
        config.validate()?;
        match config.mode {
            Mode::Microbatch => super::microbatch::submit(topology, config),
            Mode::Event => super::event::run::submit(topology, config),
        }
    }
}
