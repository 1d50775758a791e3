//! Event time at a spout task: each tuple it emits gets the time of its message (the
//! configured field of the tuple, or the record's own timestamp), and the task's
//! watermark follows the times seen per source key (Kafka partition, connection, or the
//! whole task).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::data::tuple::{NO_TIME, Values};
use crate::log_throttle::LogThrottle;
use crate::task::outbox::Outbox;
use crate::time::event_time::{EventTimeConfig, parse_event_time};
use crate::time::watermark::{WatermarkStatus, WatermarkTracker};

/// The field name that means "the record's own timestamp" where the tuple has no such
/// field (the Kafka spout's `tweet` format).
pub(crate) const RECORD_TIMESTAMP: &str = "timestamp";

/// How often a spout task tells its watermark downstream, at most.
pub(crate) const WATERMARK_EVERY_MS: u64 = 50;

pub(crate) struct SourceTime {
    cfg: EventTimeConfig,
    tracker: WatermarkTracker,
    /// Per output stream: the index of the time field in its tuples (`None`: not there).
    index: Vec<Option<Option<usize>>>,
    /// The source key of the tuples emitted now.
    key: u64,
    /// The record time the spout gave for the tuples emitted now.
    record_time: Option<i64>,
    started: Instant,
    last_sent_ms: Option<u64>,
    /// Tuples whose time could not be read (counted, emitted without a time).
    no_time: Arc<AtomicU64>,
    log: LogThrottle,
}

impl SourceTime {
    pub(crate) fn new(cfg: EventTimeConfig, no_time: Arc<AtomicU64>) -> Self {
        let lag = i64::try_from(cfg.lag.as_millis()).unwrap_or(i64::MAX);
        let idle = u64::try_from(cfg.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        SourceTime {
            tracker: WatermarkTracker::new(lag, idle, 0),
            cfg,
            index: Vec::new(),
            key: 0,
            record_time: None,
            started: Instant::now(),
            last_sent_ms: None,
            no_time,
            log: LogThrottle::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The tuples emitted from now on come from source `key`.
    pub(crate) fn set_key(&mut self, key: u64) {
        self.key = key;
    }

    pub(crate) fn open(&mut self, key: u64) {
        let now = self.now_ms();
        self.tracker.open(key, now);
    }

    /// Source `key` has messages waiting: it is not idle.
    pub(crate) fn busy(&mut self, key: u64) {
        let now = self.now_ms();
        self.tracker.busy(key, now);
    }

    pub(crate) fn close(&mut self, key: u64) {
        self.tracker.close(key);
    }

    pub(crate) fn set_record_time(&mut self, ms: Option<i64>) {
        self.record_time = ms;
    }

    /// The source ended: its watermark goes to the end of time.
    pub(crate) fn end(&mut self) {
        self.tracker.end();
    }

    /// The event time of `values`, emitted on stream `sid` of `outbox` (observed for the
    /// watermark); `NO_TIME` (counted) if it cannot be read.
    pub(crate) fn time_of(&mut self, outbox: &Outbox, sid: usize, values: &Values) -> i64 {
        if self.index.len() <= sid {
            self.index.resize(sid + 1, None);
        }
        let idx = *self.index[sid]
            .get_or_insert_with(|| outbox.stream_fields(sid).index_of(&self.cfg.field));
        let parsed = match idx {
            Some(i) => match values.get(i) {
                Some(v) => parse_event_time(v).map_err(|e| e.to_string()),
                None => Err(format!("the tuple has no field {i}")),
            },
            None if self.cfg.field == RECORD_TIMESTAMP => self
                .record_time
                .ok_or_else(|| "the record has no timestamp".to_string()),
            None => Err(format!("the tuple has no field `{}`", self.cfg.field)),
        };
        match parsed {
            Ok(t) => {
                let now = self.now_ms();
                self.tracker.observe(self.key, t, now);
                t
            }
            Err(why) => {
                self.no_time.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.log.hit() {
                    tracing::warn!(
                        field = %self.cfg.field,
                        "event time: cannot read the time of a message ({why}); emitted without one{n}"
                    );
                }
                NO_TIME
            }
        }
    }

    /// The task's watermark now.
    pub(crate) fn status(&mut self) -> WatermarkStatus {
        let now = self.now_ms();
        self.tracker.current(now)
    }

    /// Tells the task's watermark downstream when due (at most every
    /// [`WATERMARK_EVERY_MS`]; at once when `force`).
    pub(crate) fn send_watermark(&mut self, outbox: &mut Outbox, force: bool) {
        let now = self.now_ms();
        if !force
            && self
                .last_sent_ms
                .is_some_and(|t| now.saturating_sub(t) < WATERMARK_EVERY_MS)
        {
            return;
        }
        self.last_sent_ms = Some(now);
        match self.tracker.current(now) {
            WatermarkStatus::Active(NO_TIME) => {}
            WatermarkStatus::Active(w) => outbox.send_watermark(Some(w)),
            WatermarkStatus::Idle => outbox.send_watermark(None),
        }
    }
}
