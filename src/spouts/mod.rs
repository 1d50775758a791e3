//! Built-in spouts that need no external system, one module each (the Kafka and Twitter
//! spouts live with their systems: `kafka::spout`, `twitter::spout`).

pub mod file;
pub mod generator;
pub mod pacer;
pub mod replay;
pub mod socket;
