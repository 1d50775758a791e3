//! Tweets: the wire formats squall reads (X API v2, v1.1 and squall's own flat records),
//! the deterministic tweet generator, and the fields a tweet spout emits.

pub mod fields;
pub mod generator;
pub mod wire;
