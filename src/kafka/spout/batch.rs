//! The Kafka spout in micro-batch mode (a transactional spout): each batch is an offset
//! range per partition, `[from, to)`, recorded before the batch is processed, so a replay
//! (after a failure or a restart) reads exactly the same records. Partitions are assigned
//! statically — partition `k` of the sorted list goes to task `k % parallelism` — so no
//! group rebalance can move a range between tasks; committed ranges are also committed to
//! the consumer group, for `squall kafka offsets` and lag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::component::collector::SpoutCollector;
use crate::component::transactional::BatchCut;
use crate::component::{ComponentError, ComponentResult, TaskContext};
use crate::kafka::TopicPartition;
use crate::kafka::client::{check_reachable, client_config};
use crate::kafka::spout::assign::{Plan, resolve};
use crate::kafka::spout::config::KafkaSpoutConfig;
use crate::kafka::spout::record::{Record, Unusable, source_key, to_values};
use crate::kafka::spout::state::EndBound;
use crate::log_throttle::LogThrottle;

/// One partition's share of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    /// Exclusive.
    pub to: i64,
}

/// A batch's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    pub ranges: Vec<Range>,
}

fn err(msg: impl std::fmt::Display) -> ComponentError {
    ComponentError::new(format!("kafka spout (micro-batch): {msg}"))
}

/// Where the batch after `prev` starts in partition `tp` (`start` for its first batch).
fn prev_to(prev: &Ranges, tp: &TopicPartition, start: i64) -> i64 {
    prev.ranges
        .iter()
        .find(|r| r.topic == *tp.topic && r.partition == tp.partition)
        .map_or(start, |r| r.to)
}

/// How long a replay waits for the records of its ranges before the batch fails.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct BatchReader {
    cfg: KafkaSpoutConfig,
    consumer: BaseConsumer,
    /// This task's partitions, with where each starts (first batch) and ends (bounded).
    parts: Vec<(TopicPartition, i64, Option<i64>)>,
    /// Where the consumer's next record of each partition is, as assigned or consumed.
    position: BTreeMap<TopicPartition, i64>,
    topics: BTreeMap<String, Arc<str>>,
    bad_records: Arc<AtomicU64>,
    oversized_records: Arc<AtomicU64>,
    bad_record_log: LogThrottle,
    invalid_utf8: Arc<AtomicU64>,
    commit_errors: Arc<AtomicU64>,
}

impl BatchReader {
    pub fn open(cfg: &KafkaSpoutConfig, ctx: &TaskContext) -> Result<BatchReader, ComponentError> {
        if cfg.pattern.is_some() {
            return Err(err(
                "a topic `pattern` cannot be read in micro-batch mode (the partitions of a batch must be fixed): list the `topics`",
            ));
        }
        let mut cc = client_config(&cfg.brokers, &cfg.properties);
        cc.set("group.id", &cfg.group)
            .set("enable.partition.eof", "false")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", cfg.auto_offset_reset());
        let consumer: BaseConsumer = cc
            .create()
            .map_err(|e| err(format!("cannot create a consumer for {}: {e}", cfg.brokers)))?;
        let probe = cfg.topics.first().map(String::as_str);
        check_reachable(consumer.client(), &cfg.brokers, probe, cfg.connect_timeout)
            .map_err(err)?;
        let mut all = Vec::new();
        for t in &cfg.topics {
            if cfg.partitions.is_empty() {
                let md = consumer
                    .fetch_metadata(Some(t), cfg.connect_timeout)
                    .map_err(|e| err(format!("metadata of topic `{t}`: {e}")))?;
                let Some(topic) = md.topics().iter().find(|x| x.name() == t) else {
                    return Err(err(format!("topic `{t}` does not exist")));
                };
                if topic.partitions().is_empty() {
                    return Err(err(format!("topic `{t}` does not exist (no partitions)")));
                }
                for p in topic.partitions() {
                    all.push(TopicPartition::new(t.as_str(), p.id()));
                }
            } else {
                for p in &cfg.partitions {
                    all.push(TopicPartition::new(t.as_str(), *p));
                }
            }
        }
        all.sort();
        let mine: Vec<TopicPartition> = all
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % ctx.parallelism() == ctx.task_index())
            .map(|(_, tp)| tp)
            .collect();
        let plan = Plan {
            start: cfg.start.clone(),
            ignore_committed: cfg.ignore_committed,
            end: cfg.end.clone(),
            timeout: cfg.connect_timeout,
        };
        let resolved = resolve(&consumer, &mine, &plan)
            .map_err(|e| err(format!("cannot resolve start offsets: {e}")))?;
        let mut parts = Vec::new();
        for (tp, start) in resolved {
            if start.scan.is_some() {
                return Err(err(format!(
                    "the broker cannot look up offsets by time for {tp}: in micro-batch mode, start at offsets instead"
                )));
            }
            let end = match start.end {
                None => None,
                Some(EndBound::Offset(o)) => Some(o),
                Some(EndBound::Timestamp { until, .. }) => Some(until),
            };
            parts.push((tp, start.offset.unwrap_or(0), end));
        }
        let topics = cfg
            .topics
            .iter()
            .map(|t| (t.clone(), Arc::<str>::from(t.as_str())))
            .collect();
        tracing::info!(
            task = ctx.task_index(),
            partitions = ?parts.iter().map(|(tp, s, e)| format!("{tp}@{s}..{}", e.map_or("".into(), |e| e.to_string()))).collect::<Vec<_>>(),
            "kafka (micro-batch): partitions of this task"
        );
        Ok(BatchReader {
            cfg: cfg.clone(),
            consumer,
            parts,
            position: BTreeMap::new(),
            topics,
            bad_records: ctx.counter("bad_records"),
            oversized_records: ctx.counter("oversized_records"),
            bad_record_log: LogThrottle::default(),
            invalid_utf8: ctx.counter("invalid_utf8"),
            commit_errors: ctx.counter("commit_errors"),
        })
    }

    /// Makes the consumer read each partition from `from` (re-assigns only when needed).
    fn seek(&mut self, from: &BTreeMap<TopicPartition, i64>) -> ComponentResult {
        if from.iter().all(|(tp, o)| self.position.get(tp) == Some(o))
            && self.position.len() == from.len()
        {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, o) in from {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o))
                .map_err(|e| err(format!("{tp}@{o}: {e}")))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| err(format!("cannot assign partitions: {e}")))?;
        self.position = from.clone();
        Ok(())
    }

    /// Polls one record (waiting at most `wait`); records its position.
    fn poll(&mut self, wait: Duration) -> Option<Record> {
        let m = match self.consumer.poll(wait)? {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("kafka (micro-batch): consumer error: {e}");
                return None;
            }
        };
        use rdkafka::Message;
        let topic = self
            .topics
            .get(m.topic())
            .cloned()
            .unwrap_or_else(|| Arc::from(m.topic()));
        let r = Record::from_message(&m, topic, self.cfg.max_record_bytes);
        drop(m);
        self.position.insert(r.tp.clone(), r.offset + 1);
        Some(r)
    }

    fn emit(&self, r: &Record, out: &mut SpoutCollector<'_>) -> ComponentResult {
        // Event time: each partition is a source of its own.
        out.set_source(source_key(&r.tp));
        out.set_record_time(r.timestamp);
        match to_values(r, self.cfg.format, self.cfg.value) {
            Ok((values, lossy)) => {
                if lossy {
                    self.invalid_utf8.fetch_add(1, Ordering::Relaxed);
                }
                out.emit(values, None)
            }
            Err(Unusable::Notice) => Ok(()),
            Err(Unusable::Oversized(len)) => {
                self.oversized_records.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.bad_record_log.hit() {
                    tracing::warn!(partition = %r.tp, offset = r.offset, bytes = len, max = self.cfg.max_record_bytes, "kafka: skipping a record longer than max_record_bytes{n}");
                }
                Ok(())
            }
            Err(Unusable::BadTweet(e)) => {
                self.bad_records.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.bad_record_log.hit() {
                    tracing::warn!(partition = %r.tp, offset = r.offset, "kafka: skipping a record that is not a tweet: {e}{n}");
                }
                Ok(())
            }
        }
    }

    /// A new batch after `prev`: what the consumer has now, at most `max` records.
    pub fn emit_batch(
        &mut self,
        prev: Option<&serde_json::Value>,
        max: usize,
        out: &mut SpoutCollector<'_>,
    ) -> Result<BatchCut, ComponentError> {
        let prev: Ranges = match prev {
            Some(p) => serde_json::from_value(p.clone())
                .map_err(|e| err(format!("batch metadata {p}: {e}")))?,
            None => Ranges::default(),
        };
        let mut from = BTreeMap::new();
        let mut ends = BTreeMap::new();
        for (tp, start, end) in &self.parts {
            // Event time: every partition of the task holds its watermark back until it
            // shows a record, goes idle or ends (opening one already open does nothing).
            if end.is_none_or(|e| prev_to(&prev, tp, *start) < e) {
                out.open_source(source_key(tp));
            } else {
                out.close_source(source_key(tp));
            }
            from.insert(tp.clone(), prev_to(&prev, tp, *start));
            ends.insert(tp.clone(), *end);
        }
        let open: Vec<&TopicPartition> = from
            .iter()
            .filter(|(tp, o)| ends.get(*tp).copied().flatten().is_none_or(|e| **o < e))
            .map(|(tp, _)| tp)
            .collect();
        let mut to = from.clone();
        let open_now: Vec<TopicPartition> = open.iter().map(|tp| (*tp).clone()).collect();
        let mut full = false;
        if !open.is_empty() {
            let wanted: BTreeMap<TopicPartition, i64> =
                open.iter().map(|tp| ((*tp).clone(), from[*tp])).collect();
            self.seek(&wanted)?;
            let mut n = 0usize;
            let mut wait = Duration::from_millis(5);
            while n < max {
                let Some(r) = self.poll(wait) else {
                    break;
                };
                wait = Duration::ZERO;
                let Some(&next) = to.get(&r.tp) else {
                    continue;
                };
                let end = ends.get(&r.tp).copied().flatten();
                if r.offset < next || end.is_some_and(|e| r.offset >= e) {
                    continue; // before the range (a stale fetch) or past the end
                }
                self.emit(&r, out)?;
                to.insert(r.tp.clone(), r.offset + 1);
                n += 1;
            }
            full = n >= max;
        }
        // Event time: a batch cut short by `max` may have left records of any partition
        // unread: those partitions are behind, not idle (one the reader did not get to
        // must keep holding the watermark back).
        if full {
            for tp in &open_now {
                out.source_busy(source_key(tp));
            }
        }
        let exhausted = !ends.is_empty()
            && to
                .iter()
                .all(|(tp, o)| ends.get(tp).copied().flatten().is_some_and(|e| *o >= e));
        let ranges = Ranges {
            ranges: from
                .iter()
                .map(|(tp, f)| Range {
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                    from: *f,
                    to: to[tp],
                })
                .collect(),
        };
        let meta = serde_json::to_value(&ranges).map_err(|e| err(format!("metadata: {e}")))?;
        Ok(BatchCut { meta, exhausted })
    }

    /// Re-reads exactly the records of `meta`'s ranges.
    pub fn replay_batch(
        &mut self,
        meta: &serde_json::Value,
        out: &mut SpoutCollector<'_>,
    ) -> ComponentResult {
        let ranges: Ranges = serde_json::from_value(meta.clone())
            .map_err(|e| err(format!("batch metadata {meta}: {e}")))?;
        let mut want: BTreeMap<TopicPartition, (i64, i64)> = BTreeMap::new();
        for r in ranges.ranges.iter().filter(|r| r.from < r.to) {
            want.insert(
                TopicPartition::new(r.topic.as_str(), r.partition),
                (r.from, r.to),
            );
        }
        if want.is_empty() {
            return Ok(());
        }
        let starts = want.iter().map(|(tp, (f, _))| (tp.clone(), *f)).collect();
        self.seek(&starts)?;
        let mut next: BTreeMap<TopicPartition, i64> =
            want.iter().map(|(tp, (f, _))| (tp.clone(), *f)).collect();
        let deadline = Instant::now() + REPLAY_TIMEOUT;
        while next.iter().any(|(tp, o)| *o < want[tp].1) {
            if Instant::now() >= deadline {
                let missing: Vec<String> = next
                    .iter()
                    .filter(|(tp, o)| **o < want[*tp].1)
                    .map(|(tp, o)| format!("{tp} [{o}, {})", want[tp].1))
                    .collect();
                return Err(err(format!(
                    "replay: records {} did not arrive within {REPLAY_TIMEOUT:?} (broker down, or deleted by retention)",
                    missing.join(", ")
                )));
            }
            let Some(r) = self.poll(Duration::from_millis(100)) else {
                continue;
            };
            let Some((_, to)) = want.get(&r.tp).copied() else {
                continue;
            };
            let Some(n) = next.get_mut(&r.tp) else {
                continue;
            };
            if r.offset < *n || r.offset >= to {
                continue;
            }
            self.emit(&r, out)?;
            *n = r.offset + 1;
        }
        Ok(())
    }

    /// Commits the ends of a committed batch's ranges to the consumer group.
    pub fn commit(&self, meta: &serde_json::Value) {
        let Ok(ranges) = serde_json::from_value::<Ranges>(meta.clone()) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for r in &ranges.ranges {
            let _ = tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.to));
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            let n = self.commit_errors.fetch_add(1, Ordering::Relaxed);
            if n < 10 || n.is_power_of_two() {
                tracing::warn!(
                    "kafka (micro-batch): group commit failed (the state store is the truth; {} failures): {e}",
                    n + 1
                );
            }
        }
    }
}
