//! The registry of every built-in spout, bolt and sink: what topology files and the CLI can
//! use by name. Each component registers its serde config struct here, once; the TOML
//! loader and the Rust API both build components through it.

use crate::bolts::{chaos, count, hashtags, rank, rolling_count, tokenize, total_rank};
use crate::component::registry::Registry;
use crate::kafka::{sink::KafkaSinkConfig, spout::KafkaSpoutConfig};
use crate::sinks::{console, jsonl, null};
use crate::spouts::{file, generator, socket};
use crate::twitter::spout::TwitterSpoutConfig;

/// A registry holding every built-in component.
pub fn registry() -> Registry {
    let mut r = Registry::empty();
    r.register_spout::<generator::GeneratorSpoutConfig>()
        .register_spout::<socket::SocketSpoutConfig>()
        .register_spout::<file::FileSpoutConfig>()
        .register_spout::<KafkaSpoutConfig>()
        .register_spout::<TwitterSpoutConfig>();
    r.register_bolt::<tokenize::TokenizeConfig>()
        .register_bolt::<hashtags::HashtagsConfig>()
        .register_bolt::<count::CountConfig>()
        .register_bolt::<rolling_count::RollingCountConfig>()
        .register_bolt::<rank::RankConfig>()
        .register_bolt::<total_rank::TotalRankConfig>()
        .register_bolt::<chaos::ChaosConfig>();
    r.register_bolt::<console::ConsoleConfig>()
        .register_bolt::<jsonl::JsonlConfig>()
        .register_bolt::<KafkaSinkConfig>()
        .register_bolt::<null::NullConfig>();
    r
}
