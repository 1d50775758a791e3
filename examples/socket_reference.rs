//! The physical reference of the socket job: one thread, no framework. It reads lines
//! from a TCP server, finds their hashtags with squall's own search and normalization
//! (what `tokenize` → `hashtags` keep), and counts them in a hash map. What the socket job
//! does per line, with nothing else: `benches/socket-modes.sh` runs it beside the job.
//!
//!   cargo run --release --example socket_reference -- 127.0.0.1:9999
//!
//! Prints one JSON line: lines, seconds, lines per second, CPU seconds, the top hashtag.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Instant;

use squall::data::hash::FastMap;
use squall::text::hashtags::{is_hashtag_token, normalized_hashtag};
use squall::text::prefixed_tokens::PrefixedTokens;
use squall::text::tokenize::FULLWIDTH_HASH;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let stream = TcpStream::connect(&addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let search = PrefixedTokens::new(&['#', FULLWIDTH_HASH], true)
        .ok_or("no search for hashtag characters")?;
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut counts: FastMap<String, u64> = FastMap::default();
    let (mut line, mut buf, mut norm) = (Vec::new(), String::new(), String::new());
    let mut lines = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        lines += 1;
        search.for_each(&text, &mut buf, |w| {
            if is_hashtag_token(w)
                && let Some(tag) = normalized_hashtag(w, &mut norm)
            {
                match counts.get_mut(tag) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(tag.to_string(), 1);
                    }
                }
            }
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let top = counts
        .iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse(*k)));
    println!(
        "{{\"lines\":{lines},\"seconds\":{seconds:.3},\"lines_per_s\":{:.0},\"cpu_seconds\":{cpu:.3},\"top\":{}}}",
        lines as f64 / seconds.max(1e-9),
        match top {
            Some((k, n)) => format!("[\"{k}\",{n}]"),
            None => "null".into(),
        }
    );
    Ok(())
}

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map(|s| (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64)
        .unwrap_or(0.0)
}
