//! Structured logs with `tracing`: human text by default, JSON when
//! configured, filtered by `RUST_LOG` or the configured level. Logs go to
//! stderr so that stdout carries only alerts. Text is coloured only on a
//! terminal, and never with `NO_COLOR` set, so a log file or a collector
//! gets no escape codes.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::event::Reason;

pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(color);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// How often, at most, malformed input is reported at WARN.
const REJECTION_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Malformed input in the log without a line per event above DEBUG: each
/// rejection is logged at DEBUG, and at most once a minute a WARN says how
/// many were set aside since the last one and shows the first of them.
/// The metric `vigil_events_rejected_total` counts every one.
#[derive(Debug, Default)]
pub struct Rejections {
    since: u64,
    first: Option<String>,
    reported: Option<Instant>,
}

impl Rejections {
    /// `place` says where the input was (a line number, a topic and offset).
    /// True if this one was reported at WARN.
    pub fn record(&mut self, place: &dyn std::fmt::Display, reason: Reason, detail: &str) -> bool {
        debug!(%place, %reason, detail, "Event rejected");
        self.since += 1;
        if self.first.is_none() {
            self.first = Some(format!("{place} ({reason}): {detail}"));
        }
        if self.reported.is_none_or(|at| at.elapsed() >= REJECTION_REPORT_EVERY) {
            let first = self.first.take().unwrap_or_default();
            warn!(count = self.since, first, "Malformed events set aside (each is logged at DEBUG)");
            self.since = 0;
            self.reported = Some(Instant::now());
            return true;
        }
        false
    }
}

/// Late events, reported at WARN at most once a minute with the sources
/// they came from, so a source whose clock or delivery lags is named
/// without a line per event.
#[derive(Debug, Default)]
pub struct Lateness {
    /// Per source: its name and the late count last reported.
    reported_counts: Vec<(String, u64)>,
    reported: Option<Instant>,
}

impl Lateness {
    /// Sees each source's late count so far; true if it warned.
    pub fn observe<'a>(&mut self, sources: impl IntoIterator<Item = (&'a str, u64)>) -> bool {
        let due = self.reported.is_none_or(|at| at.elapsed() >= REJECTION_REPORT_EVERY);
        let mut named = String::new();
        let mut total = 0;
        for (source, late) in sources {
            let index = match self.reported_counts.iter().position(|(s, _)| s == source) {
                Some(index) => index,
                None => {
                    self.reported_counts.push((source.to_owned(), 0));
                    self.reported_counts.len() - 1
                }
            };
            let new = late.saturating_sub(self.reported_counts[index].1);
            if new > 0 && due {
                if !named.is_empty() {
                    named.push_str(", ");
                }
                named.push_str(&format!("{source} ({new})"));
                total += new;
                self.reported_counts[index].1 = late;
            }
        }
        if total == 0 {
            return false;
        }
        warn!(
            count = total,
            sources = %named,
            "Late events: more than `lateness` behind their source, seen by match rules only"
        );
        self.reported = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_events_are_one_warning_a_minute_naming_their_sources() {
        let mut lateness = Lateness::default();
        assert!(!lateness.observe([("events/0", 0), ("events/1", 0)]), "nothing late");
        assert!(lateness.observe([("events/0", 3), ("events/1", 0)]));
        assert!(!lateness.observe([("events/0", 9), ("events/1", 5)]), "within the minute");
        lateness.reported = Some(Instant::now() - REJECTION_REPORT_EVERY);
        assert!(lateness.observe([("events/0", 9), ("events/1", 5)]), "the six and five since");
        assert_eq!(lateness.reported_counts, [("events/0".to_owned(), 9), ("events/1".to_owned(), 5)]);
    }

    #[test]
    fn a_flood_of_malformed_events_is_one_warning_a_minute() {
        let mut rejections = Rejections::default();
        assert!(rejections.record(&"line 1", Reason::InvalidJson, "expected value"), "the first is reported at once");
        let reported =
            (2..10_000).filter(|n| rejections.record(&format_args!("line {n}"), Reason::MissingTs, "")).count();
        assert_eq!(reported, 0);
        assert_eq!(rejections.since, 9_998);
        assert_eq!(rejections.first.as_deref(), Some("line 2 (missing_ts): "));
        rejections.reported = Some(Instant::now() - REJECTION_REPORT_EVERY);
        assert!(rejections.record(&"line 10000", Reason::MissingTs, ""));
        assert_eq!((rejections.since, rejections.first.as_deref()), (0, None));
    }
}
