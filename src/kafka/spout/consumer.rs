//! The Kafka spout: a consumer polled from the spout's own thread, its rebalances handled
//! in the consumer context (commit what is acked, forget what is revoked, resolve where
//! new partitions start), and commits driven by acks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::component::collector::SpoutCollector;
use crate::component::registry::{BuildError, ComponentConfig, SpoutConfig};
use crate::component::transactional::{BatchCut, BatchInfo, TransactionalSpout};
use crate::component::{
    ComponentError, ComponentResult, OutputDeclarer, Spout, SpoutFactory, SpoutStatus, TaskContext,
};
use crate::kafka::TopicPartition;
use crate::kafka::client::{check_reachable, client_config};
use crate::kafka::spout::assign::{Plan, resolve};
use crate::kafka::spout::batch::BatchReader;
use crate::kafka::spout::config::{Guarantee, KafkaSpoutConfig};
use crate::kafka::spout::hooks::{Decoded, SpoutHooks};
use crate::kafka::spout::record::{Record, Unusable, fields_of, source_key, to_values};
use crate::kafka::spout::retry::RetrySchedule;
use crate::kafka::spout::state::{Fetched, Revoking, SpoutState};
use crate::log_throttle::LogThrottle;
use crate::sync::lock;

/// Records taken from the consumer per `next_tuple` call, at most.
const POLL_BATCH: usize = 256;

/// The spout's counters (component metrics).
#[derive(Clone)]
struct Counters {
    bad_records: Arc<AtomicU64>,
    oversized_records: Arc<AtomicU64>,
    notices: Arc<AtomicU64>,
    invalid_utf8: Arc<AtomicU64>,
    given_up: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
    commit_errors: Arc<AtomicU64>,
    rebalances: Arc<AtomicU64>,
    consumer_errors: Arc<AtomicU64>,
    /// A commit was refused because the group is rebalancing (cleared by the rebalance).
    rebalancing: Arc<AtomicBool>,
    /// Second of the last commit-failure warning.
    last_commit_warning: Arc<AtomicU64>,
    /// Per-record warnings, rate-limited.
    bad_record_log: Arc<LogThrottle>,
    emit_error_log: Arc<LogThrottle>,
    given_up_log: Arc<LogThrottle>,
}

impl Counters {
    fn new(ctx: &TaskContext) -> Self {
        Counters {
            bad_records: ctx.counter("bad_records"),
            oversized_records: ctx.counter("oversized_records"),
            notices: ctx.counter("notices"),
            invalid_utf8: ctx.counter("invalid_utf8"),
            given_up: ctx.counter("given_up"),
            retries: ctx.counter("retries"),
            commits: ctx.counter("commits"),
            commit_errors: ctx.counter("commit_errors"),
            rebalances: ctx.counter("rebalances"),
            consumer_errors: ctx.counter("consumer_errors"),
            rebalancing: Arc::default(),
            last_commit_warning: Arc::default(),
            bad_record_log: Arc::default(),
            emit_error_log: Arc::default(),
            given_up_log: Arc::default(),
        }
    }
}

fn incr(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Consumer context: rebalances update the shared state.
pub struct Context {
    state: Arc<Mutex<SpoutState>>,
    plan: Plan,
    guarantee: Guarantee,
    counters: Counters,
    hooks: Option<Arc<dyn SpoutHooks>>,
    /// How long revoked partitions may drain before they are handed off.
    drain_timeout: Duration,
    /// The spout is closing: partitions revoked now (by the unsubscribe) are given up
    /// at once, as nothing drains any more.
    closing: Arc<AtomicBool>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        c: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr as E;
        incr(&self.counters.rebalances);
        self.counters.rebalancing.store(false, Ordering::SeqCst);
        let tps: Vec<TopicPartition> = tpl
            .elements()
            .iter()
            .map(|e| TopicPartition::new(e.topic(), e.partition()))
            .collect();
        match err {
            E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(partitions = ?tps.iter().map(ToString::to_string).collect::<Vec<_>>(), "kafka: partitions assigned");
                assign_partitions(c, &tps, &self.plan, &self.state, self.hooks.as_deref());
            }
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if self.guarantee == Guarantee::AtLeastOnce
                    && !self.closing.load(Ordering::SeqCst)
                    && self.hooks.as_ref().is_some_and(|h| h.hands_off()) =>
            {
                // Handed off once drained (`KafkaSpout::continue_revoke`): paused now,
                // unassigned then; the group waits for that before it reassigns them.
                tracing::info!(partitions = ?tps.iter().map(ToString::to_string).collect::<Vec<_>>(), "kafka: partitions revoked; draining them before the handoff");
                if let Err(e) = c.pause(tpl) {
                    tracing::warn!("kafka: pause of revoked partitions failed: {e}");
                }
                lock(&self.state).revoking = Some(Revoking {
                    tps,
                    deadline: Instant::now() + self.drain_timeout,
                });
            }
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = ?tps.iter().map(ToString::to_string).collect::<Vec<_>>(), "kafka: partitions revoked");
                // Closing after a handoff that already unassigned these: nothing is
                // assigned any more (and the group may be gone).
                let handed_off = self.closing.load(Ordering::SeqCst) && !tps.is_empty() && {
                    let s = lock(&self.state);
                    tps.iter().all(|tp| !s.parts.contains_key(tp))
                };
                if handed_off {
                    return;
                }
                let commits: Vec<(TopicPartition, i64)> = {
                    let mut s = lock(&self.state);
                    tps.iter()
                        .filter_map(|tp| Some((tp.clone(), s.revoke(tp)?)))
                        .collect()
                };
                if self.guarantee == Guarantee::AtLeastOnce && !commits.is_empty() {
                    commit_offsets(c, &commits, &self.counters);
                }
                if let Some(h) = &self.hooks {
                    for tp in &tps {
                        h.revoked(tp);
                    }
                }
                // librdkafka keeps a partition's pause across unassign/assign; the state
                // forgets it, so resume now or a partition given back stays paused.
                if let Err(e) = c.resume(tpl) {
                    tracing::warn!("kafka: resume of revoked partitions failed: {e}");
                }
                if let Err(e) = c.unassign() {
                    tracing::warn!("kafka: unassign failed: {e}");
                }
            }
            other => {
                tracing::error!("kafka: rebalance error {other:?}");
                let _ = c.resume(tpl);
                let _ = c.unassign();
            }
        }
    }
}

/// Resolves where `tps` start and end, assigns them, and tracks them.
fn assign_partitions<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    tps: &[TopicPartition],
    plan: &Plan,
    state: &Mutex<SpoutState>,
    hooks: Option<&dyn SpoutHooks>,
) {
    let mut tpl = TopicPartitionList::new();
    match resolve(c, tps, plan) {
        Ok(starts) => {
            // The hooks may do I/O (a changelog read): not under the state's lock.
            let handoffs = match hooks {
                Some(h) if !plan.ignore_committed => h.handoffs(),
                _ => Default::default(),
            };
            let starts: Vec<_> = starts
                .into_iter()
                .map(|(tp, mut start)| {
                    if let Some(o) = hooks.and_then(|h| h.assigned(&tp)) {
                        start.offset = Some(o);
                        start.scan = None;
                    } else if let Some(&o) = handoffs.get(&(tp.topic.to_string(), tp.partition))
                        && start.offset.is_none_or(|s| s < o)
                    {
                        tracing::info!(partition = %tp, offset = o, "kafka: starting where the previous holder handed the partition off");
                        start.offset = Some(o);
                        start.scan = None;
                    }
                    (tp, start)
                })
                .collect();
            let mut s = lock(state);
            s.assigned_once = true;
            for (tp, start) in starts {
                let offset = start.offset.map_or(Offset::Stored, Offset::Offset);
                let _ = tpl.add_partition_offset(&tp.topic, tp.partition, offset);
                s.assign(tp, start);
            }
        }
        Err(e) => {
            // The brokers did not answer: start from the committed offsets (or
            // `auto.offset.reset`), learning each start from the first record.
            tracing::warn!(
                "kafka: cannot resolve start offsets ({e}); using the group's committed offsets"
            );
            let handoffs = match hooks {
                Some(h) if !plan.ignore_committed => h.handoffs(),
                _ => Default::default(),
            };
            let starts: Vec<Option<i64>> = tps
                .iter()
                .map(|tp| {
                    hooks
                        .and_then(|h| h.assigned(tp))
                        .or_else(|| handoffs.get(&(tp.topic.to_string(), tp.partition)).copied())
                })
                .collect();
            let mut s = lock(state);
            s.assigned_once = true;
            for (tp, from) in tps.iter().zip(starts) {
                let offset = from.map_or(Offset::Stored, Offset::Offset);
                let _ = tpl.add_partition_offset(&tp.topic, tp.partition, offset);
                s.assign(
                    tp.clone(),
                    crate::kafka::spout::state::Start {
                        offset: from,
                        scan: None,
                        end: None,
                    },
                );
            }
        }
    }
    if let Err(e) = c.assign(&tpl) {
        tracing::error!("kafka: assign failed: {e}");
    }
}

/// How long revoked partitions may drain before their handoff: half the session timeout
/// (the group waits about that long for its members to rejoin), within 100 ms..5 s.
fn drain_timeout(cc: &rdkafka::ClientConfig) -> Duration {
    let session = cc
        .get("session.timeout.ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10_000);
    Duration::from_millis((session / 2).clamp(100, 5_000))
}

/// Commits `offsets` synchronously; returns whether it worked.
fn commit_offsets<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    offsets: &[(TopicPartition, i64)],
    counters: &Counters,
) -> bool {
    let mut tpl = TopicPartitionList::new();
    for (tp, o) in offsets {
        let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o));
    }
    match c.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            counters.rebalancing.store(false, Ordering::SeqCst);
            incr(&counters.commits);
            true
        }
        Err(e) => {
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::RebalanceInProgress) {
                counters.rebalancing.store(true, Ordering::SeqCst);
            }
            // Logged at most once a second (a rebalance can refuse commits for a while).
            let n = counters.commit_errors.fetch_add(1, Ordering::Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if counters.last_commit_warning.swap(now, Ordering::Relaxed) != now {
                tracing::warn!(
                    "kafka: commit failed (will retry; {} failures so far): {e}",
                    n + 1
                );
            }
            false
        }
    }
}

/// The tasks of one kafka spout in this process. In a bounded run a task that is done
/// keeps its consumer (and its place in the group) until every sibling is done too:
/// leaving earlier would start a rebalance that revokes the partitions of siblings still
/// at work, and a commit during a rebalance can be refused.
#[derive(Default)]
pub struct Siblings {
    done: Mutex<std::collections::BTreeSet<usize>>,
}

impl Siblings {
    fn mark_done(&self, task_index: usize) {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task_index);
    }

    fn all_done(&self, parallelism: usize) -> bool {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).len() >= parallelism
    }
}

pub struct KafkaSpout {
    cfg: KafkaSpoutConfig,
    siblings: Arc<Siblings>,
    /// (task index, parallelism) of this task.
    task: (usize, usize),
    consumer: Option<BaseConsumer<Context>>,
    state: Arc<Mutex<SpoutState>>,
    counters: Option<Counters>,
    /// Records fetched, to be emitted untracked once `fetched` is committed
    /// (at-most-once) or at once (no guarantee).
    fetched: Vec<Record>,
    /// Records ready to be emitted untracked.
    untracked: std::collections::VecDeque<Record>,
    last_commit: Instant,
    started: Instant,
    /// The topic name of the last record, shared by the records that follow.
    last_topic: Option<Arc<str>>,
    /// Micro-batch mode: offset-range batches instead of the group consumer.
    batch: Option<BatchReader>,
    /// Distributed mode: the layer above's part in the spout's life.
    hooks: Option<Arc<dyn SpoutHooks>>,
    /// Partitions whose end was reported to the hooks.
    ended: std::collections::BTreeSet<TopicPartition>,
    fatal: Option<crate::component::FatalHandle>,
    /// Distributed mode: records fetched while the group rebalances, emitted once it
    /// has (a partition that moves meanwhile is read again by its next holder from its
    /// last commit: what is not emitted here is not counted twice).
    deferred: Vec<u64>,
    /// Shared with the consumer context: set when the spout closes.
    closing: Arc<AtomicBool>,
}

/// What distributed mode hands a Kafka spout's tasks (as their
/// [`extension`](crate::component::TaskContext::extension)).
#[derive(Clone)]
pub struct HooksExtension(pub Arc<dyn SpoutHooks>);

impl TransactionalSpout for KafkaSpout {
    fn emit_batch(
        &mut self,
        _batch: &BatchInfo,
        prev: Option<&serde_json::Value>,
        max: usize,
        out: &mut SpoutCollector<'_>,
    ) -> Result<BatchCut, ComponentError> {
        match &mut self.batch {
            Some(b) => b.emit_batch(prev, max, out),
            None => Err("kafka spout: not opened in micro-batch mode".into()),
        }
    }

    fn replay_batch(
        &mut self,
        _batch: &BatchInfo,
        meta: &serde_json::Value,
        out: &mut SpoutCollector<'_>,
    ) -> ComponentResult {
        match &mut self.batch {
            Some(b) => b.replay_batch(meta, out),
            None => Err("kafka spout: not opened in micro-batch mode".into()),
        }
    }

    fn commit_batch(&mut self, _txid: u64, meta: &serde_json::Value) {
        if let Some(b) = &self.batch {
            b.commit(meta);
        }
    }
}

impl KafkaSpout {
    pub fn new(cfg: KafkaSpoutConfig, retries: RetrySchedule, siblings: Arc<Siblings>) -> Self {
        let tracked = cfg.guarantee == Guarantee::AtLeastOnce;
        let state = SpoutState::new(retries, cfg.max_uncommitted, tracked);
        KafkaSpout {
            cfg,
            siblings,
            task: (0, 1),
            consumer: None,
            state: Arc::new(Mutex::new(state)),
            counters: None,
            fetched: Vec::new(),
            untracked: Default::default(),
            last_commit: Instant::now(),
            started: Instant::now(),
            last_topic: None,
            batch: None,
            hooks: None,
            ended: Default::default(),
            fatal: None,
            deferred: Vec::new(),
            closing: Arc::default(),
        }
    }

    /// A spout whose life the hooks take part in (see [`SpoutHooks`]).
    pub fn with_hooks(mut self, hooks: Arc<dyn SpoutHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The consumer, subscribed or assigned.
    fn connect(&self, counters: Counters) -> Result<BaseConsumer<Context>, ComponentError> {
        let cfg = &self.cfg;
        let mut cc = client_config(&cfg.brokers, &cfg.properties);
        // Kafka's pre-3.0 session timeout: a vanished member is noticed in 10 s, not 45.
        cc.set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        for (k, v) in &cfg.properties {
            cc.set(k, v);
        }
        cc.set("group.id", &cfg.group)
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", cfg.auto_offset_reset());
        match cfg.guarantee {
            Guarantee::None => {
                cc.set("enable.auto.commit", "true").set(
                    "auto.commit.interval.ms",
                    cfg.commit_interval.as_millis().max(1).to_string(),
                );
            }
            _ => {
                cc.set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false");
            }
        }
        let context = Context {
            state: self.state.clone(),
            plan: Plan {
                start: cfg.start.clone(),
                ignore_committed: cfg.ignore_committed,
                end: cfg.end.clone(),
                timeout: cfg.connect_timeout,
            },
            guarantee: cfg.guarantee,
            counters,
            hooks: self.hooks.clone(),
            drain_timeout: drain_timeout(&cc),
            closing: self.closing.clone(),
        };
        let consumer: BaseConsumer<Context> = cc.create_with_context(context).map_err(|e| {
            ComponentError::new(format!(
                "kafka spout: cannot create a consumer for {}: {e}",
                cfg.brokers
            ))
        })?;
        let probe = cfg.topics.first().map(String::as_str);
        check_reachable(consumer.client(), &cfg.brokers, probe, cfg.connect_timeout)
            .map_err(|e| ComponentError::new(format!("kafka spout: {e}")))?;
        if cfg.partitions.is_empty() {
            let mut subs: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
            if let Some(p) = &cfg.pattern {
                subs.push(p);
            }
            consumer.subscribe(&subs).map_err(|e| {
                ComponentError::new(format!("kafka spout: cannot subscribe to {subs:?}: {e}"))
            })?;
        } else {
            let tps: Vec<TopicPartition> = cfg
                .topics
                .iter()
                .flat_map(|t| {
                    cfg.partitions
                        .iter()
                        .map(move |p| TopicPartition::new(t.as_str(), *p))
                })
                .collect();
            let plan = &consumer.context().plan;
            assign_partitions(&consumer, &tps, plan, &self.state, self.hooks.as_deref());
        }
        Ok(consumer)
    }

    /// Commits what may be committed (at-least-once), now or when due.
    fn maybe_commit(&mut self, force: bool) {
        if self.cfg.guarantee != Guarantee::AtLeastOnce {
            return;
        }
        // Distributed mode: a partition that moves is read again from its last commit, so
        // commits come often.
        let interval = match &self.hooks {
            Some(_) => self.cfg.commit_interval.min(Duration::from_millis(200)),
            None => self.cfg.commit_interval,
        };
        let due = self.last_commit.elapsed() >= interval;
        let capped = lock(&self.state).any_capped()
            && self.last_commit.elapsed() >= Duration::from_millis(10);
        if !(force || due || capped) {
            return;
        }
        self.last_commit = Instant::now();
        let (Some(c), Some(counters)) = (&self.consumer, &self.counters) else {
            return;
        };
        let points = lock(&self.state).commit_points();
        if points.is_empty() {
            return;
        }
        if commit_offsets(c, &points, counters) {
            let mut s = lock(&self.state);
            for (tp, n) in &points {
                s.committed(tp, *n);
            }
        }
    }

    /// Revoked partitions being handed off: once their records in flight are done (or
    /// the drain timed out), commits them (a group that rebalances may refuse), hands
    /// them off at their commit points, and unassigns them.
    fn continue_revoke(&mut self) {
        // Records held back during the rebalance were never emitted: not in flight.
        let deferred = std::mem::take(&mut self.deferred);
        let revoking = {
            let mut s = lock(&self.state);
            for id in deferred {
                s.unemit(id);
            }
            let Some(r) = s.revoking.clone() else { return };
            let busy: usize = r.tps.iter().map(|tp| s.in_flight(tp)).sum();
            if busy > 0 && Instant::now() < r.deadline {
                return;
            }
            if busy > 0 {
                tracing::warn!(
                    in_flight = busy,
                    "kafka: revoked partitions not drained in time; their next holder reads those records again"
                );
            }
            s.revoking = None;
            r
        };
        let (Some(c), Some(counters)) = (&self.consumer, &self.counters) else {
            return;
        };
        let commits: Vec<(TopicPartition, i64)> = {
            let mut s = lock(&self.state);
            revoking
                .tps
                .iter()
                .filter_map(|tp| Some((tp.clone(), s.revoke(tp)?)))
                .collect()
        };
        if !commits.is_empty() {
            commit_offsets(c, &commits, counters);
        }
        let mut tpl = TopicPartitionList::new();
        for tp in &revoking.tps {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        if let Some(h) = &self.hooks {
            for (tp, offset) in &commits {
                h.handed_off(tp, *offset);
            }
            for tp in &revoking.tps {
                h.revoked(tp);
            }
        }
        if let Err(e) = c.resume(&tpl) {
            tracing::warn!("kafka: resume of revoked partitions failed: {e}");
        }
        if let Err(e) = c.unassign() {
            tracing::warn!("kafka: unassign failed: {e}");
        }
        // A new rebalance starts from a clean slate.
        counters.rebalancing.store(false, Ordering::SeqCst);
    }

    /// Pauses or resumes partitions as the state says.
    fn apply_pauses(&mut self, pause: &[TopicPartition]) {
        let Some(c) = &self.consumer else { return };
        let resume = lock(&self.state).resumable();
        let set = |tps: &[TopicPartition], paused: bool, state: &Mutex<SpoutState>| {
            if tps.is_empty() {
                return;
            }
            let mut tpl = TopicPartitionList::new();
            for tp in tps {
                tpl.add_partition(&tp.topic, tp.partition);
            }
            let r = if paused {
                c.pause(&tpl)
            } else {
                c.resume(&tpl)
            };
            match r {
                Ok(()) => {
                    let mut s = lock(state);
                    for tp in tps {
                        if let Some(p) = s.parts.get_mut(tp) {
                            p.paused = paused;
                        }
                    }
                }
                Err(e) => tracing::warn!("kafka: pause/resume failed: {e}"),
            }
        };
        set(pause, true, &self.state);
        set(&resume, false, &self.state);
    }

    /// Emits a tracked record (first time or retry); bad records are done at once.
    fn emit_tracked(&mut self, id: u64, out: &mut SpoutCollector<'_>) {
        if out.assigns_event_time() {
            let s = lock(&self.state);
            if let Some(r) = s.record(id) {
                out.set_source(source_key(&r.tp));
                out.set_record_time(r.timestamp);
            }
        }
        if let Some(h) = self.hooks.clone() {
            let decoded = {
                let s = lock(&self.state);
                s.record(id)
                    .and_then(|r| Some((h.decode(r)?, r.tp.clone(), r.offset)))
            };
            if let Some((d, tp, offset)) = decoded {
                match d {
                    Decoded::Emit { stream, values } => {
                        if let Err(e) = out.emit_to(&stream, values, Some(id)) {
                            self.log_emit_error(&tp, offset, &e);
                            lock(&self.state).done_without_emit(id);
                        }
                    }
                    Decoded::Skip => lock(&self.state).done_without_emit(id),
                    Decoded::Bad(why) => {
                        self.count_unusable(&Unusable::BadTweet(why), &tp, offset);
                        lock(&self.state).done_without_emit(id);
                    }
                }
                return;
            }
        }
        let built = {
            let s = lock(&self.state);
            s.record(id).map(|r| {
                (
                    to_values(r, self.cfg.format, self.cfg.value),
                    r.tp.clone(),
                    r.offset,
                )
            })
        };
        let Some((built, tp, offset)) = built else {
            return;
        };
        match built {
            Ok((values, lossy)) => {
                if lossy && let Some(c) = &self.counters {
                    incr(&c.invalid_utf8);
                }
                if let Err(e) = out.emit(values, Some(id)) {
                    self.log_emit_error(&tp, offset, &e);
                    lock(&self.state).done_without_emit(id);
                }
            }
            Err(why) => {
                self.count_unusable(&why, &tp, offset);
                lock(&self.state).done_without_emit(id);
            }
        }
    }

    /// An emit the runtime refused: logged (rate-limited).
    fn log_emit_error(&self, tp: &TopicPartition, offset: i64, e: &dyn std::fmt::Display) {
        if let Some(n) = self.counters.as_ref().and_then(|c| c.emit_error_log.hit()) {
            tracing::error!(partition = %tp, offset, "kafka: cannot emit: {e}{n}");
        }
    }

    fn count_unusable(&self, why: &Unusable, tp: &TopicPartition, offset: i64) {
        let Some(c) = &self.counters else { return };
        match why {
            Unusable::BadTweet(e) => {
                incr(&c.bad_records);
                if let Some(n) = c.bad_record_log.hit() {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, offset, "kafka: not a tweet, skipped: {e}{n}");
                }
            }
            Unusable::Notice => incr(&c.notices),
            Unusable::Oversized(len) => {
                incr(&c.oversized_records);
                if let Some(n) = c.bad_record_log.hit() {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, offset, bytes = len, max = self.cfg.max_record_bytes, "kafka: record longer than max_record_bytes, skipped{n}");
                }
            }
        }
    }

    fn emit_untracked(&mut self, r: &Record, out: &mut SpoutCollector<'_>) {
        if out.assigns_event_time() {
            out.set_source(source_key(&r.tp));
            out.set_record_time(r.timestamp);
        }
        match to_values(r, self.cfg.format, self.cfg.value) {
            Ok((values, lossy)) => {
                if lossy && let Some(c) = &self.counters {
                    incr(&c.invalid_utf8);
                }
                if let Err(e) = out.emit(values, None) {
                    self.log_emit_error(&r.tp, r.offset, &e);
                }
            }
            Err(why) => self.count_unusable(&why, &r.tp, r.offset),
        }
    }

    /// At-most-once: commits past the fetched records before any is emitted.
    fn commit_before_emit(&mut self) -> bool {
        let (Some(c), Some(counters)) = (&self.consumer, &self.counters) else {
            return false;
        };
        let mut next: std::collections::BTreeMap<TopicPartition, i64> = Default::default();
        for r in &self.fetched {
            let e = next.entry(r.tp.clone()).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        let points: Vec<(TopicPartition, i64)> = next.into_iter().collect();
        points.is_empty() || commit_offsets(c, &points, counters)
    }

    /// Emits the hooks' control tuples (untracked); returns how many.
    fn emit_control(&mut self, out: &mut SpoutCollector<'_>) -> usize {
        let Some(h) = &self.hooks else { return 0 };
        let control = h.take_control();
        let n = control.len();
        for (stream, values) in control {
            if let Err(e) = out.emit_to(&stream, values, None) {
                tracing::error!("kafka: cannot emit on `{stream}`: {e}");
            }
        }
        n
    }

    /// Tells the hooks about partitions that reached their end with everything done and
    /// committed (each once per assignment).
    fn report_ended(&mut self) {
        let Some(h) = self.hooks.clone() else { return };
        let ended = lock(&self.state).ended_partitions();
        let new: Vec<TopicPartition> = ended
            .into_iter()
            .filter(|tp| !self.ended.contains(tp))
            .collect();
        if new.is_empty() {
            return;
        }
        // Not `force`: a commit refused during a rebalance is retried when due, not in
        // a loop.
        self.maybe_commit(false);
        let committed = lock(&self.state).commit_points().is_empty();
        for tp in new {
            if committed || self.cfg.guarantee != Guarantee::AtLeastOnce {
                h.partition_ended(&tp);
                self.ended.insert(tp);
            }
        }
    }

    /// Takes up to a batch of records from the consumer.
    fn poll(&mut self, out: &mut SpoutCollector<'_>) -> usize {
        let Some(c) = &self.consumer else { return 0 };
        let mut emitted = 0;
        let mut to_pause = Vec::new();
        let mut to_emit = Vec::new();
        let hold = self.hooks.is_some()
            && self
                .counters
                .as_ref()
                .is_some_and(|c| c.rebalancing.load(Ordering::SeqCst));
        for _ in 0..POLL_BATCH {
            let Some(result) = c.poll(Duration::ZERO) else {
                break;
            };
            match result {
                Ok(m) => {
                    let name = rdkafka::Message::topic(&m);
                    let topic = match &self.last_topic {
                        Some(t) if &**t == name => t.clone(),
                        _ => {
                            let t: Arc<str> = Arc::from(name);
                            self.last_topic = Some(t.clone());
                            t
                        }
                    };
                    // A record of the spout's hooks (squall's own topics) is never
                    // skipped for its size.
                    let max = match self.hooks {
                        Some(_) => usize::MAX,
                        None => self.cfg.max_record_bytes,
                    };
                    let record = Record::from_message(&m, topic, max);
                    let tp = record.tp.clone();
                    let (what, untracked) = lock(&self.state).fetched(record);
                    match what {
                        Fetched::Emit(id) => match untracked {
                            Some(r) => self.fetched.push(r),
                            None if hold => self.deferred.push(id),
                            None => to_emit.push(id),
                        },
                        Fetched::Held | Fetched::Ended => to_pause.push(tp),
                        Fetched::Drop => {}
                    }
                }
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => {
                    if let Some(cn) = &self.counters {
                        incr(&cn.consumer_errors);
                    }
                    report_consumer_error(&e);
                    break;
                }
            }
        }
        emitted += self.emit_control(out);
        for id in to_emit {
            self.emit_tracked(id, out);
            emitted += 1;
        }
        to_pause.sort();
        to_pause.dedup();
        self.apply_pauses(&to_pause);
        emitted
    }
}

fn report_consumer_error(e: &KafkaError) {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown) => {
            tracing::warn!("kafka: brokers unreachable, waiting for them: {e}")
        }
        _ => tracing::warn!("kafka: consumer error: {e}"),
    }
}

impl Spout for KafkaSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        match &self.hooks {
            Some(h) => h.declare(out),
            None => {
                out.declare(fields_of(self.cfg.format));
            }
        }
    }

    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.task = (ctx.task_index(), ctx.parallelism());
        if self.hooks.is_none()
            && let Some(HooksExtension(h)) = ctx.extension::<HooksExtension>()
        {
            self.hooks = Some(h.clone());
        }
        self.fatal = Some(ctx.fatal_handle());
        if ctx.is_microbatch() {
            self.batch = Some(BatchReader::open(&self.cfg, ctx)?);
            return Ok(());
        }
        let counters = Counters::new(ctx);
        self.consumer = Some(self.connect(counters.clone())?);
        self.counters = Some(counters);
        self.last_commit = Instant::now();
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        // Event time: each partition is a source of the watermark.
        let changes = std::mem::take(&mut lock(&self.state).source_changes);
        if out.assigns_event_time() {
            for (tp, open) in changes {
                if open {
                    out.open_source(source_key(&tp));
                } else {
                    out.close_source(source_key(&tp));
                }
            }
        }
        // Retries first: they must always be able to re-enter.
        let now = self.now_ms();
        let due = lock(&self.state).due_retry(now);
        if let Some(id) = due {
            if let Some(c) = &self.counters {
                incr(&c.retries);
            }
            self.emit_tracked(id, out);
            return SpoutStatus::Emitted;
        }
        // Partitions being handed off: nothing new is read or emitted meanwhile.
        if lock(&self.state).revoking.is_some() {
            self.continue_revoke();
            return SpoutStatus::Idle;
        }
        // Distributed mode: records held back while the group rebalanced.
        let rebalancing = self
            .counters
            .as_ref()
            .is_some_and(|c| c.rebalancing.load(Ordering::SeqCst));
        if !rebalancing && !self.deferred.is_empty() {
            self.emit_control(out);
            for id in std::mem::take(&mut self.deferred) {
                self.emit_tracked(id, out);
            }
            return SpoutStatus::Emitted;
        }
        // Untracked records already fetched (and, at-most-once, committed).
        if let Some(r) = self.untracked.pop_front() {
            self.emit_untracked(&r, out);
            return SpoutStatus::Emitted;
        }
        // Records held at a cap, released by a commit.
        let released = lock(&self.state).release_held();
        if let Some(id) = released {
            self.emit_tracked(id, out);
            self.apply_pauses(&[]);
            return SpoutStatus::Emitted;
        }
        self.maybe_commit(false);
        let emitted = if self.fetched.is_empty() {
            self.poll(out)
        } else {
            0
        };
        // The poll revoked partitions: they are handed off first (not finished with).
        if lock(&self.state).revoking.is_some() {
            return if emitted > 0 {
                SpoutStatus::Emitted
            } else {
                SpoutStatus::Idle
            };
        }
        if !self.fetched.is_empty() {
            // At-most-once: nothing is emitted before the commit past it worked (else it
            // could be emitted again after a restart); the commit is retried next call.
            if self.cfg.guarantee == Guarantee::AtMostOnce && !self.commit_before_emit() {
                return SpoutStatus::Idle;
            }
            self.untracked.extend(self.fetched.drain(..));
        }
        if emitted > 0 || !self.untracked.is_empty() {
            return SpoutStatus::Emitted;
        }
        if self.emit_control(out) > 0 {
            return SpoutStatus::Emitted;
        }
        if let Some(h) = self.hooks.clone() {
            if let Some(msg) = h.fatal() {
                if let Some(f) = self.fatal.take() {
                    f.fail(msg);
                }
                return SpoutStatus::Idle;
            }
            if self.cfg.end.is_some() {
                self.report_ended();
            }
            // Distributed mode: stay in the group (to take over the partitions of an
            // instance that dies) until the whole application is done.
            // A bounded input that holds no partition (its group never gave it one, or
            // took them all) has nothing of its own left either: once the application is
            // done it finishes too, assigned or not.
            let own_done = if self.cfg.end.is_some() {
                let s = lock(&self.state);
                s.finished() || s.holds_nothing()
            } else {
                lock(&self.state).pending() == 0
            };
            if !(own_done && h.may_finish()) {
                return SpoutStatus::Idle;
            }
            self.maybe_commit(true);
            return SpoutStatus::Exhausted;
        }
        let finished = self.cfg.end.is_some()
            && lock(&self.state).finished()
            && self.untracked.is_empty()
            && self.fetched.is_empty();
        if !finished {
            return SpoutStatus::Idle;
        }
        // Commit everything before telling the siblings; leave only when all are done.
        self.maybe_commit(true);
        self.siblings.mark_done(self.task.0);
        if self.siblings.all_done(self.task.1) {
            SpoutStatus::Exhausted
        } else {
            SpoutStatus::Idle
        }
    }

    fn ack(&mut self, msg_id: u64) {
        let mut s = lock(&self.state);
        if let Some(h) = &self.hooks
            && let Some(r) = s.record(msg_id)
        {
            h.acked(r);
        }
        s.ack(msg_id);
    }

    fn fail(&mut self, msg_id: u64) {
        let now = self.now_ms();
        let gave_up = lock(&self.state).fail(msg_id, now);
        if gave_up && let Some(c) = &self.counters {
            incr(&c.given_up);
            if let Some(n) = c.given_up_log.hit() {
                tracing::warn!("kafka: a record failed more than max_retries times; given up{n}");
            }
        }
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSpout> {
        Some(self)
    }

    fn source_log(&self) -> Option<crate::component::SourceLog> {
        Some(crate::component::SourceLog {
            brokers: self.cfg.brokers.clone(),
            topics: self.cfg.topics.clone(),
            group: self.cfg.group.clone(),
            bounded: self.cfg.end.is_some() && self.cfg.pattern.is_none(),
        })
    }

    /// A batch is an offset range per partition of `topics` (or `partitions`); `format`
    /// and `value` decide the tuples those records become. The brokers' address, the
    /// group, `start` (only the first batch uses it), `end` and the event-mode options
    /// may change.
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::options::pick(&self.cfg, &["topics", "partitions", "format", "value"])
    }

    fn close(&mut self) {
        self.batch = None;
        // A handoff under way ends now; the unsubscribe below revokes without draining.
        self.closing.store(true, Ordering::SeqCst);
        if let Some(r) = &mut lock(&self.state).revoking {
            r.deadline = Instant::now();
        }
        self.continue_revoke();
        match self.cfg.guarantee {
            Guarantee::AtLeastOnce => self.maybe_commit(true),
            Guarantee::None => {
                if let Some(c) = &self.consumer {
                    let _ = c.commit_consumer_state(CommitMode::Sync);
                }
            }
            Guarantee::AtMostOnce => {}
        }
        if let Some(c) = self.consumer.take() {
            c.unsubscribe();
            drop(c);
        }
    }
}
impl ComponentConfig for KafkaSpoutConfig {
    const NAME: &'static str = "kafka";
    const DESCRIPTION: &'static str =
        "Kafka consumer: at-least-once, commits follow acks, replay from any offset or time";
}

impl KafkaSpoutConfig {
    /// A spout whose life `hooks` take part in (distributed mode's readers).
    pub fn build_with_hooks(&self, hooks: Arc<dyn SpoutHooks>) -> Result<SpoutFactory, BuildError> {
        self.factory(Some(hooks))
    }

    /// The options checked; spouts with `hooks`, if any.
    fn factory(&self, hooks: Option<Arc<dyn SpoutHooks>>) -> Result<SpoutFactory, BuildError> {
        self.validate()?;
        let retries = RetrySchedule::new(&self.retry, self.max_retries)
            .map_err(|e| BuildError::Invalid(format!("retry: {e}")))?;
        let cfg = self.clone();
        let siblings = Arc::new(Siblings::default());
        Ok(Arc::new(move || {
            let spout = KafkaSpout::new(cfg.clone(), retries.clone(), siblings.clone());
            Box::new(match &hooks {
                Some(h) => spout.with_hooks(h.clone()),
                None => spout,
            })
        }))
    }
}

impl SpoutConfig for KafkaSpoutConfig {
    fn build(&self) -> Result<SpoutFactory, BuildError> {
        self.factory(None)
    }
}
