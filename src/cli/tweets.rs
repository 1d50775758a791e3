//! `squall tweets generate | serve`: the generator's tweets as JSONL or text, to a file or
//! to TCP clients (a line server for the socket spout, like `nc -lk`).

use std::io::{BufWriter, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::tweet::generator::{GeneratorConfig, TweetGenerator};
use crate::tweet::wire::to_v2_json;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LineFormat {
    /// X API v2 stream messages, one JSON object per line.
    Json,
    /// The tweet text only.
    Text,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = LineFormat::Json)]
    pub format: LineFormat,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9999")]
    pub listen: String,
    /// Lines sent to each client before closing its connection.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = LineFormat::Text)]
    pub format: LineFormat,
    /// Serve this many clients, then exit (0: forever).
    #[arg(long, default_value_t = 0)]
    pub clients: u64,
    /// Render every line before listening, so that serving costs only the writes (for
    /// benchmarks: the server then takes almost no CPU from the topology).
    #[arg(long)]
    pub prerender: bool,
}

fn line(g: &TweetGenerator, n: u64, format: LineFormat) -> String {
    let t = g.tweet_at(n);
    match format {
        LineFormat::Json => to_v2_json(&t),
        LineFormat::Text => t.text,
    }
}

fn write_lines(
    w: &mut impl Write,
    g: &TweetGenerator,
    count: u64,
    format: LineFormat,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, w);
    for n in 1..=count {
        w.write_all(line(g, n, format).as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

fn generator(seed: u64) -> Result<TweetGenerator, ExitCode> {
    TweetGenerator::new(GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    })
    .map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

pub fn generate(args: GenerateArgs) -> ExitCode {
    let g = match generator(args.seed) {
        Ok(g) => g,
        Err(c) => return c,
    };
    match write_lines(&mut std::io::stdout().lock(), &g, args.count, args.format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn serve(args: ServeArgs) -> ExitCode {
    let g = match generator(args.seed) {
        Ok(g) => g,
        Err(c) => return c,
    };
    let rendered = if args.prerender {
        let mut buf = Vec::new();
        if let Err(e) = write_lines(&mut buf, &g, args.count, args.format) {
            eprintln!("error: rendering: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "squall: rendered {} lines ({} MB)",
            args.count,
            buf.len() >> 20
        );
        Some(buf)
    } else {
        None
    };
    let listener = match TcpListener::bind(&args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Ok(a) = listener.local_addr() {
        eprintln!("squall: serving {} lines per client on {a}", args.count);
    }
    let mut served = 0;
    for conn in listener.incoming() {
        match conn {
            Ok(mut s) => {
                let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                let sent = match &rendered {
                    Some(buf) => s.write_all(buf).and_then(|()| s.flush()),
                    None => write_lines(&mut s, &g, args.count, args.format),
                };
                match sent {
                    Ok(()) => eprintln!("squall: sent {} lines to {peer}", args.count),
                    Err(e) => eprintln!("squall: client {peer} went away: {e}"),
                }
            }
            Err(e) => eprintln!("squall: accept failed: {e}"),
        }
        served += 1;
        if args.clients > 0 && served >= args.clients {
            break;
        }
    }
    ExitCode::SUCCESS
}
