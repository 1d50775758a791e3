//! `squall cluster status`: the real binary against an in-process dev broker whose status
//! topic holds what instances published with `squall::distributed::status`.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use squall::distributed::status::{
    InstanceState, InstanceStatus, PartitionStatus, Role, StatusPublisher, status_topic,
};
use squall::kafka::client::client_config;
use squall::kafka::mock::DevBroker;

use crate::support::cli::squall;

const T: Duration = Duration::from_secs(30);

/// Produces `n` records to partition `p` of `topic`.
fn fill(brokers: &str, topic: &str, p: i32, n: usize) {
    let prod: BaseProducer = client_config(brokers, &BTreeMap::new()).create().unwrap();
    for i in 0..n {
        let v = format!("r{i}");
        prod.send(BaseRecord::<(), _>::to(topic).partition(p).payload(&v))
            .unwrap();
    }
    prod.flush(T).unwrap();
}

fn part(topic: &str, partition: i32, role: Role, position: i64) -> PartitionStatus {
    PartitionStatus {
        topic: topic.into(),
        partition,
        role,
        position,
        end: 0,
    }
}

#[test]
fn status_shows_instances_and_the_lag_of_each_partition() {
    let b = DevBroker::start(1).unwrap();
    let brokers = b.bootstrap_servers().to_string();
    b.create_topic(&status_topic("shop"), 1).unwrap();
    b.create_topic("orders", 2).unwrap();
    b.create_topic("shop-counts-repartition", 2).unwrap();
    fill(&brokers, "orders", 0, 30);
    fill(&brokers, "orders", 1, 20);
    fill(&brokers, "shop-counts-repartition", 1, 12);

    let a = StatusPublisher::new(&brokers, &BTreeMap::new(), "shop", "inst-a").unwrap();
    let mut sa = InstanceStatus::new("shop", "inst-a");
    sa.partitions = vec![
        part("orders", 0, Role::Input, 10),
        part("shop-counts-repartition", 1, Role::Repartition, 12),
    ];
    a.publish(&sa).unwrap();
    let bb = StatusPublisher::new(&brokers, &BTreeMap::new(), "shop", "inst-b").unwrap();
    let mut sb = InstanceStatus::new("shop", "inst-b");
    sb.state = InstanceState::Finishing;
    sb.partitions = vec![part("orders", 1, Role::Input, 5)];
    bb.publish(&sb).unwrap();
    // An instance that last spoke a minute ago, and one that left.
    let mut old = InstanceStatus::new("shop", "inst-old");
    old.updated_ms -= 60_000;
    old.partitions = vec![part("shop-counts-repartition", 0, Role::Repartition, 0)];
    a.publish(&old).unwrap();
    let gone = StatusPublisher::new(&brokers, &BTreeMap::new(), "shop", "inst-gone").unwrap();
    gone.publish(&InstanceStatus::new("shop", "inst-gone"))
        .unwrap();
    gone.leave(T).unwrap();
    a.flush(T).unwrap();
    bb.flush(T).unwrap();

    let out = squall(
        [
            "cluster",
            "status",
            "--brokers",
            &brokers,
            "--application",
            "shop",
        ],
        T,
    );
    out.assert_success();
    let text = &out.stdout;
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with {needle:?}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let host_pid = format!("{}:{}", sa.host, std::process::id());
    let ia = line("inst-a ");
    assert_eq!((ia[1], ia[2]), (host_pid.as_str(), "running"), "{text}");
    assert_eq!(&ia[ia.len() - 3..], ["1", "1", "0"], "{text}");
    assert_eq!(line("inst-b ")[2], "finishing", "{text}");
    assert_eq!(line("inst-old ")[2], "stale", "{text}");
    assert_eq!(line("inst-gone ")[2], "left", "{text}");
    // topic partition role holder position end lag
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("orders ") || l.starts_with("shop-counts-"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["orders", "0", "input", "inst-a", "10", "30", "20"],
            vec!["orders", "1", "input", "inst-b", "5", "20", "15"],
            vec![
                "shop-counts-repartition",
                "0",
                "repartition",
                "inst-old",
                "(stale)",
                "0",
                "0",
                "0"
            ],
            vec![
                "shop-counts-repartition",
                "1",
                "repartition",
                "inst-a",
                "12",
                "12",
                "0"
            ],
        ],
        "{text}"
    );
    assert!(text.contains("total lag: 35"), "{text}");

    let out = squall(
        [
            "cluster",
            "status",
            "--brokers",
            &brokers,
            "--application",
            "shop",
            "--json",
        ],
        T,
    );
    out.assert_success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.stdout));
    assert_eq!(v["application"], "shop");
    assert_eq!(v["status_topic"], "shop-status");
    let states: Vec<(&str, &str)> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instance_id"].as_str().unwrap(),
                i["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("inst-a", "running"),
            ("inst-b", "finishing"),
            ("inst-gone", "left"),
            ("inst-old", "stale")
        ]
    );
    let lags: Vec<(String, i64, i64)> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p["topic"].as_str().unwrap(), p["partition"]),
                p["end"].as_i64().unwrap(),
                p["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lags,
        [
            ("orders/0".to_string(), 30, 20),
            ("orders/1".to_string(), 20, 15),
            ("shop-counts-repartition/0".to_string(), 0, 0),
            ("shop-counts-repartition/1".to_string(), 12, 0),
        ]
    );
}

#[test]
fn an_application_without_status_records_exits_1() {
    let b = DevBroker::start(1).unwrap();
    let brokers = b.bootstrap_servers().to_string();
    // No status topic at all.
    let out = squall(
        [
            "cluster",
            "status",
            "--brokers",
            &brokers,
            "--application",
            "ghost",
        ],
        T,
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("no status records for application `ghost`"),
        "{}",
        out.stderr
    );
    // A status topic without records.
    b.create_topic(&status_topic("empty"), 1).unwrap();
    let out = squall(
        [
            "cluster",
            "status",
            "--brokers",
            &brokers,
            "--application",
            "empty",
            "--json",
        ],
        T,
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("no status records for application `empty`"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_brokers_are_a_clear_error_in_bounded_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let brokers = format!("127.0.0.1:{port}");
    let out = squall(
        [
            "cluster",
            "status",
            "--brokers",
            &brokers,
            "--application",
            "x",
            "--timeout",
            "1s",
        ],
        T,
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    assert!(
        out.stderr.contains(&brokers) && out.stderr.contains("no Kafka broker answered"),
        "{}",
        out.stderr
    );
}
