//! `squall bench`: the same topology file in each execution mode at each offered rate,
//! one child `squall topology run` per point (so CPU time and peak RSS are per point), then
//! `bench.json`, `bench.md` and `latency.svg` in the output directory.
//!
//! The pieces: [`run`] runs the children, [`table`] is the JSON model and the Markdown
//! table, [`chart`] draws the SVG.

pub mod chart;
pub mod others;
pub mod run;
pub mod stalls;
pub mod table;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::component::registry::Registry;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Topology file with at least one `generator` spout (e.g. topologies/trending-hashtags.toml).
    pub file: PathBuf,
    /// Execution modes to compare, comma-separated: event, microbatch.
    #[arg(long, default_value = "event,microbatch")]
    pub modes: String,
    /// Offered rates in tuples per second per generator spout, comma-separated; `max` = unpaced.
    #[arg(long, default_value = "10000,50000,100000,max")]
    pub rates: String,
    /// How long each point runs (e.g. 20s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// Each run first warms up this long (not measured: the start of a process pays for
    /// fresh memory, empty maps and cold caches), then measures for `--duration`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Output directory (created): bench.json, bench.md, latency.svg, runs/.
    #[arg(long)]
    pub out: PathBuf,
    /// Override an option in every run, e.g. config.max_spout_pending=4096.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Micro-batch mode: the batch interval passed to the runs (e.g. 100ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub batch_interval: Option<Duration>,
    /// Micro-batch mode: the most tuples in one batch, passed to the runs.
    #[arg(long)]
    pub max_batch: Option<u64>,
    /// Before and after the points, spin one thread per core this long and count the
    /// stalls the machine imposes (time a running thread did not run); 0s skips it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub stall_probe: Duration,
    /// Run every point this many times, the modes taking turns, and report the median
    /// run (by throughput at `max`, by p99 latency at an offered rate); every run is in
    /// bench.json and runs/.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub repeat: u32,
}

/// An execution mode of `squall topology run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Event,
    Microbatch,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Event => "event",
            Mode::Microbatch => "microbatch",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An offered rate: tuples per second, or unpaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Tuples(u64),
    Max,
}

impl Rate {
    /// What `bench.json` says was offered (`None` for max).
    pub fn offered(self) -> Option<u64> {
        match self {
            Rate::Tuples(n) => Some(n),
            Rate::Max => None,
        }
    }

    /// The generator's `rate` option (0 = as fast as possible).
    pub fn generator_rate(self) -> u64 {
        self.offered().unwrap_or(0)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Tuples(n) => write!(f, "{n}"),
            Rate::Max => f.write_str("max"),
        }
    }
}

/// Why `squall bench` cannot start (a point that fails is not one of these: it is
/// recorded and the others run).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--modes: unknown mode `{0}` (the modes are `event` and `microbatch`)")]
    UnknownMode(String),
    #[error("--modes: `{0}` is listed twice")]
    DuplicateMode(String),
    #[error("--rates: `{0}` is not a rate: give positive integers (tuples per second) or `max`")]
    BadRate(String),
    #[error("--rates: `{0}` is listed twice")]
    DuplicateRate(String),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("--duration must be more than zero")]
    ZeroDuration,
    #[error("{0} applies to the microbatch mode only: add `microbatch` to --modes")]
    MicrobatchOnly(&'static str),
    #[error("--set {0}: a generator's rate comes from --rates in squall bench")]
    RateSet(String),
    #[error("{0}")]
    File(#[from] crate::topology::file::FileError),
    #[error(
        "{file}: squall bench needs a generator spout to offer load (a spout with type = \"generator\")"
    )]
    NoGenerator { file: String },
    #[error("{file}: {message}")]
    Toml { file: String, message: String },
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find the squall executable to run the points: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot encode bench.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot draw {}: {message}", path.display())]
    Chart { path: PathBuf, message: String },
}

/// `event,microbatch` → modes, in order.
pub fn parse_modes(s: &str) -> Result<Vec<Mode>, BenchError> {
    let mut modes = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let m = match part {
            "event" => Mode::Event,
            "microbatch" | "micro-batch" => Mode::Microbatch,
            other => return Err(BenchError::UnknownMode(other.to_string())),
        };
        if modes.contains(&m) {
            return Err(BenchError::DuplicateMode(part.to_string()));
        }
        modes.push(m);
    }
    if modes.is_empty() {
        return Err(BenchError::Empty("--modes"));
    }
    Ok(modes)
}

/// `10000,50000,max` → rates, in order.
pub fn parse_rates(s: &str) -> Result<Vec<Rate>, BenchError> {
    let mut rates = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let r = if part.eq_ignore_ascii_case("max") {
            Rate::Max
        } else {
            match part.parse::<u64>() {
                Ok(n) if n > 0 => Rate::Tuples(n),
                _ => return Err(BenchError::BadRate(part.to_string())),
            }
        };
        if rates.contains(&r) {
            return Err(BenchError::DuplicateRate(part.to_string()));
        }
        rates.push(r);
    }
    if rates.is_empty() {
        return Err(BenchError::Empty("--rates"));
    }
    Ok(rates)
}

/// The names of the spouts of a topology file (TOML text) whose type is `generator`,
/// in file order.
pub fn generator_spouts(toml_text: &str, file: &str) -> Result<Vec<String>, BenchError> {
    let doc: toml::Table = toml::from_str(toml_text).map_err(|e| BenchError::Toml {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let spouts = doc
        .get("spouts")
        .and_then(|s| s.as_table())
        .map(|t| {
            t.iter()
                .filter(|(_, v)| v.get("type").and_then(|t| t.as_str()) == Some("generator"))
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if spouts.is_empty() {
        return Err(BenchError::NoGenerator {
            file: file.to_string(),
        });
    }
    Ok(spouts)
}

/// The first `--set` that would override the offered rate of one of `generators`.
pub fn sets_a_rate<'a>(sets: &'a [String], generators: &[String]) -> Option<&'a str> {
    sets.iter().map(String::as_str).find(|s| {
        let key = s.split_once('=').map_or(*s, |(k, _)| k).trim();
        generators.iter().any(|g| key == format!("spouts.{g}.rate"))
    })
}

/// Everything a bench needs, checked before any point runs.
#[derive(Debug)]
pub struct Plan {
    pub file: PathBuf,
    pub topology: String,
    pub generators: Vec<String>,
    pub modes: Vec<Mode>,
    pub rates: Vec<Rate>,
    pub duration: Duration,
    /// Left out at the start of each run (zero: none).
    pub warmup: Duration,
    pub out: PathBuf,
    pub sets: Vec<String>,
    pub batch_interval: Option<Duration>,
    pub max_batch: Option<u64>,
    /// How long each stall probe spins (zero: no probe).
    pub stall_probe: Duration,
    /// Runs of each point (the median is reported).
    pub repeat: u32,
}

impl Plan {
    pub fn new(args: BenchArgs, registry: &Registry) -> Result<Plan, BenchError> {
        let modes = parse_modes(&args.modes)?;
        let rates = parse_rates(&args.rates)?;
        if args.duration.is_zero() {
            return Err(BenchError::ZeroDuration);
        }
        if !modes.contains(&Mode::Microbatch) {
            if args.batch_interval.is_some() {
                return Err(BenchError::MicrobatchOnly("--batch-interval"));
            }
            if args.max_batch.is_some() {
                return Err(BenchError::MicrobatchOnly("--max-batch"));
            }
        }
        // The file must load as the runs will load it (with the user's overrides).
        let loaded = crate::topology::file::load(&args.file, &args.set, registry)?;
        let origin = args.file.display().to_string();
        let text = std::fs::read_to_string(&args.file).map_err(|e| BenchError::Toml {
            file: origin.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let generators = generator_spouts(&text, &origin)?;
        if let Some(s) = sets_a_rate(&args.set, &generators) {
            return Err(BenchError::RateSet(s.to_string()));
        }
        Ok(Plan {
            topology: loaded.topology.name().to_string(),
            file: args.file,
            generators,
            modes,
            rates,
            duration: args.duration,
            warmup: args.warmup,
            out: args.out,
            sets: args.set,
            batch_interval: args.batch_interval,
            max_batch: args.max_batch,
            stall_probe: args.stall_probe,
            repeat: args.repeat,
        })
    }
}

/// `squall bench`.
pub fn main(args: BenchArgs, registry: &Registry) -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let plan = match Plan::new(args, registry) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match bench(&plan, argv) {
        Ok(b) => {
            let failed = b.points.iter().filter(|p| !p.ok).count();
            eprintln!(
                "squall bench: wrote {}, {} and {}",
                plan.out.join("bench.json").display(),
                plan.out.join("bench.md").display(),
                plan.out.join("latency.svg").display()
            );
            if failed > 0 {
                eprintln!(
                    "error: {failed} of {} points failed (see bench.md and {})",
                    b.points.len(),
                    plan.out.join("runs").display()
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every point and writes the outputs; a failed point is recorded, not an error.
pub fn bench(plan: &Plan, argv: Vec<String>) -> Result<table::Bench, BenchError> {
    let runs = plan.out.join("runs");
    std::fs::create_dir_all(&runs).map_err(|source| BenchError::CreateDir {
        path: runs.clone(),
        source,
    })?;
    let exe = std::env::current_exe().map_err(BenchError::CurrentExe)?;
    let machine = table::Machine::detect();
    // Data written just before (a build, a copy) is flushed by kernel threads that would
    // take the cores from the points; write it out first.
    #[cfg(target_os = "linux")]
    rustix::fs::sync();
    let stalls_before = probe_stalls(plan, machine.cores, "before");
    let points = run::run_all(&exe, plan);
    let stalls_after = probe_stalls(plan, machine.cores, "after");
    let b = table::Bench {
        topology: plan.topology.clone(),
        file: plan.file.display().to_string(),
        duration_s: plan.duration.as_secs_f64(),
        warmup_s: plan.warmup.as_secs_f64(),
        machine,
        command: argv,
        points,
        stalls_before,
        stalls_after,
    };
    write(
        &plan.out.join("bench.json"),
        serde_json::to_string_pretty(&b)? + "\n",
    )?;
    write(&plan.out.join("bench.md"), table::markdown(&b))?;
    let svg = plan.out.join("latency.svg");
    chart::draw(&b, &svg).map_err(|e| BenchError::Chart {
        path: svg.clone(),
        message: e.to_string(),
    })?;
    Ok(b)
}

/// Runs the stall probe (unless `--stall-probe 0s`), with a progress line.
fn probe_stalls(plan: &Plan, cores: usize, when: &str) -> Option<stalls::Stalls> {
    if plan.stall_probe.is_zero() {
        return None;
    }
    let s = stalls::probe(cores, plan.stall_probe);
    eprintln!(
        "squall bench: machine stalls {when} the points ({} threads spinning {}): {}",
        s.threads,
        humantime::format_duration(plan.stall_probe),
        s.summary()
    );
    Some(s)
}

fn write(path: &Path, text: String) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_order() {
        assert_eq!(
            parse_modes("event,microbatch").ok(),
            Some(vec![Mode::Event, Mode::Microbatch])
        );
        assert_eq!(
            parse_modes(" microbatch ").ok(),
            Some(vec![Mode::Microbatch])
        );
    }

    #[test]
    fn bad_modes_say_what_is_wrong() {
        let e = parse_modes("event,trident")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown mode `trident`"), "{e}");
        let e = parse_modes("event,event")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`event` is listed twice"), "{e}");
        let e = parse_modes(",").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--modes is empty"), "{e}");
    }

    #[test]
    fn rates_parse_numbers_and_max() {
        assert_eq!(
            parse_rates("10000,50000, max").ok(),
            Some(vec![Rate::Tuples(10_000), Rate::Tuples(50_000), Rate::Max])
        );
        assert_eq!(Rate::Max.generator_rate(), 0);
        assert_eq!(Rate::Tuples(7).generator_rate(), 7);
        assert_eq!(Rate::Max.to_string(), "max");
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        for bad in ["0", "-5", "10k", "1.5", "fast"] {
            let e = parse_rates(&format!("100,{bad}"))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("`{bad}` is not a rate")) && e.contains("`max`"),
                "{bad}: {e}"
            );
        }
        let e = parse_rates("max,MAX").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let e = parse_rates("").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--rates is empty"), "{e}");
    }

    #[test]
    fn generator_spouts_are_found_by_type() {
        let text = r#"
name = "t"
[spouts.a]
type = "generator"
[spouts.b]
type = "socket"
[spouts.c]
type = "generator"
"#;
        assert_eq!(
            generator_spouts(text, "t.toml").ok(),
            Some(vec!["a".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn a_set_of_a_generator_rate_is_caught() {
        let g = vec!["source".to_string()];
        let sets = vec![
            "spouts.source.limit=0".to_string(),
            "spouts.other.rate=5".to_string(),
            "spouts.source.rate=5".to_string(),
        ];
        assert_eq!(sets_a_rate(&sets, &g), Some("spouts.source.rate=5"));
        assert_eq!(sets_a_rate(&sets[..2], &g), None);
    }

    #[test]
    fn a_file_without_a_generator_is_a_clear_error() {
        let text = "name = \"t\"\n[spouts.s]\ntype = \"socket\"\n";
        let e = generator_spouts(text, "t.toml")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml: squall bench needs a generator spout to offer load"),
            "{e}"
        );
    }
}
