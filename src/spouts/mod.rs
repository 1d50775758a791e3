//! Built-in spouts, one module each.

pub mod file;
pub mod generator;
pub mod kafka;
pub mod pacer;
pub mod replay;
pub mod socket;
pub mod tweet_fields;
pub mod twitter;

use crate::registry::Registry;

pub fn register(r: &mut Registry) {
    r.register_spout::<generator::GeneratorSpoutConfig>();
    r.register_spout::<socket::SocketSpoutConfig>();
    r.register_spout::<file::FileSpoutConfig>();
    r.register_spout::<kafka::KafkaSpoutConfig>();
    r.register_spout::<twitter::TwitterSpoutConfig>();
}
