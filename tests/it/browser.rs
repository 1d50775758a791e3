//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver by fantoccini. A seeded generator run serves
//! its dashboard; the test waits until the top-k bar chart shows the generator's known top
//! hashtag, checks the graph and the table, and saves a screenshot as
//! `$CARGO_TARGET_TMPDIR/dashboard.png` (under the target directory).
//!
//! Without /usr/bin/chromium and /usr/bin/chromedriver (or `$CHROMIUM`, `$CHROMEDRIVER`)
//! the test fails, saying which is missing and how to install it (`.ci/run` installs both).
//! It installs nothing itself and never passes silently.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

use crate::support::cli;
use crate::support::http::serve_topology;

const INSTALL: &str = "install Chromium and ChromeDriver with `sudo apt-get install -y chromium \
     chromium-driver` (Debian; `.ci/run` does this when they are missing), or point $CHROMIUM \
     and $CHROMEDRIVER at a Chromium and its matching ChromeDriver";

/// The path of a tool the test needs: `$ENV`, else `default`. Fails, saying what is
/// missing and how to get it, when it does not exist (the test never installs anything
/// and never passes without the browser).
fn tool(what: &str, env: &str, default: &str) -> PathBuf {
    let from_env = std::env::var(env).ok();
    let p = PathBuf::from(from_env.as_deref().unwrap_or(default));
    let whence = match from_env {
        Some(_) => format!("${env}"),
        None => format!("the default path; set ${env} for another"),
    };
    assert!(
        p.exists(),
        "the browser test needs {what} at {} ({whence}), which does not exist; {INSTALL}",
        p.display()
    );
    p
}

/// A chromedriver child, killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The texts of the elements matching `css`. The page re-renders live data every second,
/// so an element found can be replaced before its text is read (a stale reference):
/// then the lookup starts again, for up to 10 s.
async fn texts(client: &fantoccini::Client, css: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut out = Vec::new();
        let mut stale = None;
        match client.find_all(Locator::Css(css)).await {
            Ok(elements) => {
                for e in elements {
                    match e.text().await {
                        Ok(t) => out.push(t),
                        Err(err) => {
                            stale = Some(err.to_string());
                            break;
                        }
                    }
                }
            }
            Err(err) => stale = Some(err.to_string()),
        }
        match stale {
            None => return out,
            Some(err) => assert!(
                Instant::now() < deadline,
                "cannot read {css} for 10 s: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_dashboard_shows_the_known_top_hashtag() {
    let chromium = tool("Chromium", "CHROMIUM", "/usr/bin/chromium");
    let chromedriver = tool("ChromeDriver", "CHROMEDRIVER", "/usr/bin/chromedriver");

    // The generator's top hashtag with seed 42 (the file's seed): the same over the first
    // 5,000 and 50,000 tweets, so any window of the run ranks it first.
    let top = |n| {
        cli::top_k(&cli::generator_hashtag_counts(42, n), 1)
            .first()
            .map(|(k, _)| k.clone())
            .expect("a top hashtag")
    };
    let expected = top(5_000);
    assert_eq!(expected, top(50_000), "the top hashtag is stable");

    // The main job by event time, its tweets up to 25 s out of order (more than the 20 s
    // window) with a lag of 1 s and no allowed lateness: some are late, and the table
    // shows it.
    let served = serve_topology(
        "topologies/trending-hashtags-event-time.toml",
        &[
            "--set",
            "spouts.source.seed=42",
            "--set",
            "spouts.source.rate=2000",
            "--set",
            "spouts.source.disorder=25s",
            "--set",
            "bolts.counts.window=20s",
            "--set",
            "bolts.counts.slide=2s",
            "--set",
            "bolts.counts.allowed_lateness=0s",
            "--duration",
            "180s",
        ],
    );
    let url = format!("http://{}/", served.addr);

    let port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", chromedriver.display())),
    );
    let profile = std::env::temp_dir().join(format!("squall-chromium-{}", std::process::id()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium.to_string_lossy(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver needs a moment to listen: retry the session for up to 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
        }
    };

    client.goto(&url).await.expect("load the dashboard");

    // The bar chart ranks the known top hashtag first (ranked every 2 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    loop {
        let keys = client
            .find_all(Locator::Css("#topk .bar .key"))
            .await
            .unwrap_or_default();
        if let Some(first) = keys.first() {
            last = first.text().await.unwrap_or_default();
            if last == expected && keys.len() >= 5 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the bar chart did not show {expected:?} first within 90 s (last seen {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The graph, the table and live edge rates.
    let nodes = client
        .find_all(Locator::Css("#graph .node"))
        .await
        .expect("graph nodes");
    assert_eq!(nodes.len(), 7, "one node per component");
    let rows = texts(&client, "#components tbody tr").await;
    assert_eq!(rows.len(), 7, "one row per component: {rows:?}");
    assert!(rows[0].starts_with("source"), "{rows:?}");
    let rate = texts(&client, "#graph .edge .rate")
        .await
        .into_iter()
        .next()
        .unwrap_or_default();
    assert!(
        rate.ends_with("/s") && !rate.starts_with('–'),
        "edge label {rate:?}"
    );
    // Event time: the late tweets of the counts, and how far its watermark is behind.
    let header = texts(&client, "#components thead th").await;
    assert_eq!(
        header[12..],
        ["late".to_string(), "watermark lag".to_string()],
        "{header:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cells = texts(&client, "#components tbody tr[data-component='counts'] td").await;
        let late: u64 = cells[12]
            .replace([',', '\u{a0}', ' '], "")
            .parse()
            .unwrap_or(0);
        let lag = &cells[13];
        if late > 0 && lag.ends_with(" s") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the counts' late tweets and watermark lag are not shown: {cells:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = texts(&client, "#conn").await;
    assert_eq!(status, ["live"]);
    // Let the latency chart draw a few points, then take the picture.
    let canvas = client.find(Locator::Css("#latency canvas")).await;
    assert!(canvas.is_ok(), "the latency chart is drawn");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let png = client.screenshot().await.expect("screenshot");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, &png).expect("write the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", out.display());
    client.close().await.ok();
    let _ = std::fs::remove_dir_all(&profile);
}
