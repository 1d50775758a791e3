//! Where each assigned partition starts and ends, asked of the brokers when the
//! partition is assigned: the group's committed offset, the start position, the end
//! position, resolved to offsets (timestamps by ListOffsets where the broker answers it,
//! else by scanning from the earliest offset).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;

use crate::kafka::TopicPartition;
use crate::kafka::position::{
    EndPosition, StartPosition, TimestampResolution, TimestampScan, Watermarks, resolve_partition,
};
use crate::kafka::spout::state::{EndBound, Start};

/// How partitions start and end.
#[derive(Clone, Debug)]
pub struct Plan {
    pub start: StartPosition,
    /// Apply `start` even where the group has a committed offset.
    pub ignore_committed: bool,
    pub end: Option<EndPosition>,
    pub timeout: Duration,
}

fn concrete(o: Offset) -> Option<i64> {
    match o {
        Offset::Offset(n) if n >= 0 => Some(n),
        _ => None,
    }
}

/// The broker's offset for timestamp `ts` in each partition (`None`: no answer).
fn offsets_for_time<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    tps: &[TopicPartition],
    ts: i64,
    timeout: Duration,
) -> BTreeMap<TopicPartition, Option<i64>> {
    let mut q = TopicPartitionList::new();
    for tp in tps {
        let _ = q.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(ts));
    }
    let mut out = BTreeMap::new();
    match c.offsets_for_times(q, timeout) {
        Ok(answer) => {
            for e in answer.elements() {
                let tp = TopicPartition::new(e.topic(), e.partition());
                out.insert(tp, concrete(e.offset()));
            }
        }
        Err(e) => tracing::warn!("offsets for timestamp {ts}: no answer ({e}); scanning instead"),
    }
    out
}

/// Resolves start and end of every partition of `tps`.
pub fn resolve<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    tps: &[TopicPartition],
    plan: &Plan,
) -> KafkaResult<Vec<(TopicPartition, Start)>> {
    let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    if !plan.ignore_committed {
        let mut q = TopicPartitionList::new();
        for tp in tps {
            q.add_partition(&tp.topic, tp.partition);
        }
        for e in c.committed_offsets(q, plan.timeout)?.elements() {
            if let Some(o) = concrete(e.offset()) {
                committed.insert(TopicPartition::new(e.topic(), e.partition()), o);
            }
        }
    }
    let start_times = match plan.start {
        StartPosition::Timestamp(ts) => offsets_for_time(c, tps, ts, plan.timeout),
        _ => BTreeMap::new(),
    };
    let end_times = match plan.end {
        Some(EndPosition::Timestamp(ts)) => offsets_for_time(c, tps, ts, plan.timeout),
        _ => BTreeMap::new(),
    };
    let mut out = Vec::with_capacity(tps.len());
    for tp in tps {
        let (low, high) = c.fetch_watermarks(&tp.topic, tp.partition, plan.timeout)?;
        let w = Watermarks { low, high };
        let (offset, scan) = match (committed.get(tp), &plan.start) {
            (Some(&o), _) => (o.max(low), None),
            (None, StartPosition::Earliest) => (low, None),
            (None, StartPosition::Latest | StartPosition::Committed) => (high, None),
            (None, StartPosition::Offsets(list)) => {
                let o = list
                    .iter()
                    .find(|(p, _)| *p == tp.partition)
                    .map(|(_, o)| *o);
                (o.unwrap_or(low).clamp(low, high), None)
            }
            (None, StartPosition::Timestamp(ts)) => {
                let answer = start_times.get(tp).copied().flatten();
                let r = resolve_partition(*ts, answer, w);
                let scan = TimestampScan::for_resolution(&r);
                match r {
                    TimestampResolution::Resolved(o) => {
                        tracing::info!(partition = %tp, "start timestamp {ts} resolved by the broker to offset {o}");
                        (o, None)
                    }
                    TimestampResolution::ScanFrom { from, .. } => {
                        tracing::info!(partition = %tp, "the broker does not resolve timestamps: scanning from offset {from}");
                        (from, scan)
                    }
                }
            }
        };
        let end = match &plan.end {
            None => None,
            Some(EndPosition::Latest) => Some(EndBound::Offset(high)),
            Some(EndPosition::Offsets(list)) => Some(EndBound::Offset(
                list.iter()
                    .find(|(p, _)| *p == tp.partition)
                    .map_or(high, |(_, o)| *o),
            )),
            Some(EndPosition::Timestamp(ts)) => match end_times.get(tp).copied().flatten() {
                Some(o) => Some(EndBound::Offset(o)),
                None => Some(EndBound::Timestamp {
                    ts: *ts,
                    until: high,
                }),
            },
        };
        out.push((
            tp.clone(),
            Start {
                offset: Some(offset),
                scan,
                end,
            },
        ));
    }
    Ok(out)
}
