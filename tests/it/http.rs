//! The web UI of `squall topology run --http`: every endpoint of `docs/http-api.md` against
//! a live run of the binary, `/metrics` through a Prometheus parser, and no secret in any
//! answer.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::http;
use crate::support::http::{get, raw, serve_args_env, serve_topology, stream_until, wait_for};

/// The fields `docs/http-api.md` documents.
const METRICS_FIELDS: &[&str] = &[
    "topology",
    "uptime_s",
    "interval_s",
    "throughput_tps",
    "components",
    "edges",
    "latency",
];
const COMPONENT_FIELDS: &[&str] = &[
    "name",
    "kind",
    "tasks",
    "emitted",
    "executed",
    "acked",
    "failed",
    "timed_out",
    "abandoned",
    "restarts",
    "late",
    "watermark_lag_ms",
    "pending",
    "emitted_per_s",
    "executed_per_s",
    "acked_per_s",
    "failed_per_s",
    "capacity",
    "busy_s",
    "execute_latency_us",
    "complete_latency_us",
    "per_task",
];
const TASK_FIELDS: &[&str] = &[
    "task",
    "emitted",
    "executed",
    "acked",
    "failed",
    "restarts",
    "late",
    "watermark_lag_ms",
    "pending",
    "capacity",
    "busy_s",
];
const PERCENTILE_FIELDS: &[&str] = &["p50", "p90", "p99", "p999", "max"];
const EDGE_FIELDS: &[&str] = &["from", "to", "stream", "grouping", "tuples_per_s"];
const TOPOLOGY_FIELDS: &[&str] = &["name", "components"];
const TOPOLOGY_COMPONENT_FIELDS: &[&str] = &["name", "kind", "parallelism", "inputs"];
const INPUT_FIELDS: &[&str] = &["from", "stream", "grouping", "fields"];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// `v` has exactly the documented fields.
fn assert_fields(v: &Value, fields: &[&str], what: &str) {
    let want: BTreeSet<String> = fields.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys(v), want, "fields of {what}: {v}");
}

fn component<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no component {name} in {m}"))
}

#[test]
fn every_endpoint_serves_the_documented_fields_of_a_live_run() {
    let s = serve_topology(
        "topologies/trending-hashtags.toml",
        &[
            "--set",
            "spouts.source.rate=3000",
            "--set",
            "bolts.counts.slide=2s",
            "--set",
            "bolts.counts.window=10s",
            "--duration",
            "120s",
        ],
    );
    assert_eq!(get(s.addr, "/healthz").body.trim(), "ok");

    // Counts move.
    let m = wait_for("counts to move", Duration::from_secs(60), || {
        let m = get(s.addr, "/api/metrics").json();
        let moving = component(&m, "source")["acked"].as_u64() > Some(1000)
            && component(&m, "counts")["executed"].as_u64() > Some(0)
            && component(&m, "source")["emitted_per_s"].as_f64() > Some(0.0);
        moving.then_some(m)
    });
    assert_fields(&m, METRICS_FIELDS, "/api/metrics");
    assert_eq!(m["topology"], "trending-hashtags");
    assert!(m["uptime_s"].as_f64() > Some(0.0));
    assert!(m["interval_s"].as_f64() > Some(0.0));
    assert!(m["throughput_tps"].as_f64() > Some(0.0), "{m}");
    let names: Vec<&str> = m["components"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "source",
            "tokenize",
            "hashtags",
            "counts",
            "rank",
            "total_rank",
            "sink"
        ]
    );
    for c in m["components"].as_array().into_iter().flatten() {
        assert_fields(c, COMPONENT_FIELDS, "a component");
        assert_fields(
            &c["execute_latency_us"],
            PERCENTILE_FIELDS,
            "execute_latency_us",
        );
        assert_fields(
            &c["complete_latency_us"],
            PERCENTILE_FIELDS,
            "complete_latency_us",
        );
        let tasks = c["per_task"].as_array().expect("per_task array");
        assert_eq!(tasks.len() as u64, c["tasks"].as_u64().unwrap_or(0), "{c}");
        for (i, t) in tasks.iter().enumerate() {
            assert_fields(t, TASK_FIELDS, "a task");
            assert_eq!(t["task"].as_u64(), Some(i as u64));
            let cap = t["capacity"].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&cap), "capacity {cap}");
        }
        // Per-component values are the sums of the per-task ones.
        for f in [
            "emitted", "executed", "acked", "failed", "restarts", "late", "pending",
        ] {
            let sum: u64 = tasks.iter().filter_map(|t| t[f].as_u64()).sum();
            assert_eq!(c[f].as_u64(), Some(sum), "{f} of {}", c["name"]);
        }
    }
    let source = component(&m, "source");
    assert_eq!(source["kind"], "spout");
    assert!(source["complete_latency_us"]["p99"].as_f64() > Some(0.0));
    assert!(source["capacity"].as_f64() > Some(0.0), "{source}");
    assert!(source["busy_s"].as_f64() > Some(0.0), "{source}");
    let tokenize = component(&m, "tokenize");
    assert_eq!(tokenize["kind"], "bolt");
    assert!(tokenize["execute_latency_us"]["p99"].as_f64() > Some(0.0));
    assert!(tokenize["executed_per_s"].as_f64() > Some(0.0));
    let edges = m["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 6, "one edge per input: {m}");
    for e in edges {
        assert_fields(e, EDGE_FIELDS, "an edge");
    }
    let first = &edges[0];
    assert_eq!(
        (first["from"].as_str(), first["to"].as_str()),
        (Some("source"), Some("tokenize"))
    );
    assert_eq!(first["grouping"], "local_or_shuffle");
    assert!(first["tuples_per_s"].as_f64() > Some(0.0));
    assert_fields(&m["latency"], &["t", "spouts"], "latency");
    assert_fields(
        &m["latency"]["spouts"]["source"],
        PERCENTILE_FIELDS,
        "latency.spouts.source",
    );

    // The graph.
    let t = get(s.addr, "/api/topology").json();
    assert_fields(&t, TOPOLOGY_FIELDS, "/api/topology");
    for c in t["components"].as_array().into_iter().flatten() {
        assert_fields(c, TOPOLOGY_COMPONENT_FIELDS, "a topology component");
        for i in c["inputs"].as_array().into_iter().flatten() {
            assert_fields(i, INPUT_FIELDS, "an input");
        }
    }
    let counts = t["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "counts"))
        .expect("counts");
    assert_eq!(counts["parallelism"], 2);
    assert_eq!(counts["inputs"][0]["grouping"], "fields");
    assert_eq!(
        counts["inputs"][0]["fields"],
        serde_json::json!(["hashtag"])
    );

    // The top-k appears once total_rank has ranked (slide 2s).
    let k = wait_for("a top-k ranking", Duration::from_secs(60), || {
        let k = get(s.addr, "/api/topk").json();
        (k["ranking"].as_array().map_or(0, Vec::len) > 0).then_some(k)
    });
    assert_fields(&k, &["ranking"], "/api/topk");
    for r in k["ranking"].as_array().into_iter().flatten() {
        assert_fields(r, &["key", "count"], "a ranking entry");
    }

    // History: one point per sample, bounded.
    let h = get(s.addr, "/api/history").json();
    let h = h.as_array().expect("history array");
    assert!(!h.is_empty() && h.len() <= 300, "{} points", h.len());
    assert_fields(&h[h.len() - 1], &["t", "spouts"], "a history point");

    // Server-sent events: topology first, then metrics and topk.
    let ev = stream_until(s.addr, "/api/events", Duration::from_secs(10), |t| {
        t.matches("event: metrics").count() >= 2 && t.contains("event: topk")
    });
    assert_eq!(ev.status, 200);
    assert!(
        ev.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{}",
        ev.headers
    );
    let body = ev.body;
    let topo_at = body.find("event: topology").expect("topology event");
    let metrics_at = body.find("event: metrics").expect("metrics event");
    assert!(topo_at < metrics_at);
    for block in body.split("\n\n").filter(|b| b.contains("event: metrics")) {
        if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
            let v: Value = serde_json::from_str(data).expect("metrics event is JSON");
            assert_fields(&v, METRICS_FIELDS, "a metrics event");
        }
    }

    // The page and its assets.
    let page = get(s.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js") && page.body.contains("uPlot"));
    for a in ["app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"] {
        let r = get(s.addr, &format!("/assets/{a}"));
        assert_eq!(r.status, 200, "/assets/{a}");
        assert!(!r.body.is_empty());
    }
    assert_eq!(get(s.addr, "/assets/nope.js").status, 404);
}

#[test]
fn prometheus_metrics_parse_with_component_and_task_labels() {
    let s = serve_topology(
        "topologies/trending-hashtags.toml",
        &["--set", "spouts.source.rate=3000", "--duration", "120s"],
    );
    let text = wait_for("acked trees on /metrics", Duration::from_secs(60), || {
        let r = get(s.addr, "/metrics");
        (r.status == 200
            && r.body
                .contains("squall_tuples_acked_total{component=\"source\""))
        .then(|| {
            let acked = r
                .body
                .lines()
                .find(|l| l.starts_with("squall_tuples_acked_total{component=\"source\""))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            // Both source tasks have sampled a complete latency (one tree in 16 is).
            let sampled: Vec<f64> = r
                .body
                .lines()
                .filter(|l| {
                    l.starts_with("squall_complete_latency_seconds_count{component=\"source\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .collect();
            (acked > 0.0 && sampled.len() == 2 && sampled.iter().all(|c| *c > 0.0)).then_some(r)
        })
        .flatten()
    });
    assert!(
        text.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{}",
        text.headers
    );
    let lines = text.body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let series = |name: &str| -> Vec<&prometheus_parse::Sample> {
        scrape.samples.iter().filter(|s| s.metric == name).collect()
    };
    for name in [
        "squall_tuples_emitted_total",
        "squall_tuples_executed_total",
        "squall_tuples_acked_total",
        "squall_tuples_failed_total",
        "squall_tuples_timed_out_total",
        "squall_task_restarts_total",
        "squall_busy_seconds_total",
        "squall_pending_trees",
        "squall_capacity",
        "squall_execute_latency_seconds",
        "squall_complete_latency_seconds",
    ] {
        let ss = series(name);
        assert!(!ss.is_empty(), "no {name} in\n{}", text.body);
        for s in ss {
            assert!(
                s.labels.get("component").is_some(),
                "{name}: {:?}",
                s.labels
            );
            assert!(s.labels.get("task").is_some(), "{name}: {:?}", s.labels);
        }
    }
    assert_eq!(series("squall_info").len(), 1);
    assert_eq!(series("squall_uptime_seconds").len(), 1);
    // Two source tasks, two tokenize tasks, one task per global bolt.
    let emitted_by = |c: &str| {
        series("squall_tuples_emitted_total")
            .into_iter()
            .filter(|s| s.labels.get("component") == Some(c))
            .count()
    };
    assert_eq!(emitted_by("source"), 2);
    assert_eq!(emitted_by("total_rank"), 1);
    let acked: f64 = series("squall_tuples_acked_total")
        .iter()
        .filter(|s| s.labels.get("component") == Some("source"))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(acked > 0.0);
    // Histograms: cumulative buckets ending in +Inf == count, per spout task.
    let complete = series("squall_complete_latency_seconds");
    assert_eq!(complete.len(), 2, "one histogram per source task");
    for s in complete {
        let prometheus_parse::Value::Histogram(buckets) = &s.value else {
            panic!("not a histogram: {:?}", s.value);
        };
        assert!(buckets.len() >= 10, "{buckets:?}");
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "cumulative: {counts:?}"
        );
        let last = buckets.last().expect("a bucket");
        assert!(last.less_than.is_infinite());
        assert!(last.count > 0.0);
    }
    for s in series("squall_capacity") {
        let v = match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("capacity is a gauge: {other:?}"),
        };
        assert!((0.0..=1.0).contains(&v));
    }
}

#[test]
fn a_non_loopback_address_warns_and_a_taken_port_fails() {
    let s = serve_topology(
        "topologies/trending-hashtags.toml",
        &["--set", "spouts.source.rate=100", "--duration", "60s"],
    );
    assert!(
        !s.first_lines.iter().any(|l| l.contains("warning")),
        "{:?}",
        s.first_lines
    );
    // The same port again: the second run cannot bind and says so.
    let taken = s.addr.to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_squall"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "topology",
            "run",
            "topologies/trending-hashtags.toml",
            "--quiet",
        ])
        .args(["--set", "spouts.source.limit=10", "--http", &taken])
        .output()
        .expect("run squall");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");

    let wide = http::serve_args(&[
        "topology",
        "run",
        "topologies/trending-hashtags.toml",
        "--quiet",
        "--set",
        "spouts.source.rate=100",
        "--duration",
        "60s",
        "--http",
        "0.0.0.0:0",
    ]);
    assert!(
        wide.first_lines
            .iter()
            .any(|l| l.contains("warning") && l.contains("not a loopback address")),
        "{:?}",
        wide.first_lines
    );
}

/// A kafka spout with a SASL password in its `properties`: no endpoint ever shows it.
#[test]
fn no_endpoint_shows_a_secret_option() {
    const SECRET: &str = "hunter2";
    let broker = squall::kafka::mock::DevBroker::start(1).expect("mock broker");
    broker.create_topic("tweets", 1).expect("topic");
    let toml = format!(
        r#"
name = "secretive"
[spouts.source]
type = "kafka"
brokers = "{}"
topics = ["tweets"]
group = "g"
properties = {{ "sasl.password" = "{SECRET}", "sasl.username" = "alice" }}

[bolts.tokenize]
type = "tokenize"
inputs = [{{ from = "source", grouping = "shuffle" }}]
"#,
        broker.bootstrap_servers()
    );
    let registry = squall::builtin::registry();
    let file = squall::topology::file::load_str(&toml, "secretive.toml", &[], &registry)
        .expect("valid topology");
    let graph = squall::http::TopologyInfo::of(&file.topology);
    let run = squall::LocalCluster::submit(file.topology, file.config).expect("submit");
    let server = squall::http::serve("127.0.0.1:0".parse().expect("addr"), graph, run.registry())
        .expect("serve");
    let addr = server.addr();
    // Let a few samples happen.
    wait_for("two samples", Duration::from_secs(30), || {
        let m = get(addr, "/api/metrics").json();
        (m["uptime_s"].as_f64() > Some(2.0)).then_some(())
    });
    let mut seen = Vec::new();
    for path in [
        "/",
        "/healthz",
        "/metrics",
        "/api/topology",
        "/api/metrics",
        "/api/topk",
        "/api/history",
        "/assets/app.js",
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            !r.body.contains(SECRET),
            "{path} shows the password:\n{}",
            r.body
        );
        assert!(
            !r.headers.contains(SECRET),
            "{path} headers show the password"
        );
        seen.push(r.body);
    }
    let ev = stream_until(addr, "/api/events", Duration::from_secs(5), |t| {
        t.contains("event: topk")
    });
    assert!(ev.body.contains("event: topology"));
    assert!(!ev.body.contains(SECRET), "{}", ev.body);
    // The graph is there (so the check above looked at real answers).
    assert!(seen[3].contains("\"source\"") && seen[3].contains("\"shuffle\""));
    assert!(
        !seen[3].contains("alice"),
        "no option values at all: {}",
        seen[3]
    );
    server.stop();
    let _ = run.stop();
}

/// A request that is not HTTP is the client's problem: answered 400, counted in
/// `squall_http_bad_requests_total`, logged at debug and never at ERROR; and log lines
/// written to a pipe carry no colour codes.
#[test]
fn a_malformed_request_is_counted_and_logged_at_debug_without_colour() {
    let served = serve_args_env(
        &[
            "topology",
            "run",
            "topologies/trending-hashtags.toml",
            "--quiet",
            "--http",
            "127.0.0.1:0",
        ],
        &[("SQUALL_LOG", "warn,squall::http=debug")],
    );
    let answer = raw(served.addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(answer.status, 400, "{answer:?}");
    let mut seen = served.first_lines.clone();
    let logged = wait_for(
        "the debug line of the bad request",
        Duration::from_secs(10),
        || {
            while let Ok(line) = served.stderr.try_recv() {
                seen.push(line);
            }
            seen.iter().find(|l| l.contains("answered 400")).cloned()
        },
    );
    assert!(logged.contains("DEBUG"), "{logged}");
    for line in &seen {
        assert!(!line.contains("ERROR"), "logged at ERROR: {line}");
        assert!(
            !line.contains('\x1b'),
            "colour codes in a log written to a pipe: {line:?}"
        );
    }
    let metrics = get(served.addr, "/metrics");
    assert!(
        metrics
            .body
            .contains("\nsquall_http_bad_requests_total 1\n"),
        "{}",
        metrics.body
    );
}
