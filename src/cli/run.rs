//! `squall topology run`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use super::report::{Report, Window};
use crate::component::registry::Registry;
use crate::config::{Config, Mode};
use crate::metrics::MetricsSnapshot;
use crate::runtime::{LocalCluster, RunningTopology};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Topology file (e.g. topologies/trending-hashtags.toml).
    pub file: PathBuf,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or the sources end.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Leave the first part of the run out of the report's figures (e.g. 2s): throughput,
    /// latency and CPU then cover what follows it (steady state). `--duration` counts after
    /// the warm-up.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Write the JSON report here on exit.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Override an option, e.g. spouts.source.rate=50000 or config.acking=false.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Kafka brokers (HOST:PORT[,...]) of every Kafka spout and sink that does not name its
    /// own `brokers` (in the file or by --set).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub brokers: Option<String>,
    /// No status line.
    #[arg(long)]
    pub quiet: bool,
    /// `event` (a tuple at a time, at-least-once) or `microbatch` (transactional batches,
    /// exactly-once state). Default: the file's `config.mode`, else event.
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Micro-batch mode: start a batch at most this often (e.g. 100ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub batch_interval: Option<Duration>,
    /// Micro-batch mode: most tuples per spout task in one batch.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Micro-batch mode: keep state and batch records here, so a restart resumes after
    /// the last committed batch (default: in memory).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Serve the dashboard, /metrics and /api/* on this address (e.g. 127.0.0.1:8080;
    /// port 0 picks a free port). Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Distributed topologies: this instance's id in its application (default:
    /// hostname-pid). Instances with the same `config.application_id` share the work.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
}

/// Applies the mode flags to the file's config.
fn apply_mode_flags(args: &RunArgs, config: &mut Config) -> Result<(), String> {
    if let Some(m) = args.mode {
        config.mode = m;
    }
    if let Some(d) = args.batch_interval {
        config.batch_interval = d;
    }
    if let Some(n) = args.max_batch {
        config.max_batch = n;
    }
    if let Some(d) = &args.state_dir {
        config.state_dir = Some(d.clone());
    }
    let batch_flags =
        args.batch_interval.is_some() || args.max_batch.is_some() || args.state_dir.is_some();
    if batch_flags && config.mode != Mode::Microbatch {
        return Err("--batch-interval, --max-batch and --state-dir need --mode microbatch".into());
    }
    if config.mode == Mode::Microbatch && config.batch_interval.is_zero() {
        return Err("--batch-interval must be longer than 0".into());
    }
    Ok(())
}

/// The Ctrl-C and SIGTERM received so far. The first stops the run gracefully (drain);
/// one during the drain stops it at once.
#[derive(Default)]
struct Signals {
    count: AtomicUsize,
    /// The number of the last one (SIGINT 2, SIGTERM 15).
    last: AtomicI32,
}

impl Signals {
    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn received(&self, signo: i32) {
        self.last.store(signo, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// The shell's code for a process ended by the last signal (128 + its number).
    fn exit_code(&self) -> ExitCode {
        let signo = self.last.load(Ordering::SeqCst);
        ExitCode::from(u8::try_from(128 + signo).unwrap_or(1))
    }
}

const SIGINT: i32 = 2;
#[cfg(unix)]
const SIGTERM: i32 = 15;

/// Counts every Ctrl-C and SIGTERM into `signals`, for as long as the process lives.
fn watch_signals(signals: Arc<Signals>) {
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("cannot watch signals: {e}");
                return;
            }
        };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let (mut int, mut term) = match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(i), Ok(t)) => (i, t),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::error!("cannot watch signals: {e}");
                        return;
                    }
                };
                loop {
                    let signo = tokio::select! {
                        Some(()) = int.recv() => SIGINT,
                        Some(()) = term.recv() => SIGTERM,
                        else => return,
                    };
                    signals.received(signo);
                }
            }
            #[cfg(not(unix))]
            while tokio::signal::ctrl_c().await.is_ok() {
                signals.received(SIGINT);
            }
        });
    });
}

fn status_line(prev: &MetricsSnapshot, now: &MetricsSnapshot, secs: f64) -> String {
    let (e0, ..) = prev.spout_totals();
    let (e1, acked, failed, pending) = now.spout_totals();
    let p99 = now
        .components
        .values()
        .filter(|c| c.kind == "spout")
        .map(|c| c.complete_latency_us.p99)
        .fold(0.0, f64::max);
    format!(
        "{:>10.0} tuples/s  acked {acked}  failed {failed}  pending {pending}  complete p99 {p99:.0} µs",
        (e1 - e0) as f64 / secs.max(1e-9)
    )
}

pub fn run(args: RunArgs, registry: &Registry) -> ExitCode {
    let overrides = crate::topology::file::Overrides {
        sets: args.set.clone(),
        brokers: args.brokers.clone(),
    };
    let mut file = match crate::topology::file::load_with(&args.file, &overrides, registry) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(w) = args.brokers.as_ref().and_then(|b| file.brokers.warning(b)) {
        eprintln!("squall: warning: {w}");
    }
    if let Err(e) = apply_mode_flags(&args, &mut file.config) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let mut opts = RunOptions {
        duration: args.duration,
        warmup: args.warmup.unwrap_or_default(),
        report: args.report,
        quiet: args.quiet,
        http: args.http,
        instance: None,
    };
    if !crate::distributed::rewrite::is_distributed(&file.topology) {
        if args.instance_id.is_some() {
            eprintln!(
                "squall: warning: --instance-id is for topologies with a distributed input; `{}` has none",
                file.topology.name()
            );
        }
        return run_topology(file.topology, file.config, &opts);
    }
    let d = crate::distributed::rewrite::Distribution::of(
        &file.topology,
        &file.config,
        args.instance_id.as_deref(),
        args.brokers.as_deref(),
    );
    let (topology, instance) =
        match crate::distributed::rewrite::prepare(&file.topology, &file.config, &d) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    eprintln!(
        "squall: instance `{}` of application `{}` (brokers {})",
        d.instance_id, d.application, d.brokers
    );
    instance.set_http(opts.http.map(|a| a.to_string()));
    opts.instance = Some(crate::http::InstanceSource(Arc::new(InstanceView(
        instance.clone(),
    ))));
    let code = run_topology(topology, file.config, &opts);
    instance.leave();
    code
}

/// How a run is watched and ended, whatever built its topology.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Run this long after the warm-up.
    pub duration: Option<Duration>,
    /// Left out of the report (zero: none).
    pub warmup: Duration,
    pub report: Option<PathBuf>,
    pub quiet: bool,
    /// Serve the web UI here while the topology runs.
    pub http: Option<SocketAddr>,
    /// Distributed mode: this process's instance, shown by the web UI.
    pub instance: Option<crate::http::InstanceSource>,
}

/// The instance as the web UI describes it.
struct InstanceView(std::sync::Arc<crate::distributed::instance::Instance>);

impl crate::http::DescribeInstance for InstanceView {
    fn describe(&self) -> serde_json::Value {
        self.0.describe()
    }
}

/// Starts the web UI of `run` if asked (`--http`); prints where it listens.
fn start_http(
    addr: Option<SocketAddr>,
    graph: crate::http::TopologyInfo,
    run: &RunningTopology,
) -> Result<Option<crate::http::HttpHandle>, crate::http::HttpError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    if crate::http::is_exposed(&addr) {
        eprintln!(
            "squall: warning: --http {addr} is not a loopback address: the dashboard and \
             /metrics have no authentication and are reachable from the network"
        );
    }
    let handle = crate::http::serve(addr, graph, run.registry())?;
    eprintln!("squall: dashboard on http://{}/", handle.addr());
    Ok(Some(handle))
}

/// Runs a topology like `squall topology run`: status line every second, Ctrl-C/SIGTERM
/// drain, `--duration`, the report.
pub fn run_topology(
    topology: crate::topology::Topology,
    config: crate::config::Config,
    args: &RunOptions,
) -> ExitCode {
    if let Some(path) = &args.report
        && let Err(e) = check_report_path(path)
    {
        eprintln!("error: cannot write the report to {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let guarantee = if config.mode == Mode::Microbatch {
        format!(
            "exactly-once state with transactional sources (Kafka, generator), batch interval {}, max batch {}, {} batches in flight, batch timeout {}; {}",
            humantime::format_duration(config.batch_interval),
            config.max_batch,
            config.batches_in_flight,
            humantime::format_duration(config.batch_timeout),
            crate::runtime::microbatch_state(&config)
        )
    } else if config.acking {
        format!(
            "at-least-once (acking on, max_spout_pending {}, message_timeout {})",
            config.max_spout_pending,
            humantime::format_duration(config.message_timeout)
        )
    } else {
        "at-most-once (acking off)".to_string()
    };
    let priority = if config.mode == Mode::Event
        && config.worker_priority == crate::config::priority::WorkerPriority::Realtime
    {
        " (real-time priority)"
    } else {
        ""
    };
    eprintln!(
        "squall: running `{}` in {} mode on {} workers{priority}; guarantee: {guarantee}",
        topology.name(),
        config.mode,
        config.workers
    );
    let mut graph = crate::http::TopologyInfo::of(&topology);
    graph.instance = args.instance.clone();
    let run = match LocalCluster::submit(topology, config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let http = match start_http(args.http, graph, &run) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            let _ = run.stop();
            return ExitCode::FAILURE;
        }
    };
    let signals = Arc::new(Signals::default());
    watch_signals(signals.clone());
    let started = Instant::now();
    let mut prev = run.metrics();
    let mut last = Instant::now();
    // The metrics and CPU at the end of the warm-up.
    let mut base: Option<Mark> = None;
    // The signals that started the stop (any after them stop it at once).
    let stopped_by = loop {
        if base.is_none() && !args.warmup.is_zero() && started.elapsed() >= args.warmup {
            base = Some(Mark::now(&run));
        }
        if run.wait_finished(Duration::from_millis(100)) {
            break 0;
        }
        if signals.count() > 0 {
            eprintln!(
                "squall: stopping (signal): draining in-flight tuples (press Ctrl-C again to stop at once)"
            );
            break 1;
        }
        if args
            .duration
            .is_some_and(|d| started.elapsed() >= args.warmup + d)
        {
            break 0;
        }
        // The status line's snapshot merges every task's histograms: skipped when quiet
        // (`squall bench` runs), so it does not compete with the tasks for the cores.
        if !args.quiet && last.elapsed() >= Duration::from_secs(1) {
            let now = run.metrics();
            eprintln!("{}", status_line(&prev, &now, last.elapsed().as_secs_f64()));
            prev = now;
            last = Instant::now();
        }
    };
    let window = match base {
        Some(base) => Some(base.window_to(Mark::now(&run), args.warmup)),
        None if !args.warmup.is_zero() => {
            eprintln!(
                "squall: warning: the run ended within its warm-up ({}); the report covers all of it",
                humantime::format_duration(args.warmup)
            );
            None
        }
        None => None,
    };
    let code = finish(run, args, window, &signals, stopped_by);
    drop(http);
    code
}

/// The metrics, the process's CPU time and the clock at one moment of a run.
struct Mark {
    metrics: MetricsSnapshot,
    cpu_seconds: f64,
    at: Instant,
}

impl Mark {
    fn now(run: &RunningTopology) -> Mark {
        Mark {
            metrics: run.metrics(),
            cpu_seconds: super::resources::cpu_seconds(),
            at: Instant::now(),
        }
    }

    /// What happened from this mark to `end`. Tasks publish every 100 ms, so each mark
    /// lags the tasks by up to that much: both ends alike, so the window's length is
    /// right on average.
    fn window_to(self, end: Mark, warmup: Duration) -> Window {
        Window {
            warmup,
            metrics: end.metrics.since(&self.metrics),
            duration: end.at.saturating_duration_since(self.at),
            cpu_seconds: (end.cpu_seconds - self.cpu_seconds).max(0.0),
        }
    }
}

/// Ends the run: waits for a bounded run, or stops one still going (drain). A signal
/// during the drain (beyond the `stopped_by` that started it) stops it at once. Prints
/// the summary and writes the report.
fn finish(
    run: RunningTopology,
    args: &RunOptions,
    window: Option<Window>,
    signals: &Signals,
    stopped_by: usize,
) -> ExitCode {
    let topk = run.registry().topk;
    let result = if run.is_finished() {
        run.join()
    } else {
        run.request_stop();
        loop {
            if signals.count() > stopped_by {
                return abandon(run, args, window, topk.latest(), signals);
            }
            if run.wait_stopped(Duration::from_millis(50)) {
                break run.stop();
            }
        }
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = Report::new(&summary, topk.latest(), window.as_ref());
    let warmup = if report.warmup_s > 0.0 {
        format!(" after a {} s warm-up", report.warmup_s)
    } else {
        String::new()
    };
    eprintln!(
        "squall: done in {}{warmup}: {} tuples/s from the spouts; {}",
        super::report::duration_text(report.duration_s),
        report.throughput_tps,
        if summary.completed {
            "every task finished"
        } else {
            "drain timed out"
        }
    );
    match write_report(args, &report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// A signal during the drain: stops without waiting, says what was in flight, writes the
/// report and exits as the signal would have (130 for Ctrl-C, 143 for SIGTERM).
fn abandon(
    run: RunningTopology,
    args: &RunOptions,
    window: Option<Window>,
    topk: Option<crate::metrics::Topk>,
    signals: &Signals,
) -> ExitCode {
    let summary = run.abandon();
    let abandoned: u64 = summary
        .metrics
        .components
        .values()
        .filter(|c| c.kind == "spout")
        .map(|c| c.abandoned)
        .sum();
    let what = match summary.mode {
        Mode::Microbatch => "tuples of uncommitted batches",
        Mode::Event => "tuple trees in flight",
    };
    eprintln!(
        "squall: signal during the drain: stopped at once after {:.2}s; abandoned {abandoned} {what} (sources that can re-read replay them on the next run)",
        summary.duration.as_secs_f64()
    );
    let report = Report::new(&summary, topk, window.as_ref());
    match write_report(args, &report) {
        Ok(()) => signals.exit_code(),
        Err(code) => code,
    }
}

/// Writes the report if asked (`--report`); prints why not and gives the exit code if it
/// cannot.
fn write_report(args: &RunOptions, report: &Report) -> Result<(), ExitCode> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let json = serde_json::to_string_pretty(report).map_err(|e| {
        eprintln!("error: cannot encode the report: {e}");
        ExitCode::FAILURE
    })?;
    std::fs::write(path, json + "\n").map_err(|e| {
        eprintln!("error: cannot write the report to {}: {e}", path.display());
        ExitCode::FAILURE
    })
}

/// Fails before the run when the report could not be written after it: a missing
/// directory, no permission, a directory at that path. Probes by opening the path for
/// writing (an existing file is left as it is; a file the probe created is removed).
fn check_report_path(path: &Path) -> std::io::Result<()> {
    let existed = path.symlink_metadata().is_ok();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if !existed {
        std::fs::remove_file(path)?;
    }
    Ok(())
}
