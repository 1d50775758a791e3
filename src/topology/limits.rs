//! The most tasks and connections a topology may have (checked by `build()`).

/// Most tasks one component may have. A task costs memory whether or not it has work
/// (its inbox, its metrics histograms, its actor: about 0.3 MB measured), and tasks beyond
/// the cores only share them: parallelism 100 000 grew to 9 GB and crawled.
pub const MAX_PARALLELISM: usize = 1024;

/// Most tasks a topology may have, all components together.
pub const MAX_TASKS: usize = 2048;

/// Most connections between tasks: a subscription connects every task of its source to
/// every task of the subscriber (`a` × `b`), each with its own transport buffer (about
/// 50 KB measured). 16 384 is two 128-task components grouped by field, about 0.8 GB;
/// two of 256 took 6.6 GB and ran at a seventh of the rate.
pub const MAX_CONNECTIONS: usize = 16_384;
