//! `squall top --url URL`: the per-component table of a running topology's `/api/metrics`,
//! redrawn every second in the terminal (like `vector top`); `q`, Esc or Ctrl-C quits, and
//! so do SIGTERM and SIGHUP, after restoring the terminal.
//! `--once` prints the table once (no terminal control), for scripts.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};
use serde::Deserialize;

use crate::metrics::Counts;

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The dashboard of a run started with `--http` (e.g. http://127.0.0.1:8080).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How often to refresh.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print the table once and exit.
    #[arg(long)]
    pub once: bool,
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("cannot reach {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("cannot start the HTTP client: {0}")]
    Runtime(std::io::Error),
    #[error("terminal: {0} (not a terminal? `--once` prints the table once)")]
    Terminal(std::io::Error),
}

/// The part of `/api/metrics` the table shows.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    pub topology: String,
    pub uptime_s: f64,
    pub throughput_tps: f64,
    pub components: Vec<Row>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Row {
    pub name: String,
    pub kind: String,
    pub tasks: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub emitted_per_s: f64,
    pub capacity: f64,
    pub execute_latency_us: Latency,
    pub complete_latency_us: Latency,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

fn latency(us: f64) -> String {
    if us <= 0.0 {
        "-".into()
    } else if us >= 1000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

/// Groups digits by thousands.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table as lines (header, one line per component), `width` columns at most.
pub fn render(s: &Snapshot, width: usize) -> Vec<String> {
    let mut lines = vec![
        format!(
            "squall top: {}  up {:.0}s  {} tuples/s from the spouts",
            s.topology,
            s.uptime_s,
            count(s.throughput_tps.round() as u64)
        ),
        String::new(),
        format!(
            "{:<16} {:<5} {:>5} {:>11} {:>13} {:>13} {:>13} {:>9} {:>9} {:>9} {:>6} {:>8} {:>8}",
            "COMPONENT",
            "KIND",
            "TASKS",
            "EMITTED/S",
            "EMITTED",
            "EXECUTED",
            "ACKED",
            "FAILED",
            "EXEC P99",
            "COMPL P99",
            "CAP",
            "RESTARTS",
            "PENDING"
        ),
    ];
    for c in &s.components {
        let spout = c.kind == "spout";
        lines.push(format!(
            "{:<16} {:<5} {:>5} {:>11} {:>13} {:>13} {:>13} {:>9} {:>9} {:>9} {:>5.0}% {:>8} {:>8}",
            c.name,
            c.kind,
            c.tasks,
            count(c.emitted_per_s.round() as u64),
            count(c.counts.emitted),
            if spout {
                "-".into()
            } else {
                count(c.counts.executed)
            },
            count(c.counts.acked),
            count(c.counts.failed),
            latency(c.execute_latency_us.p99),
            latency(c.complete_latency_us.p99),
            c.capacity * 100.0,
            c.counts.restarts,
            if spout {
                count(c.counts.pending)
            } else {
                "-".into()
            },
        ));
    }
    lines
        .into_iter()
        .map(|l| l.chars().take(width).collect())
        .collect()
}

fn metrics_url(base: &str) -> String {
    format!("{}/api/metrics", base.trim_end_matches('/'))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Snapshot, TopError> {
    let fetch_err = |source| TopError::Fetch {
        url: url.to_string(),
        source,
    };
    let r = client.get(url).send().await.map_err(fetch_err)?;
    if !r.status().is_success() {
        return Err(TopError::Status {
            url: url.to_string(),
            status: r.status(),
        });
    }
    r.json().await.map_err(fetch_err)
}

/// Restores the terminal when dropped (also on an error or a panic).
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        terminal::enable_raw_mode()?;
        let guard = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

fn quit_key(k: &KeyEvent) -> bool {
    k.kind != KeyEventKind::Release
        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
            || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
}

fn draw(lines: &[String]) -> std::io::Result<()> {
    let mut out = std::io::stdout();
    queue!(
        out,
        cursor::MoveTo(0, 0),
        terminal::Clear(terminal::ClearType::All)
    )?;
    for (i, l) in lines.iter().enumerate() {
        queue!(out, cursor::MoveTo(0, i as u16))?;
        write!(out, "{l}")?;
    }
    out.flush()
}

fn run_loop(args: &TopArgs) -> Result<(), TopError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TopError::Runtime)?;
    // reqwest is built without a default crypto provider: install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|source| TopError::Fetch {
            url: args.url.clone(),
            source,
        })?;
    let url = metrics_url(&args.url);
    let get = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(3), fetch(&client, &url)).await {
                Ok(r) => r,
                Err(_) => Err(TopError::Status {
                    url: url.clone(),
                    status: reqwest::StatusCode::GATEWAY_TIMEOUT,
                }),
            }
        })
    };
    if args.once {
        let s = get(&rt)?;
        for l in render(&s, usize::MAX) {
            println!("{l}");
        }
        return Ok(());
    }
    // SIGTERM and SIGHUP (a closed terminal) end the loop, so the screen is restored.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone()).map_err(TopError::Terminal)?;
    }
    let _screen = Screen::enter().map_err(TopError::Terminal)?;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            // A pseudo-terminal without a size reports 0 columns.
            let width = terminal::size()
                .ok()
                .map(|(w, _)| w as usize)
                .filter(|&w| w > 0)
                .unwrap_or(160);
            let lines = match get(&rt) {
                Ok(s) => {
                    let mut lines = render(&s, width);
                    lines.push(String::new());
                    lines.push("q, Esc or Ctrl-C: quit".into());
                    lines
                }
                Err(e) => vec![
                    format!("squall top: {e}"),
                    String::new(),
                    "retrying every interval; q to quit".into(),
                ],
            };
            draw(&lines).map_err(TopError::Terminal)?;
            next = Instant::now() + args.interval;
        }
        let wait = next.saturating_duration_since(Instant::now());
        let ready = match event::poll(wait.min(Duration::from_millis(200))) {
            Ok(ready) => ready,
            // The wait was interrupted by the signal that stops us.
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(e) => return Err(TopError::Terminal(e)),
        };
        if ready
            && let Event::Key(k) = event::read().map_err(TopError::Terminal)?
            && quit_key(&k)
        {
            return Ok(());
        }
    }
    Ok(())
}

pub fn run(args: TopArgs) -> ExitCode {
    match run_loop(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
