//! Event time.
//!
//! Every window in vigil runs on the time written in the event (`ts`), never
//! on the wall clock, so that a replay of a file raises the same alerts as the
//! live stream did. Timestamps are microseconds since the Unix epoch in an
//! `i64`: cheap to compare and subtract on the hot path, and wide enough for
//! any date an event can carry.

pub mod outliers;
pub mod watermark;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in event time, in microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A span of event time in microseconds. Signed so that differences of
/// timestamps need no special cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);

    /// Parses an RFC 3339 timestamp (`2026-11-23T10:00:00Z`,
    /// `2026-11-23T11:00:00.250+01:00`).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let parsed = DateTime::parse_from_rfc3339(text).ok()?;
        Some(Timestamp(parsed.timestamp_micros()))
    }

    pub fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn saturating_add(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }

    pub fn saturating_sub(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_sub(span.0))
    }

    pub fn since(self, earlier: Timestamp) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// The start of the `interval`-long bucket this timestamp falls in,
    /// aligned to the epoch so that every replica and every replay agrees.
    pub fn floor_to(self, interval: Span) -> Timestamp {
        Timestamp(self.0 - self.0.rem_euclid(interval.0.max(1)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_datetime().to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// RFC 3339 in human-readable formats (alerts), microseconds in binary
/// ones (checkpoints).
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Timestamp::parse_rfc3339(&text).ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn from_secs(secs: i64) -> Span {
        Span(secs.saturating_mul(1_000_000))
    }

    pub fn from_duration(duration: Duration) -> Span {
        Span(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Parses a human duration as analysts write them: `500ms`, `30s`, `5m`,
    /// `1h`, `7d`, `1h 30m`.
    pub fn parse(text: &str) -> Result<Span, String> {
        humantime::parse_duration(text.trim())
            .map(Span::from_duration)
            .map_err(|err| format!("invalid duration `{text}`: {err} (expected e.g. 30s, 5m, 1h, 7d)"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = Duration::from_micros(self.0.max(0) as u64);
        write!(f, "{}", humantime::format_duration(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        let utc = Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        let offset = Timestamp::parse_rfc3339("2026-11-23T11:00:00+01:00").unwrap();
        assert_eq!(utc, offset);
        let frac = Timestamp::parse_rfc3339("2026-11-23T10:00:00.250Z").unwrap();
        assert_eq!(frac.since(utc), Span(250_000));
        assert_eq!(frac.to_string(), "2026-11-23T10:00:00.250Z");
        assert!(Timestamp::parse_rfc3339("2026-11-23 10:00").is_none());
        assert!(Timestamp::parse_rfc3339("").is_none());
    }

    #[test]
    fn durations_parse_and_display() {
        assert_eq!(Span::parse("5m").unwrap(), Span::from_secs(300));
        assert_eq!(Span::parse("7d").unwrap(), Span::from_secs(7 * 86_400));
        assert_eq!(Span::parse("1h 30m").unwrap(), Span::from_secs(5_400));
        assert!(Span::parse("five minutes").is_err());
        assert_eq!(Span::from_secs(300).to_string(), "5m");
    }

    #[test]
    fn floor_aligns_to_epoch_even_before_it() {
        let hour = Span::from_secs(3600);
        assert_eq!(Timestamp::from_secs(7201).floor_to(hour), Timestamp::from_secs(7200));
        assert_eq!(Timestamp::from_secs(-1).floor_to(hour), Timestamp::from_secs(-3600));
    }
}
