//! `squall cluster status`: the instances of a distributed application, the partitions
//! each holds, and the lag per partition, as the instances publish them to the
//! application's status topic.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::distributed::status::{
    InstanceStatus, Role, StatusError, StatusView, is_stale, now_ms, read_view, status_topic,
};
use crate::kafka::client::{DEFAULT_BROKERS, KafkaClientError, client_config};

/// An instance whose last status is older than this is shown as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// The instances of an application, the partitions each holds (input, repartition,
    /// changelog) and the lag per partition, read from the status topic
    /// `<application>-status`.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long, default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// The application: the topology's `config.application_id` (default: its name).
    #[arg(long)]
    pub application: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// How long reaching the brokers and reading the status may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub fn main(cmd: ClusterCommand) -> ExitCode {
    match cmd {
        ClusterCommand::Status(a) => match status(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// What `cluster status` shows of one instance.
#[derive(Debug, Serialize, PartialEq)]
pub struct InstanceRow {
    pub instance_id: String,
    pub host: String,
    pub pid: u32,
    /// `running`, `finishing`, `stopped` as reported; `stale` if not updated for more
    /// than [`STALE_AFTER`]; `left` if it left.
    pub state: String,
    /// Milliseconds since its last update.
    pub age_ms: u64,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub http: Option<String>,
    /// Partitions held, per role.
    pub partitions: BTreeMap<&'static str, usize>,
}

/// What `cluster status` shows of one partition held by an instance.
#[derive(Debug, Serialize, PartialEq)]
pub struct PartitionRow {
    pub topic: String,
    pub partition: i32,
    pub role: Role,
    pub holder: String,
    /// The holder's state, as in its instance row.
    pub holder_state: String,
    /// The next offset the holder will process, as it last reported (`null`: unknown).
    pub position: Option<i64>,
    /// The partition's high watermark now (as reported by the holder if it could not
    /// be fetched).
    pub end: i64,
    /// `end - position` (`null` if the position is unknown).
    pub lag: Option<i64>,
}

/// The whole output of `cluster status`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterStatus {
    pub application: String,
    pub status_topic: String,
    pub instances: Vec<InstanceRow>,
    pub partitions: Vec<PartitionRow>,
    /// Partitions reported done (processed to their end in a bounded run).
    pub done: Vec<(String, i32)>,
    /// Records of the status topic that were not status records.
    pub bad_records: u64,
}

/// The state shown for `s`.
fn shown_state(view: &StatusView, s: &InstanceStatus, now_ms: u64) -> String {
    if view.left.contains(&s.instance_id) {
        "left".into()
    } else if is_stale(s, now_ms, STALE_AFTER) {
        "stale".into()
    } else {
        s.state.as_str().into()
    }
}

/// Builds the output from a view, at `now_ms`, with the high watermarks `ends` fetched
/// now (a partition missing there shows the end its holder reported). Partitions of
/// instances that left are not listed (they hold nothing).
pub fn cluster_status(
    application: &str,
    view: &StatusView,
    ends: &BTreeMap<(String, i32), i64>,
    now_ms: u64,
) -> ClusterStatus {
    let mut instances = Vec::new();
    let mut partitions = Vec::new();
    for s in view.instances.values() {
        let state = shown_state(view, s, now_ms);
        let mut held = BTreeMap::new();
        for r in Role::ALL {
            held.insert(r.as_str(), 0);
        }
        let left = view.left.contains(&s.instance_id);
        for p in &s.partitions {
            if left {
                continue;
            }
            *held.entry(p.role.as_str()).or_default() += 1;
            let end = ends
                .get(&(p.topic.clone(), p.partition))
                .copied()
                .unwrap_or(p.end);
            let position = (p.position >= 0).then_some(p.position);
            partitions.push(PartitionRow {
                topic: p.topic.clone(),
                partition: p.partition,
                role: p.role,
                holder: s.instance_id.clone(),
                holder_state: state.clone(),
                position,
                end,
                lag: position.map(|pos| (end - pos).max(0)),
            });
        }
        instances.push(InstanceRow {
            instance_id: s.instance_id.clone(),
            host: s.host.clone(),
            pid: s.pid,
            state,
            age_ms: now_ms.saturating_sub(s.updated_ms),
            started_ms: s.started_ms,
            updated_ms: s.updated_ms,
            http: s.http.clone(),
            partitions: held,
        });
    }
    partitions.sort_by(|a, b| {
        (&a.topic, a.partition, a.role, &a.holder).cmp(&(&b.topic, b.partition, b.role, &b.holder))
    });
    ClusterStatus {
        application: application.to_string(),
        status_topic: status_topic(application),
        instances,
        partitions,
        done: view.done.iter().cloned().collect(),
        bad_records: view.bad_records,
    }
}

/// Seconds with one decimal, e.g. `2.5s`.
fn age(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// The tables `cluster status` prints.
pub fn render(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "application `{}` (status topic `{}`): {} instances",
        s.application,
        s.status_topic,
        s.instances.len()
    );
    let id_w = s
        .instances
        .iter()
        .map(|i| i.instance_id.len())
        .chain([8])
        .max()
        .unwrap_or(8);
    let host_w = s
        .instances
        .iter()
        .map(|i| i.host.len() + 1 + i.pid.to_string().len())
        .chain([8])
        .max()
        .unwrap_or(8);
    let _ = writeln!(
        o,
        "{:<id_w$}  {:<host_w$}  {:<9}  {:>10}  {:>5}  {:>11}  {:>9}",
        "instance", "host:pid", "state", "updated", "input", "repartition", "changelog"
    );
    for i in &s.instances {
        let n = |r: Role| i.partitions.get(r.as_str()).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "{:<id_w$}  {:<host_w$}  {:<9}  {:>10}  {:>5}  {:>11}  {:>9}",
            i.instance_id,
            format!("{}:{}", i.host, i.pid),
            i.state,
            format!("{} ago", age(i.age_ms)),
            n(Role::Input),
            n(Role::Repartition),
            n(Role::Changelog)
        );
    }
    o.push('\n');
    if s.partitions.is_empty() {
        o.push_str("no partition is held\n");
    } else {
        let topic_w = s
            .partitions
            .iter()
            .map(|p| p.topic.len())
            .chain([5])
            .max()
            .unwrap_or(5);
        let holder_w = s
            .partitions
            .iter()
            .map(|p| p.holder.len() + if p.holder_state == "stale" { 8 } else { 0 })
            .chain([6])
            .max()
            .unwrap_or(6);
        let _ = writeln!(
            o,
            "{:<topic_w$}  {:>9}  {:<11}  {:<holder_w$}  {:>12}  {:>12}  {:>10}",
            "topic", "partition", "role", "holder", "position", "end", "lag"
        );
        let dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut total = 0;
        for p in &s.partitions {
            let holder = if p.holder_state == "stale" {
                format!("{} (stale)", p.holder)
            } else {
                p.holder.clone()
            };
            let _ = writeln!(
                o,
                "{:<topic_w$}  {:>9}  {:<11}  {:<holder_w$}  {:>12}  {:>12}  {:>10}",
                p.topic,
                p.partition,
                p.role.as_str(),
                holder,
                dash(p.position),
                p.end,
                dash(p.lag)
            );
            total += p.lag.unwrap_or(0);
        }
        let _ = writeln!(o, "total lag: {total}");
    }
    if !s.done.is_empty() {
        let _ = writeln!(o, "partitions done: {}", s.done.len());
    }
    if s.bad_records > 0 {
        let _ = writeln!(
            o,
            "{} records of the status topic were not status records (skipped)",
            s.bad_records
        );
    }
    o
}

/// The current high watermark of each partition, fetched within `timeout` overall;
/// partitions that could not be fetched in time are left out.
fn high_watermarks(
    brokers: &str,
    partitions: impl IntoIterator<Item = (String, i32)>,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let deadline = Instant::now() + timeout;
    let c: BaseConsumer = client_config(brokers, &BTreeMap::new())
        .set("allow.auto.create.topics", "false")
        .create()?;
    let mut ends = BTreeMap::new();
    for (topic, p) in partitions {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.fetch_watermarks(&topic, p, left) {
            Ok((_, high)) => {
                ends.insert((topic, p), high);
            }
            Err(e) => tracing::warn!("cannot fetch the end offset of {topic}/{p}: {e}"),
        }
    }
    Ok(ends)
}

fn status(a: &StatusArgs) -> anyhow::Result<()> {
    let topic = status_topic(&a.application);
    let no_records = || {
        anyhow::anyhow!(
            "no status records for application `{}` on {} (topic `{topic}`): no instance of \
             it has run against these brokers; the name is the topology's \
             `config.application_id`, by default the topology's name",
            a.application,
            a.brokers
        )
    };
    let view = match read_view(&a.brokers, &BTreeMap::new(), &a.application, a.timeout) {
        Ok(v) => v,
        Err(StatusError::Client(KafkaClientError::NoTopic { .. })) => return Err(no_records()),
        Err(e) => return Err(e.into()),
    };
    if view.instances.is_empty() {
        return Err(no_records());
    }
    let held: std::collections::BTreeSet<(String, i32)> = view
        .instances
        .iter()
        .filter(|(id, _)| !view.left.contains(*id))
        .flat_map(|(_, s)| s.partitions.iter().map(|p| (p.topic.clone(), p.partition)))
        .collect();
    let ends = high_watermarks(&a.brokers, held, a.timeout)?;
    let s = cluster_status(&a.application, &view, &ends, now_ms());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::status::{InstanceState, PartitionStatus, StatusRecord};

    fn part(topic: &str, partition: i32, role: Role, position: i64) -> PartitionStatus {
        PartitionStatus {
            topic: topic.into(),
            partition,
            role,
            position,
            end: 50,
        }
    }

    fn inst(id: &str, updated_ms: u64, partitions: Vec<PartitionStatus>) -> StatusRecord {
        StatusRecord::Instance(InstanceStatus {
            application: "app".into(),
            instance_id: id.into(),
            host: "box".into(),
            pid: 42,
            started_ms: 0,
            updated_ms,
            state: InstanceState::Running,
            http: None,
            partitions,
        })
    }

    #[test]
    fn rows_per_instance_and_partition_with_lag_stale_and_left() {
        let mut v = StatusView::default();
        v.apply(inst(
            "a",
            100_000,
            vec![
                part("tweets", 0, Role::Input, 10),
                part("app-counts-repartition", 1, Role::Repartition, 7),
                part("app-counts-changelog", 1, Role::Changelog, -1),
            ],
        ));
        v.apply(inst("b", 80_000, vec![part("tweets", 1, Role::Input, 3)]));
        v.apply(inst("c", 100_000, vec![part("tweets", 2, Role::Input, 3)]));
        v.apply(StatusRecord::Left {
            instance_id: "c".into(),
            at_ms: 100_000,
        });
        let ends = BTreeMap::from([(("tweets".to_string(), 0), 25)]);
        let s = cluster_status("app", &v, &ends, 101_000);
        let states: Vec<_> = s.instances.iter().map(|i| i.state.as_str()).collect();
        assert_eq!(states, ["running", "stale", "left"]);
        assert_eq!(s.instances[0].partitions["repartition"], 1);
        assert_eq!(s.instances[0].age_ms, 1_000);
        assert_eq!(s.instances[2].partitions["input"], 0, "left: holds nothing");
        let rows: Vec<_> = s
            .partitions
            .iter()
            .map(|p| {
                (
                    p.topic.as_str(),
                    p.partition,
                    p.holder.as_str(),
                    p.end,
                    p.lag,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("app-counts-changelog", 1, "a", 50, None),
                ("app-counts-repartition", 1, "a", 50, Some(43)),
                ("tweets", 0, "a", 25, Some(15)),
                ("tweets", 1, "b", 50, Some(47)),
            ]
        );
        let text = render(&s);
        assert!(text.contains("b (stale)"), "{text}");
        assert!(text.contains("box:42"), "{text}");
        assert!(text.contains("total lag: 105"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["partitions"][0]["lag"], serde_json::Value::Null);
        assert_eq!(json["partitions"][2]["role"], "input");
    }
}
