//! The `squall` command line. Users who register their own components call
//! [`main_with`] from their own `main` (see `examples/custom_component.rs`).

mod bench;
pub mod cluster;
pub mod kafka;
mod report;
mod resources;
mod run;
pub mod top;
mod tweets;
pub mod twitter;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::component::registry::Registry;
pub use report::Report;

#[derive(Parser, Debug)]
#[command(
    name = "squall",
    version,
    about = "A stream processor in the lineage of Apache Storm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run, check or draw a topology file.
    Topology {
        #[command(subcommand)]
        command: TopologyCommand,
    },
    /// List the built-in (and registered) spouts and bolts with their options.
    Components,
    /// Compare execution modes: latency percentiles, throughput, CPU and memory at each
    /// offered rate (bench.json, bench.md, latency.svg).
    Bench(bench::BenchArgs),
    /// Kafka: a local dev broker, produce tweets, committed offsets and lag, replay.
    Kafka {
        #[command(subcommand)]
        command: kafka::KafkaCommand,
    },
    /// The generator's tweets as JSONL or text: to stdout, or served over TCP.
    Tweets {
        #[command(subcommand)]
        command: TweetsCommand,
    },
    /// X/Twitter: stream rules (and to-kafka).
    Twitter {
        #[command(subcommand)]
        command: twitter::TwitterCommand,
    },
    /// A live per-component table of a run started with `--http` (q or Ctrl-C quits).
    Top(top::TopArgs),
    /// A distributed application: its instances, their partitions and the lag.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TweetsCommand {
    /// Print generated tweets (X API v2 JSON lines, or text) to stdout.
    Generate(tweets::GenerateArgs),
    /// A line server: sends generated tweets to each TCP client, then closes.
    Serve(tweets::ServeArgs),
}

#[derive(Subcommand, Debug)]
enum TopologyCommand {
    /// Run a topology until Ctrl-C, --duration, or the end of its (bounded) sources.
    Run(run::RunArgs),
    /// Check a topology file; prints the error with file, line and key.
    Validate {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the topology as a Graphviz DOT graph.
    Graph {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

/// Runs the CLI with the built-in components.
pub fn main() -> ExitCode {
    main_with(crate::builtin::registry())
}

/// Runs the CLI with the components of `registry` (built-ins plus the user's own).
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Components => {
            print!("{}", components_text(&registry));
            ExitCode::SUCCESS
        }
        Command::Bench(args) => bench::main(args, &registry),
        Command::Kafka { command } => kafka::main(command, &registry),
        Command::Twitter { command } => twitter::main(command),
        Command::Top(args) => top::run(args),
        Command::Cluster { command } => cluster::main(command),
        Command::Tweets { command } => match command {
            TweetsCommand::Generate(a) => tweets::generate(a),
            TweetsCommand::Serve(a) => tweets::serve(a),
        },
        Command::Topology { command } => match command {
            TopologyCommand::Run(args) => run::run(args, &registry),
            TopologyCommand::Validate { file, set } => {
                match crate::topology::file::load(&file, &set, &registry) {
                    Ok(t) => {
                        let c = t.topology.components();
                        println!(
                            "{}: ok (topology `{}`: {} spouts, {} bolts)",
                            file.display(),
                            t.topology.name(),
                            c.iter().filter(|c| c.is_spout()).count(),
                            c.iter().filter(|c| !c.is_spout()).count()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            TopologyCommand::Graph { file, set } => {
                match crate::topology::file::load(&file, &set, &registry) {
                    Ok(t) => {
                        print!("{}", t.topology.to_dot());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        },
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SQUALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(crate::http::BadRequests)
        .with(fmt)
        .try_init();
}

/// What `squall components` prints.
pub fn components_text(registry: &Registry) -> String {
    let mut s = String::new();
    for info in registry.infos() {
        s.push_str(&format!(
            "{} {:<14} {}\n",
            info.kind, info.name, info.description
        ));
        for (k, v) in &info.defaults {
            s.push_str(&format!("    {k} = {v}\n"));
        }
    }
    s
}
