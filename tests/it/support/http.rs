//! Helpers of the web UI tests: run `squall topology run ... --http 127.0.0.1:0` (killed on
//! drop), find the address it prints, plain HTTP/1.1 GETs over a `TcpStream` with
//! timeouts, and a poll-until-true with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `squall` child serving the web UI, killed on drop.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every stderr line seen so far (after the address line) arrives here.
    pub stderr: mpsc::Receiver<String>,
    pub first_lines: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `squall topology run FILE ARGS... --http 127.0.0.1:0 --quiet` from the package
/// root and waits (up to 60 s) for `squall: dashboard on http://ADDR/` on stderr.
pub fn serve_topology(file: &str, args: &[&str]) -> Served {
    serve_args(
        &[
            &["topology", "run", file, "--quiet", "--http", "127.0.0.1:0"],
            args,
        ]
        .concat(),
    )
}

/// Runs `squall ARGS...` and waits for its dashboard line.
pub fn serve_args(args: &[&str]) -> Served {
    serve_args_env(args, &[])
}

/// `serve_args` with environment variables set for the child.
pub fn serve_args_env(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn squall");
    let err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first_lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("squall: dashboard on http://") {
                    let addr: SocketAddr = rest.trim_end_matches('/').parse().expect("address");
                    first_lines.push(line);
                    return Served {
                        child,
                        addr,
                        stderr: rx,
                        first_lines,
                    };
                }
                first_lines.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no dashboard address on stderr within 60 s; stderr so far:\n{}",
                    first_lines.join("\n")
                );
            }
        }
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

fn connect(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    s
}

fn split(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut r = Response {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    };
    if r.header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        r.body = dechunk(&r.body);
    }
    r
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            out.push_str(&rest[..n.min(rest.len())]);
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sends `bytes` as they are and reads the answer until the server closes.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(bytes).expect("send");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read response");
    split(&answer)
}

/// `GET path` (the whole response; the server closes the connection).
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = connect(addr, path);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    split(&raw)
}

/// `GET path`, or `None` if the server cannot be reached or the answer cannot be read
/// (for samplers that run until the process exits).
pub fn try_get(addr: SocketAddr, path: &str) -> Option<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    Some(split(&raw))
}

/// Reads `path` as an event stream until `done(text so far)` or `timeout`.
pub fn stream_until(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Response {
    let mut s = connect(addr, path);
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading {path}: {e}"),
        }
        if done(&String::from_utf8_lossy(&raw)) {
            break;
        }
    }
    split(&raw)
}

/// Calls `f` every 200 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
