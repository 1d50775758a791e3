//! Text: tokenizing, hashtags, and the short-text buffers the generator writes into.

pub mod hashtags;
pub mod prefixed_tokens;
pub mod short_text;
pub mod tokenize;
