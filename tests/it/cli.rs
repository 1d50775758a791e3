//! `squall topology validate|graph` and `squall components` through the real binary:
//! shipped files validate, every error names the file, the line and the key.

use std::time::Duration;

use crate::support::cli::*;

const TIMEOUT: Duration = Duration::from_secs(10);

const SHIPPED: [&str; 4] = [
    "trending-hashtags.toml",
    "socket-hashtags.toml",
    "socket-wordcount.toml",
    "file-hashtags.toml",
];

/// Every `topologies/*.toml` (so a new shipped file is covered too).
fn shipped_files() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("topologies"))
        .expect("topologies/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_topology_validates() {
    let files = shipped_files();
    for name in SHIPPED {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "{name} is not shipped"
        );
    }
    for f in files {
        let out = squall(["topology", "validate", &f.display().to_string()], TIMEOUT);
        out.assert_success();
        assert!(
            out.stdout.contains(": ok (topology `"),
            "{}: {}",
            f.display(),
            out.stdout
        );
    }
}

#[test]
fn validate_reports_counts_of_spouts_and_bolts() {
    let out = squall(
        ["topology", "validate", "topologies/trending-hashtags.toml"],
        TIMEOUT,
    );
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        "topologies/trending-hashtags.toml: ok (topology `trending-hashtags`: 1 spouts, 6 bolts)"
    );
}

/// Writes `toml` to a temp file, validates it, expects exit 1 and returns the one error
/// line with the temp path replaced by `t.toml`.
fn validate_err(toml: &str, sets: &[&str]) -> String {
    let dir = TempDir::new("cli");
    let path = dir.write("t.toml", toml);
    let mut args = vec![
        "topology".to_string(),
        "validate".into(),
        path.display().to_string(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let out = squall(&args, TIMEOUT);
    out.assert_failure();
    assert_eq!(out.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    let err = out
        .stderr
        .trim()
        .replace(&path.display().to_string(), "t.toml");
    assert_eq!(err.lines().count(), 1, "one error line expected: {err}");
    err
}

const SPOUT: &str = "name = \"t\"\n\n[spouts.source]\ntype = \"generator\"\nlimit = 10\n";

#[test]
fn unknown_spout_type_lists_the_builtins() {
    let err = validate_err("name = \"t\"\n\n[spouts.source]\ntype = \"nope\"\n", &[]);
    assert_eq!(
        err,
        "error: t.toml:4: `spouts.source.type`: unknown spout `nope` (built-in spouts: file, generator, kafka, socket, twitter)"
    );
}

#[test]
fn unknown_bolt_type_lists_the_builtins() {
    let toml = format!("{SPOUT}\n[bolts.x]\ntype = \"nope\"\ninputs = [{{ from = \"source\" }}]\n");
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:8: `bolts.x.type`: unknown bolt `nope` (built-in bolts: chaos, console, count, hashtags, jsonl, kafka, null, rank, rolling_count, tokenize, total_rank)"
    );
}

#[test]
fn unknown_option() {
    let err = validate_err(
        "name = \"t\"\n\n[spouts.source]\ntype = \"generator\"\nlimt = 5\n",
        &[],
    );
    assert!(
        err.starts_with(
            "error: t.toml:5: `spouts.source.limt`: unknown field `limt`, expected one of `limit`"
        ),
        "{err}"
    );
}

#[test]
fn a_wrong_config_value_names_its_key() {
    let toml = "name = \"t\"\n\n[config]\nacking = true\nmode = \"event\"\n\n[spouts.source]\ntype = \"generator\"\n";
    for (set, want) in [
        (
            "config.mode=fast",
            "`config.mode`: unknown variant `fast`, expected `event` or `microbatch`",
        ),
        (
            "config.acking=maybe",
            "`config.acking`: invalid type: string \"maybe\", expected a boolean",
        ),
        (
            "config.worker_priority=high",
            "`config.worker_priority`: unknown variant `high`, expected `normal` or `realtime`",
        ),
        ("config.nosuch=1", "`config.nosuch`: unknown field `nosuch`"),
    ] {
        let err = validate_err(toml, &[set]);
        assert!(err.contains(want), "{set}: {err}");
    }
}

#[test]
fn a_wrong_option_value_names_its_key_and_line() {
    let err = validate_err(
        "name = \"t\"\n[spouts.source]\ntype = \"generator\"\nlimit = -1\n",
        &[],
    );
    assert_eq!(
        err,
        "error: t.toml:4: `spouts.source.limit`: invalid value: integer `-1`, expected u64"
    );
    let toml = format!(
        "{SPOUT}\n[bolts.counts]\ntype = \"rolling_count\"\nwindow = 60\ninputs = [{{ from = \"source\" }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert!(
        err.starts_with("error: t.toml:9: `bolts.counts.window`: invalid type: integer `60`"),
        "{err}"
    );
}

#[test]
fn unknown_option_of_a_bolt() {
    let toml = format!(
        "{SPOUT}\n[bolts.rank]\ntype = \"rank\"\ntop = 3\ntpo = 4\ninputs = [{{ from = \"source\" }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert!(
        err.starts_with("error: t.toml:10: `bolts.rank.tpo`: unknown field `tpo`"),
        "{err}"
    );
}

#[test]
fn bad_grouping_field() {
    let toml = format!(
        "{SPOUT}\n[bolts.split]\ntype = \"tokenize\"\ninputs = [{{ from = \"source\", grouping = \"fields\", fields = [\"nope\"] }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:9: `bolts.split.inputs`: bolt `split` groups `source:default` by field `nope`, which that stream does not declare (it has [id, text, author, created_at, lang, hashtags, author_id])"
    );
}

#[test]
fn cycle() {
    let toml = format!(
        "{SPOUT}\n[bolts.a]\ntype = \"count\"\ninputs = [{{ from = \"source\" }}, {{ from = \"b\" }}]\n\n[bolts.b]\ntype = \"count\"\ninputs = [{{ from = \"a\" }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:9: `bolts.a.inputs`: the topology has a cycle: a -> b -> a"
    );
}

#[test]
fn unknown_source() {
    let toml =
        format!("{SPOUT}\n[bolts.a]\ntype = \"tokenize\"\ninputs = [{{ from = \"nowhere\" }}]\n");
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:9: `bolts.a.inputs`: bolt `a` subscribes to unknown component `nowhere`"
    );
}

#[test]
fn zero_parallelism() {
    let toml = format!(
        "{SPOUT}\n[bolts.a]\ntype = \"tokenize\"\nparallelism = 0\ninputs = [{{ from = \"source\" }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:9: `bolts.a.parallelism`: component `a` has parallelism 0; it must be at least 1"
    );
    let err = validate_err(
        "name = \"t\"\n[spouts.source]\ntype = \"generator\"\nparallelism = 0\n",
        &[],
    );
    assert_eq!(
        err,
        "error: t.toml:4: `spouts.source.parallelism`: component `source` has parallelism 0; it must be at least 1"
    );
}

#[test]
fn parallelism_beyond_the_limit() {
    let toml = format!(
        "{SPOUT}\n[bolts.a]\ntype = \"tokenize\"\nparallelism = 100000\ninputs = [{{ from = \"source\" }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:9: `bolts.a.parallelism`: component `a` has parallelism 100000; a component may have at most 1024 tasks"
    );
    // Within the per-component limit, over the total.
    let mut toml = SPOUT.to_string();
    for b in ["a", "b"] {
        toml.push_str(&format!(
            "\n[bolts.{b}]\ntype = \"tokenize\"\nparallelism = 1024\ninputs = [{{ from = \"source\" }}]\n"
        ));
    }
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:9: `bolts.a.parallelism`: the topology has 2049 tasks; at most 2048 are allowed (the largest component is `a`, 1024 tasks)"
    );
    // Few tasks, but every task of `a` connected to every task of `b`.
    let toml = format!(
        "{SPOUT}\n[bolts.a]\ntype = \"tokenize\"\nparallelism = 200\ninputs = [{{ from = \"source\" }}]\n\n[bolts.b]\ntype = \"count\"\nparallelism = 200\ninputs = [{{ from = \"a\", grouping = \"fields\", fields = [\"word\"] }}]\n"
    );
    let err = validate_err(&toml, &[]);
    assert_eq!(
        err,
        "error: t.toml:14: `bolts.b.parallelism`: the topology has 40200 connections between tasks; at most 16384 are allowed (a subscription connects every task of its source to every task of the subscriber; the most: `a` → `b`, 200 × 200)"
    );
}

#[test]
fn toml_syntax_error_has_the_line() {
    let err = validate_err(
        "name = \"t\"\n\n[spouts.source]\ntype = \"generator\"\nlimit = \n",
        &[],
    );
    assert!(err.starts_with("error: t.toml:5: "), "{err}");
    let err = validate_err(
        "name = \"t\"\n\n[spouts.source\ntype = \"generator\"\n",
        &[],
    );
    assert!(err.starts_with("error: t.toml:3: "), "{err}");
}

#[test]
fn set_of_an_unknown_component() {
    let err = validate_err(SPOUT, &["spouts.nope.limit=1"]);
    assert_eq!(
        err,
        "error: t.toml: `spouts.nope.limit=1`: there is no component `nope` under [spouts]"
    );
    let out = squall(
        [
            "topology",
            "validate",
            "topologies/trending-hashtags.toml",
            "--set",
            "bolts.nope.top=3",
        ],
        TIMEOUT,
    );
    out.assert_failure();
    assert_eq!(
        out.stderr.trim(),
        "error: topologies/trending-hashtags.toml: `bolts.nope.top=3`: there is no component `nope` under [bolts]"
    );
}

#[test]
fn set_of_an_unknown_option_names_the_key() {
    let out = squall(
        [
            "topology",
            "validate",
            "topologies/trending-hashtags.toml",
            "--set",
            "spouts.source.limt=3",
        ],
        TIMEOUT,
    );
    out.assert_failure();
    assert!(
        out.stderr
            .contains("`spouts.source.limt`: unknown field `limt`"),
        "{}",
        out.stderr
    );
}

#[test]
fn set_applies_before_validation() {
    // A valid override passes; an invalid value of a known option is rejected.
    let ok = squall(
        [
            "topology",
            "validate",
            "topologies/trending-hashtags.toml",
            "--set",
            "bolts.counts.window=2s",
            "--set",
            "bolts.counts.slide=1s",
        ],
        TIMEOUT,
    );
    ok.assert_success();
    let bad = squall(
        [
            "topology",
            "validate",
            "topologies/trending-hashtags.toml",
            "--set",
            "bolts.counts.parallelism=0",
        ],
        TIMEOUT,
    );
    bad.assert_failure();
    assert!(
        bad.stderr.contains("`bolts.counts.parallelism`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn missing_file() {
    let out = squall(
        ["topology", "validate", "topologies/no-such-file.toml"],
        TIMEOUT,
    );
    out.assert_failure();
    assert!(
        out.stderr
            .starts_with("error: topologies/no-such-file.toml: cannot read:"),
        "{}",
        out.stderr
    );
}

#[test]
fn graph_prints_dot_with_every_component_and_edge() {
    let out = squall(
        ["topology", "graph", "topologies/trending-hashtags.toml"],
        TIMEOUT,
    );
    out.assert_success();
    let dot = &out.stdout;
    assert!(dot.starts_with("digraph \"trending-hashtags\" {"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    for (name, shape, par) in [
        ("source", "invhouse", 2),
        ("tokenize", "box", 2),
        ("hashtags", "box", 2),
        ("counts", "box", 2),
        ("rank", "box", 2),
        ("total_rank", "box", 1),
        ("sink", "box", 1),
    ] {
        let node = format!("\"{name}\" [shape={shape}, label=\"{name} x{par}\"];");
        assert!(dot.contains(&node), "missing node {node} in\n{dot}");
    }
    for (from, to, label) in [
        ("source", "tokenize", "local_or_shuffle"),
        ("tokenize", "hashtags", "local_or_shuffle"),
        ("hashtags", "counts", "fields(hashtag)"),
        ("counts", "rank", "fields(key)"),
        ("rank", "total_rank", "global"),
        ("total_rank", "sink", "global"),
    ] {
        let edge = format!("\"{from}\" -> \"{to}\" [label=\"{label}\"];");
        assert!(dot.contains(&edge), "missing edge {edge} in\n{dot}");
    }
    assert_eq!(dot.matches("->").count(), 6, "{dot}");
}

#[test]
fn graph_of_every_shipped_file_names_every_component() {
    for f in shipped_files() {
        let text = std::fs::read_to_string(&f).expect("read");
        let out = squall(["topology", "graph", &f.display().to_string()], TIMEOUT);
        out.assert_success();
        for line in text.lines() {
            let t = line.trim();
            let Some(name) = t
                .strip_prefix("[spouts.")
                .or_else(|| t.strip_prefix("[bolts."))
                .and_then(|r| r.strip_suffix(']'))
            else {
                continue;
            };
            assert!(
                out.stdout.contains(&format!("\"{name}\" [shape=")),
                "{}: no node for {name}:\n{}",
                f.display(),
                out.stdout
            );
        }
    }
}

#[test]
fn graph_of_an_invalid_file_fails_with_the_error() {
    let dir = TempDir::new("cli-graph");
    let path = dir.write("t.toml", "name = \"t\"\n[spouts.source]\ntype = \"nope\"\n");
    let out = squall(["topology", "graph", &path.display().to_string()], TIMEOUT);
    out.assert_failure();
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains(":3: `spouts.source.type`: unknown spout `nope`"),
        "{}",
        out.stderr
    );
}

#[test]
fn components_lists_every_builtin() {
    let out = squall(["components"], TIMEOUT);
    out.assert_success();
    let listed: Vec<(String, String)> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    let want = [
        ("spout", "generator"),
        ("spout", "socket"),
        ("spout", "file"),
        ("spout", "kafka"),
        ("spout", "twitter"),
        ("bolt", "tokenize"),
        ("bolt", "hashtags"),
        ("bolt", "count"),
        ("bolt", "rolling_count"),
        ("bolt", "rank"),
        ("bolt", "total_rank"),
        ("bolt", "console"),
        ("bolt", "jsonl"),
        ("bolt", "null"),
        ("bolt", "kafka"),
        ("bolt", "chaos"),
    ];
    for (kind, name) in want {
        assert!(
            listed.iter().any(|(k, n)| k == kind && n == name),
            "{kind} {name} not listed:\n{}",
            out.stdout
        );
    }
    assert_eq!(listed.len(), want.len(), "{}", out.stdout);
    // Options are listed with their defaults under each component.
    assert!(out.stdout.contains("    seed = 42"), "{}", out.stdout);
    assert!(
        out.stdout.contains("    max_line_bytes = "),
        "{}",
        out.stdout
    );
}
