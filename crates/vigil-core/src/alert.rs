//! Alerts: what on-call receives.
//!
//! An alert is built from a rule, a group key and a detector's [`Firing`].
//! Its `fingerprint` names the rule and group (the unit of realert and of
//! deduplication downstream); its `id` adds the event time, so the same
//! input always yields the same ids, which makes replays comparable byte for
//! byte. `raised_at` is the wall-clock time and is set only by the live
//! daemon, never in a replay.
//!
//! While the incident goes on (`incident.rs`), the alert is sent again:
//! the same `id`, the next `update` number, the incident's event count, top
//! values, last time and latest evidence; `status: resolved` on the last.
//! Each notice has its own [`Alert::notice_id`], which is what the alert
//! log deduplicates and what receivers get as a delivery id.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::detect::Firing;
pub use crate::detect::Status;
use crate::event::{EventRef, FieldId};
use crate::incident::{Incident, Top};
use crate::rules::Severity;
use crate::ruleset::Rule;
use crate::time::Timestamp;

/// The separator of group values inside a group key.
pub const KEY_SEPARATOR: char = '\u{1f}';

/// Serialized to the alert log and read back from it by the notifiers, so
/// both directions must agree (a test pins the round trip).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub rule: Arc<str>,
    pub title: Arc<str>,
    pub severity: Severity,
    #[serde(serialize_with = "group_as_map", deserialize_with = "group_from_map")]
    pub group: Vec<(Arc<str>, String)>,
    pub summary: String,
    pub ts: Timestamp,
    pub first_ts: Timestamp,
    /// The detector's count: events, or distinct values, in the window at
    /// the moment it fired (the largest such count over the incident).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Matching events of the group from `first_ts` to `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// The most frequent values of the rule's `top` fields among them.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "top_as_map",
        deserialize_with = "top_from_map"
    )]
    pub top: Top,
    /// 0 for the first notice, then 1, 2, … for the updates of its incident.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub update: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(default = "no_tags")]
    pub tags: Arc<[String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<Arc<str>>,
    pub fingerprint: String,
    #[serde(default)]
    pub evidence: Vec<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised_at: Option<Timestamp>,
    /// `resumed`: the end of a silence this rule alerted on.
    #[serde(default, skip_serializing_if = "Status::is_firing")]
    pub status: Status,
}

fn group_as_map<S: Serializer>(group: &[(Arc<str>, String)], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(group.len()))?;
    for (name, value) in group {
        map.serialize_entry(&**name, value)?;
    }
    map.end()
}

/// Keeps the order of the JSON object, which is the rule's `group_by` order.
fn group_from_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(Arc<str>, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(Arc<str>, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of group fields to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some((name, value)) = map.next_entry::<String, String>()? {
                pairs.push((name.into(), value));
            }
            Ok(pairs)
        }
    }
    deserializer.deserialize_map(Pairs)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
struct TopCount {
    value: String,
    count: u64,
}

fn top_as_map<S: Serializer>(top: &Top, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(top.len()))?;
    for (name, values) in top {
        let counts: Vec<TopCount> =
            values.iter().map(|(value, count)| TopCount { value: value.clone(), count: *count }).collect();
        map.serialize_entry(&**name, &counts)?;
    }
    map.end()
}

/// Keeps the order of the JSON object, which is the rule's `top` order.
fn top_from_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Top, D::Error> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = Top;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of fields to their top values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut top = Vec::new();
            while let Some((name, counts)) = map.next_entry::<String, Vec<TopCount>>()? {
                top.push((name.into(), counts.into_iter().map(|c| (c.value, c.count)).collect()));
            }
            Ok(top)
        }
    }
    deserializer.deserialize_map(Fields)
}

fn no_tags() -> Arc<[String]> {
    Arc::from(Vec::new())
}

/// The fingerprint of a rule and group: stable across runs and versions.
pub fn fingerprint(rule: &str, key: &str) -> String {
    let mut bytes = Vec::with_capacity(rule.len() + key.len() + 1);
    bytes.extend_from_slice(rule.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_bytes());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// What an alert was raised on.
#[derive(Clone, Copy)]
pub enum Trigger<'a, 'e> {
    /// An event the rule matched; its fields fill the summary.
    Event(&'a EventRef<'e>),
    /// Event time passing with no event (a tick: silence, an incident's
    /// update or end).
    Time,
}

/// The incident an alert reports on, if any.
#[derive(Clone, Copy)]
pub enum PartOf<'a> {
    /// Its count, top values and id come from the incident.
    Incident(&'a Incident),
    /// A notice of its own.
    Alone,
}

impl Alert {
    /// The id the first notice of `firing` gets, which its updates repeat.
    pub fn id_of(rule: &Rule, key: &str, firing: &Firing) -> String {
        let mut seed = format!("{}/{}/{}", fingerprint(&rule.id, key), firing.ts.0, firing.first_ts.0);
        if firing.status == Status::Resumed {
            seed.push_str("/resumed");
        }
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()))
    }

    /// This notice among those of its alert: the id, then `id.1`, `id.2`
    /// for the updates. Unique per notice, so deliveries stay idempotent.
    pub fn notice_id(&self) -> String {
        if self.update == 0 {
            self.id.clone()
        } else {
            format!("{}.{}", self.id, self.update)
        }
    }

    /// What a one-line display adds to an update: `update 2`, `resolved`.
    pub fn notice_label(&self) -> Option<String> {
        match (self.status, self.update) {
            (Status::Resolved, _) => Some("resolved".to_owned()),
            (_, 0) => None,
            (_, n) => Some(format!("update {n}")),
        }
    }

    /// Builds the alert; `event` is the event that raised it (none for a
    /// flatline, which fires on silence, or an incident's update), and
    /// `incident` the incident it reports on (its id, events and top).
    pub fn build(rule: &Rule, key: &str, firing: Firing, trigger: Trigger<'_, '_>, part_of: PartOf<'_>) -> Alert {
        let event = match trigger {
            Trigger::Event(event) => Some(event),
            Trigger::Time => None,
        };
        let incident = match part_of {
            PartOf::Incident(incident) => Some(incident),
            PartOf::Alone => None,
        };
        let group: Vec<(Arc<str>, String)> = if rule.group_by.is_empty() {
            Vec::new()
        } else {
            rule.group_by
                .iter()
                .zip(key.split(KEY_SEPARATOR))
                .map(|((name, _), v)| (name.clone(), v.to_owned()))
                .collect()
        };
        let fingerprint = fingerprint(&rule.id, key);
        let id = incident.map_or_else(|| Alert::id_of(rule, key, &firing), |i| i.id.clone());
        let top: Top = incident.map_or_else(Vec::new, |i| {
            rule.top.iter().zip(&i.top).map(|((name, _), values)| (name.clone(), values.listed())).collect()
        });
        // Without a count from the detector, the evidence is the events
        // that fired, for a type that counts events at all.
        let events = if rule.detector.counts_events() {
            firing.events.or_else(|| (!firing.evidence.is_empty()).then_some(firing.evidence.len() as u64))
        } else {
            None
        };
        let mut summary = String::new();
        match firing.status {
            Status::Firing | Status::Resolved => rule.summary.render(&mut summary, |name, field, out| {
                let numbers = Numbers { firing: &firing, events, top: &top };
                render_var(rule, &group, &numbers, event, name, field, out)
            }),
            Status::Resumed => {
                let silence = firing.ts.since(firing.first_ts);
                let _ = write!(summary, "Resumed after {silence} of silence: {}", rule.title);
            }
        }
        let evidence = firing.evidence.into_iter().filter_map(|line| RawValue::from_string(line).ok()).collect();
        Alert {
            id,
            rule: rule.id.clone(),
            title: rule.title.clone(),
            severity: rule.severity,
            group,
            summary,
            ts: firing.ts,
            first_ts: firing.first_ts,
            count: firing.count,
            events,
            top,
            update: incident.map_or(0, |i| i.update),
            score: firing.score.map(round),
            value: firing.value,
            observed: firing.observed.map(round),
            baseline: firing.baseline.map(round),
            tags: rule.tags.clone(),
            runbook: rule.runbook.clone(),
            fingerprint,
            evidence,
            raised_at: None,
            status: firing.status,
        }
    }

    pub fn group_value(&self, name: &str) -> Option<&str> {
        self.group.iter().find(|(n, _)| &**n == name).map(|(_, v)| v.as_str())
    }

    /// `user=alice ip=10.0.0.1`, for one-line displays.
    pub fn group_text(&self) -> String {
        let mut text = String::new();
        for (i, (name, value)) in self.group.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            let _ = write!(text, "{name}={value}");
        }
        text
    }
}

/// Floats rounded to 4 significant decimals, so output is stable and
/// readable.
fn round(value: f64) -> f64 {
    if value.abs() >= 1e-4 || value == 0.0 {
        (value * 10_000.0).round() / 10_000.0
    } else {
        value
    }
}

/// What a summary's variables read besides the event.
struct Numbers<'a> {
    firing: &'a Firing,
    events: Option<u64>,
    top: &'a Top,
}

/// `203.0.113.5 (140), 198.51.100.7 (10)`, and `and 12 more` for the
/// events of `events` the listed values do not account for.
fn write_top(out: &mut String, values: &[(String, u64)], events: Option<u64>) -> bool {
    for (i, (value, count)) in values.iter().enumerate() {
        let _ = write!(out, "{}{value} ({count})", if i > 0 { ", " } else { "" });
    }
    let listed: u64 = values.iter().map(|(_, n)| n).sum();
    if let Some(more) = events.and_then(|e| e.checked_sub(listed)).filter(|m| *m > 0 && !values.is_empty()) {
        let _ = write!(out, " and {more} more");
    }
    !values.is_empty()
}

fn render_var(
    rule: &Rule,
    group: &[(Arc<str>, String)],
    numbers: &Numbers<'_>,
    event: Option<&EventRef<'_>>,
    name: &str,
    field: FieldId,
    out: &mut String,
) -> bool {
    let number = |out: &mut String, v: f64| {
        let _ = if v.fract() == 0.0 && v.abs() < 1e15 {
            write!(out, "{}", v as i64)
        } else if v != 0.0 && v.abs() < 0.01 {
            write!(out, "{v:.1e}")
        } else {
            write!(out, "{v:.2}")
        };
        true
    };
    let firing = numbers.firing;
    if let Some(field) = name.strip_prefix("top.") {
        return numbers
            .top
            .iter()
            .find(|(n, _)| &**n == field)
            .is_some_and(|(_, values)| write_top(out, values, numbers.events));
    }
    match name {
        "count" => firing.count.is_some_and(|c| write!(out, "{c}").is_ok()),
        "events" => numbers.events.is_some_and(|c| write!(out, "{c}").is_ok()),
        "score" => firing.score.is_some_and(|s| number(out, s)),
        "value" => firing.value.as_deref().is_some_and(|v| {
            out.push_str(v);
            true
        }),
        "observed" | "sum" => firing.observed.is_some_and(|v| number(out, v)),
        "baseline" => firing.baseline.is_some_and(|v| number(out, v)),
        "ratio" | "percent" => firing.score.is_some_and(|s| number(out, if name == "percent" { s * 100.0 } else { s })),
        "threshold" => rule.detector.threshold().is_some_and(|t| number(out, t)),
        "window" => rule.detector.window().is_some_and(|w| write!(out, "{w}").is_ok()),
        "rule" => {
            out.push_str(&rule.id);
            true
        }
        "title" => {
            out.push_str(&rule.title);
            true
        }
        "severity" => {
            out.push_str(rule.severity.as_str());
            true
        }
        "ts" => write!(out, "{}", firing.ts).is_ok(),
        "first_ts" => write!(out, "{}", firing.first_ts).is_ok(),
        _ => {
            if let Some((_, value)) = group.iter().find(|(n, _)| &**n == name) {
                out.push_str(value);
                return true;
            }
            event.is_some_and(|ev| ev.get(field).write_text(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fingerprint("auth.x", "alice"), fingerprint("auth.x", "alice"));
        assert_ne!(fingerprint("auth.x", "alice"), fingerprint("auth.x", "bob"));
        assert_ne!(fingerprint("a", "bc"), fingerprint("ab", "c"));
        // Pinned: a change would break deduplication across versions.
        assert_eq!(fingerprint("auth.x", "alice"), "71b53caa3b8b10ce");
    }

    #[test]
    fn rounding() {
        assert_eq!(round(1.234567), 1.2346);
        assert_eq!(round(1e-9), 1e-9);
    }
}
