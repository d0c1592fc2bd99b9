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

#[cfg(test)]
mod tests {
    use super::*;

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
