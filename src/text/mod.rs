//! Text and tweets: tokenizing, hashtags, the tweet model and its JSON shapes, and the
//! deterministic tweet generator.

pub mod generator;
pub mod hashtags;
pub mod prefixed_tokens;
pub mod short_text;
pub mod tokenize;
pub mod tweet;
