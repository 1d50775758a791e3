//! `console`: prints the current top-k as a table (like Spark's `pprint`) each time a
//! ranking arrives, headed by its window, start – end (marked "(final)" for the flush at
//! the end of a run); other tuples are printed one per line.

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bolts::ranking_value::from_value;
use crate::bolts::window_mark::{is_final, window_end, window_start};
use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::{Bolt, ComponentResult};
use crate::data::tuple::{Tuple, Value};
use crate::io::clock::{Clock, WallClock};
use crate::io::time::{Precision, rfc3339};

/// Options of the `console` sink.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Title above each table.
    pub title: String,
    /// Print nothing (the ranking still reaches the report).
    pub quiet: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            title: "trending".into(),
            quiet: false,
        }
    }
}

impl ComponentConfig for ConsoleConfig {
    const NAME: &'static str = "console";
    const DESCRIPTION: &'static str =
        "prints each ranking as a table with a timestamp header (other tuples: one per line)";
}

impl BoltConfig for ConsoleConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        let cfg = self.clone();
        Ok(Arc::new(move || Box::new(ConsoleSink { cfg: cfg.clone() })))
    }
}

/// The `Time:` of a ranking: the end of its window (now when it has none), to the second.
fn time_label(window_end_ms: Option<i64>) -> String {
    let now = || i64::try_from(WallClock.now_ms()).unwrap_or(i64::MAX);
    let at = window_end_ms.filter(|ms| *ms >= 0).unwrap_or_else(now);
    rfc3339(at, Precision::Seconds)
        .or_else(|_| rfc3339(now(), Precision::Seconds))
        .unwrap_or_else(|_| at.to_string())
}

/// The `Time:` of a ranking of the window `[start, end)`: `START – END`, both to the
/// second; only the end (see [`time_label`]) when the start is not known or not a time.
fn window_label(window_start_ms: Option<i64>, window_end_ms: Option<i64>) -> String {
    let end = time_label(window_end_ms);
    match window_start_ms
        .filter(|ms| *ms >= 0 && window_end_ms.is_some())
        .and_then(|ms| rfc3339(ms, Precision::Seconds).ok())
    {
        Some(start) => format!("{start} – {end}"),
        None => end,
    }
}

pub struct ConsoleSink {
    cfg: ConsoleConfig,
}

/// Renders a ranking as the console sink prints it.
pub fn render_table(
    title: &str,
    at: &str,
    ranking: &[(compact_str::CompactString, u64)],
) -> String {
    let rule = "-".repeat(44);
    let mut s = format!("{rule}\nTime: {at}  {title}\n{rule}\n");
    if ranking.is_empty() {
        s.push_str("  (empty)\n");
    }
    for (i, (k, c)) in ranking.iter().enumerate() {
        s.push_str(&format!("{:>3}. #{:<28} {:>9}\n", i + 1, k, c));
    }
    s
}

impl Bolt for ConsoleSink {
    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.cfg.quiet {
            return Ok(());
        }
        let text = match input.get("rankings").and_then(from_value) {
            Some(r) => {
                let at = window_label(window_start(&input), window_end(&input));
                let at = if is_final(&input) {
                    format!("{at} (final)")
                } else {
                    at
                };
                // Event time: a window shown before, again with late tuples.
                let at = match input.get("update").and_then(Value::as_bool) {
                    Some(true) => format!("{at} (update)"),
                    _ => at,
                };
                render_table(&self.cfg.title, &at, &r)
            }
            None => {
                let vals: Vec<String> = input.values().iter().map(|v| v.to_string()).collect();
                format!("{}\n", vals.join("\t"))
            }
        };
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_has_header_and_rows() {
        let t = super::render_table("top", "2026-01-01T00:00:00Z", &[("rust".into(), 3)]);
        assert!(t.contains("Time: 2026-01-01T00:00:00Z  top"));
        assert!(t.contains("  1. #rust"));
    }

    #[test]
    fn the_time_is_the_window_end_to_the_second() {
        use super::time_label;
        assert_eq!(time_label(Some(1_795_255_200_999)), "2026-11-21T10:00:00Z");
        assert_eq!(time_label(Some(0)), "1970-01-01T00:00:00Z");
        // No window end (or a negative one, or one past year 9999): now.
        for none in [None, Some(-1), Some(i64::MAX)] {
            let now = time_label(none);
            assert_eq!(now.len(), 20, "{now}");
            assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
        }
    }

    #[test]
    fn the_window_is_shown_from_its_start_to_its_end() {
        use super::window_label;
        assert_eq!(
            window_label(Some(1_795_255_140_000), Some(1_795_255_200_000)),
            "2026-11-21T09:59:00Z – 2026-11-21T10:00:00Z"
        );
        // Without a (usable) start: the end alone.
        for start in [None, Some(-1), Some(i64::MAX)] {
            assert_eq!(
                window_label(start, Some(1_795_255_200_000)),
                "2026-11-21T10:00:00Z"
            );
        }
        // A running ranking (no window): now, alone.
        assert_eq!(window_label(Some(0), None).len(), 20);
    }
}
