//! The integration tests, as one executable: one module per area, run on parallel threads
//! of one process (`cargo test --release --test it -- kafka::` runs one area).
//!
//! Sharing the process means process-wide state is shared too. The rules that keep the
//! areas independent:
//! - the environment is set in one place only ([`support::twitter_mock::set_token_env`]);
//! - the one global `tracing` subscriber is the `twitter` area's log capture;
//! - the one panic hook is [`support::quiet_injected_panics`], which silences only the
//!   panics the tests inject;
//! - every server listens on `127.0.0.1:0` and every temporary directory is unique
//!   ([`support::cli::TempDir`]);
//! - tests that need a process of their own (signals, exit codes, the CLI) run the
//!   `squall` binary.

mod support;

mod acking;
mod backpressure;
mod batch_timeout;
mod bench_cli;
mod broker_faults;
mod browser;
mod cli;
mod cluster_status;
mod crash_loops;
mod distributed;
mod endurance;
mod event_time;
mod event_time_kafka;
mod exactness;
mod faults;
mod generator_event_time;
mod groupings;
mod http;
mod jsonl_sink;
mod kafka;
mod kafka_cli;
mod kafka_processes;
mod main_command;
mod microbatch;
mod microbatch_kafka;
mod microbatch_restore;
mod priority;
mod signals;
mod socket;
mod spout_modes;
mod state_disk_faults;
mod stopping;
mod stuck_sink;
mod top;
mod twitter;
mod twitter_parsing;
mod twitter_pipeline;
mod twitter_rules;
mod validation;
