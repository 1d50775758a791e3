//! One topology over several `squall` processes against one Kafka-protocol broker (the
//! in-process mock cluster): `topologies/distributed-hashtags.toml` run as instances of one
//! application. The hashtags cross processes through the repartition topic, each key's
//! window counts live on the instance that holds its partition (and in the changelog), and
//! the per-partition top-10s meet on the one instance that holds the merge's partition.
//!
//! The truth is computed here from the tweets produced (tweet `i` to partition `i % 6`).

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use squall::distributed::status::{StatusView, read_view};
use squall::kafka::mock::DevBroker;

use crate::support::cli::{Running, TempDir, read_report, record_ranking, root, top_k};

const PARTITIONS: i32 = 6;

/// These tests run several `squall` processes each: one at a time, so that together they
/// do not starve the rest of the suite (whose tests have timing expectations).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}
const EXIT: Duration = Duration::from_secs(180);

/// A broker with the input and output topics.
fn broker() -> DevBroker {
    let b = DevBroker::start(1).unwrap_or_else(|e| panic!("start the mock cluster: {e}"));
    b.create_topic("tweets", PARTITIONS).unwrap();
    b.create_topic("trending-hashtags", 1).unwrap();
    b
}

/// Produces generated tweets `from..to` (tweet `i` to partition `i % PARTITIONS`); returns
/// their hashtag counts.
fn produce(b: &DevBroker, from: u64, to: u64) -> HashMap<String, u64> {
    let g = squall::tweet::generator::TweetGenerator::new(Default::default()).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut counts = HashMap::new();
    for i in from..to {
        let t = g.tweet_at(i + 1);
        squall::text::hashtags::for_each_hashtag(&t.text, |h| *counts.entry(h).or_insert(0) += 1);
        let json = squall::tweet::wire::to_v2_json(&t);
        let mut r = BaseRecord::<(), _>::to("tweets")
            .partition((i % PARTITIONS as u64) as i32)
            .payload(&json);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    counts
}

/// The end offset of each input partition once tweets `0..n` are in.
fn end_offsets(n: u64) -> String {
    (0..PARTITIONS)
        .map(|p| {
            let count = (0..n).filter(|i| i % PARTITIONS as u64 == p as u64).count();
            format!("{p}:{count}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The topology file for application `app`: the shipped one, with consumers that notice a
/// vanished member within two seconds. Not one: librdkafka's mock cluster waits up to the
/// session timeout for the members of a rebalance to join, and a member whose session
/// expires while its JoinGroup waits is dropped without an answer: its consumer hangs for
/// `max.poll.interval.ms` (5 minutes). With sessions of 2 s the wait is 1 s (the session
/// minus a second), shorter than the session.
fn topology(dir: &TempDir, app: &str, end: &str) -> std::path::PathBuf {
    let src = std::fs::read_to_string(root().join("topologies/distributed-hashtags.toml")).unwrap();
    let src = src
        .replace(
            "group = \"distributed-hashtags\"",
            &format!(
                "group = \"{app}\"\nend = \"{end}\"\nproperties = {{ \"session.timeout.ms\" = \"2000\", \"heartbeat.interval.ms\" = \"200\" }}"
            ),
        )
        .replace("# application_id = \"distributed-hashtags\"", &format!("application_id = \"{app}\""))
        .replace("# session_timeout = \"10s\"", "session_timeout = \"2s\"");
    assert!(src.contains(&format!("application_id = \"{app}\"")));
    dir.write(&format!("{app}.toml"), &src)
}

/// Starts instance `id` of the topology in `file`, its report going to `dir/<id>.json`.
fn instance(b: &DevBroker, dir: &TempDir, file: &std::path::Path, id: &str) -> Running {
    instance_with(b, dir, file, id, &[])
}

fn instance_with(
    b: &DevBroker,
    dir: &TempDir,
    file: &std::path::Path,
    id: &str,
    extra: &[&str],
) -> Running {
    let report = dir.join(&format!("{id}.json"));
    let mut args = vec![
        "topology",
        "run",
        file.to_str().unwrap(),
        "--brokers",
        b.bootstrap_servers(),
        "--instance-id",
        id,
        "--quiet",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Running::start_logging(args, Stdio::null(), Some(LOG))
}

/// The instances' log level: what each partition went through (assigned, restored, ended,
/// done) and, while an instance waits for the end of the run, which partitions are not
/// done; kept when a test fails ([`exit_all`]).
const LOG: &str = "warn,squall::distributed=info,squall::kafka::spout=info";

fn view(b: &DevBroker, app: &str) -> StatusView {
    read_view(
        b.bootstrap_servers(),
        &BTreeMap::new(),
        app,
        Duration::from_secs(10),
    )
    .unwrap_or_default()
}

/// Waits until `pred` holds for the application's status view; returns that view.
fn wait_view(
    b: &DevBroker,
    app: &str,
    what: &str,
    pred: impl Fn(&StatusView) -> bool,
) -> StatusView {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = view(b, app);
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Instances holding partitions of `topic`, and how many each holds.
fn holders(v: &StatusView, topic: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in v.instances.values() {
        let n = s.partitions.iter().filter(|p| p.topic == topic).count();
        if n > 0 && !v.left.contains(&s.instance_id) {
            m.insert(s.instance_id.clone(), n);
        }
    }
    m
}

/// Every ranking record of `trending-hashtags`, in order.
fn rankings(b: &DevBroker) -> Vec<serde_json::Value> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .set("group.id", "read-back")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks("trending-hashtags", 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trending-hashtags", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while (got.len() as i64) < high {
        assert!(Instant::now() < deadline, "read {} of {high}", got.len());
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push(serde_json::from_slice(m.payload().unwrap_or_default()).unwrap());
        }
    }
    got
}

/// The final ranking written (exactly one record is final).
fn final_ranking(b: &DevBroker) -> Vec<(String, u64)> {
    let records = rankings(b);
    let finals: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["final"] == serde_json::Value::Bool(true))
        .collect();
    assert!(
        !finals.is_empty(),
        "no final ranking among {} records",
        records.len()
    );
    record_ranking(finals[finals.len() - 1])
}

/// The final ranking of an at-least-once run: no tweet lost. Every count is at least the
/// truth's, and a tag of the truth's top-10 is missing only if re-read tweets pushed
/// others above it (its true count is at most the 10th count written).
fn assert_nothing_lost(got: &[(String, u64)], truth: &HashMap<String, u64>) {
    let want = top_k(truth, 10);
    assert_eq!(got.len(), want.len(), "got {got:?}, truth {want:?}");
    for (k, c) in got {
        let t = truth.get(k).copied().unwrap_or(0);
        assert!(
            *c >= t,
            "{k}: {c} < the truth {t}; got {got:?}, truth {want:?}"
        );
    }
    let tenth = got.last().map_or(0, |(_, c)| *c);
    for (k, c) in &want {
        assert!(
            got.iter().any(|(g, _)| g == k) || *c <= tenth,
            "{k} (truth {c}) is missing; got {got:?}, truth {want:?}"
        );
    }
}

fn acked_by_source(dir: &TempDir, id: &str) -> u64 {
    let r = read_report(&dir.join(&format!("{id}.json")));
    r["spouts"]["source"]["acked"].as_u64().unwrap_or(0)
}

fn exit_ok(i: &mut Running, id: &str) {
    let status = i.wait_exit(EXIT);
    assert!(
        status.success(),
        "instance {id} exited with {status}\n{}",
        crate::support::cli::tail(&i.stderr_text())
    );
}

/// Waits for every instance of `is` to exit 0. If one does not (or does not exit within
/// [`EXIT`]), the others are killed, and the whole stderr of every instance (`killed`
/// ones included: those the test killed itself) and the status topic's view are kept in
/// a directory that the failure names (it is not removed), then the test fails.
fn exit_all(b: &DevBroker, app: &str, is: &mut [(String, Running)], killed: &[(String, Running)]) {
    let mut failure = None;
    for (k, (id, i)) in is.iter_mut().enumerate() {
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| i.wait_exit(EXIT)));
        match waited {
            Ok(s) if s.success() => continue,
            Ok(s) => failure = Some((k, format!("instance {id} exited with {s}"))),
            Err(_) => failure = Some((k, format!("instance {id} did not exit within {EXIT:?}"))),
        }
        break;
    }
    let Some((k, why)) = failure else { return };
    let status = view(b, app);
    // Those not waited for yet: stopped, for the rest of their stderr.
    for (_, i) in is.iter_mut().skip(k + 1) {
        i.signal("-KILL");
        let _ = i.wait_exit(Duration::from_secs(10));
    }
    keep_and_fail(app, is, killed, &status, &why);
}

/// Runs `check` (assertions on the outcome of a run whose instances have all exited); if
/// it fails, keeps the instances' stderr and the status view as [`exit_all`] does.
fn check_or_keep(
    b: &DevBroker,
    app: &str,
    is: &[(String, Running)],
    killed: &[(String, Running)],
    check: impl FnOnce(),
) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        let why = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        keep_and_fail(app, is, killed, &view(b, app), &why);
    }
}

/// Keeps every instance's stderr and the status view in a directory the failure names,
/// and fails.
fn keep_and_fail(
    app: &str,
    is: &[(String, Running)],
    killed: &[(String, Running)],
    status: &StatusView,
    why: &str,
) -> ! {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let keep = std::env::temp_dir().join(format!("squall-failed-{app}-{nanos}"));
    std::fs::create_dir_all(&keep).unwrap();
    let mut tails = String::new();
    for (id, i) in is.iter().chain(killed) {
        let text = i.stderr_text();
        std::fs::write(keep.join(format!("{id}.stderr")), &text).unwrap();
        tails.push_str(&format!(
            "\n--- instance {id}, the end of its stderr ---\n{}\n",
            crate::support::cli::tail(&text)
        ));
    }
    std::fs::write(keep.join("status.txt"), format!("{status:#?}\n")).unwrap();
    panic!(
        "{why}; every instance's stderr and the status topic's view are kept in {}\n{tails}\n--- partitions done ---\n{:?}",
        keep.display(),
        status.done
    );
}

/// Three instances, 6 input partitions, the input produced once they all hold their
/// share: each instance ends by itself once the whole input is counted, the final ranking
/// is the exact truth, and every tweet was acked once over all instances.
#[test]
fn three_instances_give_the_exact_answer_and_end_by_themselves() {
    let _serial = one_at_a_time();
    let b = broker();
    let dir = TempDir::new("distributed-exact");
    let n = 6_000;
    let app = "dist-exact";
    let file = topology(&dir, app, &format!("offsets:{}", end_offsets(n)));
    let mut is: Vec<(String, Running)> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let extra: &[&str] = if *id == "a" {
                &["--http", "127.0.0.1:0"]
            } else {
                &[]
            };
            (id.to_string(), instance_with(&b, &dir, &file, id, extra))
        })
        .collect();
    wait_view(&b, app, "three instances sharing the input", |v| {
        let h = holders(v, "tweets");
        h.len() == 3 && h.values().sum::<usize>() == PARTITIONS as usize
    });
    // The dashboard's API says which instance this is and what it holds.
    let a = &mut is[0].1;
    let line = a
        .stderr
        .wait_for(Duration::from_secs(30), |l| {
            l.contains("dashboard on http://")
        })
        .unwrap_or_else(|| panic!("no dashboard address:\n{}", a.stderr_text()));
    let addr: std::net::SocketAddr = line
        .rsplit("http://")
        .next()
        .and_then(|s| s.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("address in {line:?}"));
    let topo = crate::support::http::get(addr, "/api/topology").json();
    assert_eq!(topo["instance"]["instance_id"], "a", "{topo}");
    assert_eq!(topo["instance"]["application"], app, "{topo}");
    assert!(
        topo["instance"]["partitions"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["topic"] == "tweets")),
        "{topo}"
    );
    // `squall cluster status` lists the three instances.
    let out = crate::support::cli::squall(
        [
            "cluster",
            "status",
            "--brokers",
            b.bootstrap_servers(),
            "--application",
            app,
            "--json",
        ],
        Duration::from_secs(30),
    );
    out.assert_success();
    for id in ["a", "b", "c"] {
        assert!(out.stdout.contains(&format!("\"{id}\"")), "{}", out.stdout);
    }
    let truth = produce(&b, 0, n);
    exit_all(&b, app, &mut is, &[]);
    check_or_keep(&b, app, &is, &[], || {
        assert_eq!(final_ranking(&b), top_k(&truth, 10));
        let acked: u64 = is.iter().map(|(id, _)| acked_by_source(&dir, id)).sum();
        assert_eq!(acked, n, "tweets acked over the three instances");
    });
}

/// SIGKILL of the instance that hosts the global merge, mid-run: the others take its
/// input, repartition and merge partitions (restoring their state), the run ends by
/// itself, and the final ranking has the truth's tags with counts at least the truth's
/// (at-least-once may count a re-read tweet twice, never lose one). The run ends at fixed
/// offsets and the second half of the input is produced only after the kill, so the kill
/// is mid-run however fast the first half goes.
#[test]
fn killing_the_merge_host_mid_run_loses_nothing() {
    let _serial = one_at_a_time();
    let b = broker();
    let dir = TempDir::new("distributed-kill");
    let n = 30_000;
    let app = "dist-kill";
    let mut truth = produce(&b, 0, n / 2);
    let file = topology(&dir, app, &format!("offsets:{}", end_offsets(n)));
    let mut is: BTreeMap<String, Running> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), instance(&b, &dir, &file, id)))
        .collect();
    let merge = format!("{app}-total_rank-repartition");
    // The host named by the view that showed it (a second read may fail under load).
    let v = wait_view(&b, app, "a merge host", |v| holders(v, &merge).len() == 1);
    let host = holders(&v, &merge).into_keys().next().unwrap_or_default();
    let victim = is.get_mut(&host).unwrap();
    victim.signal("-KILL");
    let _ = victim.wait_exit(Duration::from_secs(10));
    let killed = is.remove_entry(&host).into_iter().collect::<Vec<_>>();
    for (tag, count) in produce(&b, n / 2, n) {
        *truth.entry(tag).or_insert(0) += count;
    }
    let mut is: Vec<(String, Running)> = is.into_iter().collect();
    exit_all(&b, app, &mut is, &killed);
    check_or_keep(&b, app, &is, &killed, || {
        assert_nothing_lost(&final_ranking(&b), &truth)
    });
}

/// An instance killed and started again with the same id: its partitions' state comes
/// back from the changelog (it does not read its repartition partitions from the start
/// again), and the answer is complete.
#[test]
fn a_restarted_instance_restores_its_state_from_the_changelog() {
    let _serial = one_at_a_time();
    let b = broker();
    let dir = TempDir::new("distributed-restore");
    let n = 40_000;
    let app = "dist-restore";
    let truth = produce(&b, 0, n);
    let file = topology(&dir, app, "latest");
    let topic = format!("{app}-counts-repartition");
    let mut a = instance(&b, &dir, &file, "a");
    // Killed once part of the hashtags went through the repartition topic (early: the
    // run must not have computed its final ranking yet, see docs/scaling.md's limits).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = view(&b, app);
        let moved: i64 = v
            .instances
            .values()
            .flat_map(|s| s.partitions.iter())
            .filter(|p| p.topic == topic)
            .map(|p| p.position.max(0))
            .sum();
        if moved > 1_000 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {v:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    a.signal("-KILL");
    let _ = a.wait_exit(Duration::from_secs(10));
    let killed = [("a-killed".to_string(), a)];
    let mut is = [("a".to_string(), instance(&b, &dir, &file, "a"))];
    exit_all(&b, app, &mut is, &killed);
    // The killed instance had committed over 1 000 repartition records, so its snapshots
    // covered at least as many: the restarted one resumed after them.
    let total = repartition_records(&b, &topic);
    let r = read_report(&dir.join("a.json"));
    let read_again = r["spouts"]["__counts-repartition-reader"]["emitted"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        read_again + 1_000 <= total,
        "the restarted instance read {read_again} of the {total} repartition records: its state did not come from the changelog"
    );
    assert_nothing_lost(&final_ranking(&b), &truth);
}

/// Records in all partitions of `topic` now.
fn repartition_records(b: &DevBroker, topic: &str) -> u64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .create()
        .unwrap();
    (0..12)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(0, |(lo, hi)| (hi - lo) as u64)
        })
        .sum()
}

/// A fourth instance that joins mid-run takes partitions (and their state) and counts
/// its share of what follows. Every rebalance (the staggered start of the first three,
/// then the join) drains the input partitions that move and hands them off where their
/// processing stopped: the answer is exact and every tweet was acked once.
#[test]
fn an_instance_that_joins_mid_run_takes_partitions() {
    let _serial = one_at_a_time();
    let b = broker();
    let dir = TempDir::new("distributed-join");
    let n = 24_000;
    let app = "dist-join";
    let mut truth = produce(&b, 0, n / 2);
    let file = topology(&dir, app, &format!("offsets:{}", end_offsets(n)));
    let mut is: Vec<(String, Running)> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), instance(&b, &dir, &file, id)))
        .collect();
    let topic = format!("{app}-counts-repartition");
    wait_view(&b, app, "three instances counting", |v| {
        holders(v, &topic).len() == 3
    });
    is.push(("d".into(), instance(&b, &dir, &file, "d")));
    wait_view(&b, app, "the fourth instance holding partitions", |v| {
        holders(v, &topic).contains_key("d")
    });
    for (k, c) in produce(&b, n / 2, n) {
        *truth.entry(k).or_insert(0) += c;
    }
    exit_all(&b, app, &mut is, &[]);
    check_or_keep(&b, app, &is, &[], || {
        assert_eq!(final_ranking(&b), top_k(&truth, 10));
        let acked: u64 = is.iter().map(|(id, _)| acked_by_source(&dir, id)).sum();
        assert_eq!(acked, n, "tweets acked over the four instances");
    });
    let d = read_report(&dir.join("d.json"));
    let took = d["spouts"]["__counts-repartition-reader"]["emitted"]
        .as_u64()
        .unwrap_or(0);
    assert!(took > 0, "the fourth instance counted nothing: {d}");
}

/// Micro-batch mode across instances is refused with the reason.
#[test]
fn microbatch_mode_across_instances_is_refused() {
    let _serial = one_at_a_time();
    let b = broker();
    let dir = TempDir::new("distributed-mb");
    let file = topology(&dir, "dist-mb", "latest");
    let mut i = Running::start(
        [
            "topology",
            "run",
            file.to_str().unwrap(),
            "--brokers",
            b.bootstrap_servers(),
            "--mode",
            "microbatch",
        ],
        Stdio::null(),
    );
    let status = i.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        i.stderr_text().contains("event mode only"),
        "{}",
        i.stderr_text()
    );
}

/// Without an end, instances run until stopped; Ctrl-C on one hands its partitions to the
/// others (it leaves the groups, its state written), and it exits 0 with its report.
#[test]
fn ctrl_c_on_one_instance_hands_its_partitions_to_the_others() {
    let _serial = one_at_a_time();
    let b = broker();
    let dir = TempDir::new("distributed-leave");
    let app = "dist-leave";
    produce(&b, 0, 5_000);
    let file = topology(&dir, app, "latest");
    let src = std::fs::read_to_string(&file).unwrap();
    let file = dir.write("unbounded.toml", &src.replace("end = \"latest\"\n", ""));
    let mut a = instance(&b, &dir, &file, "a");
    let mut bi = instance(&b, &dir, &file, "b");
    let topic = format!("{app}-counts-repartition");
    wait_view(&b, app, "two instances sharing the counts", |v| {
        holders(v, &topic).len() == 2
    });
    bi.signal("-INT");
    exit_ok(&mut bi, "b");
    assert!(dir.join("b.json").exists(), "b wrote no report");
    wait_view(&b, app, "a holding every counts partition", |v| {
        v.left.contains("b") && holders(v, &topic) == BTreeMap::from([("a".to_string(), 12)])
    });
    a.signal("-INT");
    exit_ok(&mut a, "a");
}
