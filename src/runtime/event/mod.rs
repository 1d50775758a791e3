//! Event mode: each spout task polls its spout and tracks its tuple trees; each bolt task
//! runs a stage of fused bolts over the tuples it receives.

pub(crate) mod bolt_task;
pub(crate) mod chain;
pub(crate) mod run;
pub(crate) mod spout_task;
