//! PROVISIONAL (replaced by the i25-source branch): per-source watermarks of a spout task.

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkStatus {
    Active(i64),
    Idle,
}

pub struct WatermarkTracker {
    lag: i64,
    idle: u64,
    started: u64,
    keys: HashMap<u64, (i64, u64)>,
    last: i64,
    ended: bool,
}

impl WatermarkTracker {
    pub fn new(lag_ms: i64, idle_timeout_ms: u64, now_ms: u64) -> Self {
        WatermarkTracker {
            lag: lag_ms,
            idle: idle_timeout_ms,
            started: now_ms,
            keys: HashMap::new(),
            last: i64::MIN,
            ended: false,
        }
    }
    pub fn open(&mut self, key: u64, now_ms: u64) {
        self.keys.entry(key).or_insert((i64::MIN, now_ms));
    }
    pub fn observe(&mut self, key: u64, event_ms: i64, now_ms: u64) {
        let e = self.keys.entry(key).or_insert((i64::MIN, now_ms));
        e.0 = e.0.max(event_ms);
        e.1 = now_ms;
    }
    pub fn close(&mut self, key: u64) {
        self.keys.remove(&key);
    }
    pub fn end(&mut self) {
        self.ended = true;
    }
    pub fn current(&mut self, now_ms: u64) -> WatermarkStatus {
        if self.ended {
            return WatermarkStatus::Active(i64::MAX);
        }
        let active: Vec<i64> = self
            .keys
            .values()
            .filter(|(_, seen)| now_ms.saturating_sub(*seen) < self.idle)
            .map(|(max, _)| max.saturating_sub(self.lag))
            .collect();
        let Some(min) = active.into_iter().min() else {
            if self.keys.is_empty() && now_ms.saturating_sub(self.started) < self.idle {
                return WatermarkStatus::Active(self.last);
            }
            return WatermarkStatus::Idle;
        };
        self.last = self.last.max(min);
        WatermarkStatus::Active(self.last)
    }
}
