//! PROVISIONAL (replaced by the i25-source branch): the `event_time` option of a spout.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::data::tuple::Value;

fn default_idle() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventTimeConfig {
    pub field: String,
    #[serde(default, with = "humantime_serde")]
    pub lag: Duration,
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl EventTimeConfig {
    pub fn validate(&self) -> Result<(), EventTimeError> {
        if self.field.is_empty() {
            return Err(EventTimeError::Config("field must not be empty".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventTimeError {
    #[error("event_time: {0}")]
    Config(String),
    #[error("not a time: {0}")]
    NotATime(String),
}

pub fn parse_event_time(v: &Value) -> Result<i64, EventTimeError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Str(s) => {
            if let Ok(ms) = s.parse::<i64>() {
                return Ok(ms);
            }
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| EventTimeError::NotATime(format!("{s:?}: {e}")))?;
            Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        other => Err(EventTimeError::NotATime(format!("{other}"))),
    }
}
