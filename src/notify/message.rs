//! What one notification says: one alert, or several sent together because
//! a route's rate limit held them back or because they wait for a digest.
//! Every format (email, Slack, PagerDuty, Alertmanager, JSON) renders this.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::alert::Alert;
use crate::rules::Severity;
use crate::time::Timestamp;

/// Rule id → the rule's description, which messages show and the alert
/// log does not repeat in every alert. A rule reload replaces them.
pub type Descriptions = Arc<RuleDescriptions>;

#[derive(Debug, Default)]
pub struct RuleDescriptions(std::sync::RwLock<Arc<std::collections::HashMap<Arc<str>, Arc<str>>>>);

impl RuleDescriptions {
    pub fn of(rules: &crate::ruleset::RuleSet) -> RuleDescriptions {
        let descriptions = RuleDescriptions::default();
        descriptions.replace(rules);
        descriptions
    }

    pub fn from_map(map: std::collections::HashMap<Arc<str>, Arc<str>>) -> RuleDescriptions {
        RuleDescriptions(std::sync::RwLock::new(Arc::new(map)))
    }

    pub fn get(&self, rule: &str) -> Option<Arc<str>> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(rule).cloned()
    }

    pub fn replace(&self, rules: &crate::ruleset::RuleSet) {
        let map = rules.rules.iter().filter_map(|r| r.description.clone().map(|d| (r.id.clone(), d))).collect();
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(map);
    }
}

/// Alerts listed in full in one message; beyond that they are counted
/// per rule.
pub const LISTED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Single,
    /// Alerts over a route's rate limit.
    Held,
    /// The periodic digest.
    Digest {
        every: Duration,
    },
    /// The end of the incident of one fingerprint (PagerDuty).
    Resolve,
}

/// Alerts of one rule that a message counts without listing them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCount {
    pub rule: Arc<str>,
    pub title: Arc<str>,
    pub severity: Severity,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct Message {
    /// Stable across retries and restarts: the webhook id and the
    /// idempotency key downstream.
    pub id: String,
    pub kind: Kind,
    pub alerts: Vec<Alert>,
    /// Alerts not listed, by rule.
    pub unlisted: Vec<RuleCount>,
    /// The route that held the alerts back (for `Held`).
    pub route: String,
}

impl Message {
    /// One alert's notice; an update of an alert has an id of its own
    /// (`id.N`), the alert's id being in its body.
    pub fn single(alert: Alert) -> Message {
        Message {
            id: alert.notice_id(),
            kind: Kind::Single,
            alerts: vec![alert],
            unlisted: Vec::new(),
            route: String::new(),
        }
    }

    /// Alerts for a receiver that stores each as a record of its own (a
    /// file, a Kafka topic): sent together only to save round trips.
    pub fn records(alerts: Vec<Alert>) -> Message {
        Message {
            id: alerts.first().map(Alert::notice_id).unwrap_or_default(),
            kind: Kind::Single,
            alerts,
            unlisted: Vec::new(),
            route: String::new(),
        }
    }

    /// Resolves the incident of a rule and group, named by its fingerprint.
    pub fn resolve(fingerprint: &str) -> Message {
        Message {
            id: fingerprint.to_owned(),
            kind: Kind::Resolve,
            alerts: Vec::new(),
            unlisted: Vec::new(),
            route: String::new(),
        }
    }

    /// A message for several alerts, listing the first [`LISTED`].
    pub fn batch(kind: Kind, route: String, alerts: Vec<Alert>, unlisted: Vec<RuleCount>) -> Message {
        let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        let total: u64 = unlisted.iter().map(|c| c.count).sum();
        let seed = format!("{}/{total}", ids.join(","));
        let id = format!("batch-{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()));
        Message { id, kind, alerts, unlisted, route }
    }

    pub fn total(&self) -> u64 {
        self.alerts.len() as u64 + self.unlisted.iter().map(|c| c.count).sum::<u64>()
    }

    pub fn severity(&self) -> Severity {
        let listed = self.alerts.iter().map(|a| a.severity);
        listed.chain(self.unlisted.iter().map(|c| c.severity)).max().unwrap_or(Severity::Warning)
    }

    pub fn unlisted_total(&self) -> u64 {
        self.unlisted.iter().map(|c| c.count).sum()
    }

    /// `[CRITICAL] Multiple failed logins: alice@corp.example`, or a count
    /// for several alerts.
    pub fn subject(&self) -> String {
        let label = self.severity().as_str().to_ascii_uppercase();
        match (self.kind, self.alerts.first()) {
            (Kind::Single, Some(alert)) => {
                let values: Vec<&str> = alert.group.iter().map(|(_, v)| v.as_str()).collect();
                let mut subject = if values.is_empty() {
                    format!("[{label}] {}", alert.title)
                } else {
                    format!("[{label}] {}: {}", alert.title, values.join(", "))
                };
                if let Some(label) = alert.notice_label() {
                    let _ = write!(subject, " ({label})");
                }
                subject
            }
            (Kind::Resolve, _) => format!("[RESOLVED] {}", self.id),
            (Kind::Digest { every }, _) => {
                format!(
                    "[{label}] vigil digest: {} alerts in the last {}",
                    self.total(),
                    humantime::format_duration(every)
                )
            }
            _ => format!("[{label}] {} alerts held back by the rate limit of {}", self.total(), self.route),
        }
    }

    /// One line per listed alert and per unlisted rule, for plain text.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.alerts.iter().map(one_line).collect();
        for count in &self.unlisted {
            lines.push(format!("… and {} more of {} ({})", count.count, count.title, count.rule));
        }
        lines
    }
}

/// `2026-11-23T10:00:00Z CRITICAL auth.failed_login_burst [user=alice]: 5 failed logins`
pub fn one_line(alert: &Alert) -> String {
    let group = alert.group_text();
    let mut line = format!("{} {} {}", alert.ts, alert.severity.as_str().to_ascii_uppercase(), alert.rule);
    if !group.is_empty() {
        let _ = write!(line, " [{group}]");
    }
    let _ = write!(line, ": {}", alert.summary);
    line
}

/// A time in UTC and, if one is configured, in the display timezone.
pub fn times(ts: Timestamp, timezone: Option<chrono_tz::Tz>) -> String {
    let utc = ts.to_datetime();
    let mut text = utc.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    if let Some(tz) = timezone {
        let local = utc.with_timezone(&tz);
        let _ = write!(text, " ({} {})", local.format("%Y-%m-%d %H:%M:%S"), tz.name());
    }
    text
}

/// The evidence events as a table: the columns are the union of their
/// top-level fields in first-seen order (nested values as JSON).
pub fn evidence_table(alert: &Alert) -> (Vec<String>, Vec<Vec<String>>) {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<(String, serde_json::Value)>> = Vec::new();
    for raw in &alert.evidence {
        let Ok(Fields(fields)) = serde_json::from_str::<Fields>(raw.get()) else { continue };
        for (key, _) in &fields {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
        rows.push(fields);
    }
    let cells = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match row.iter().find(|(k, _)| k == c).map(|(_, v)| v) {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect();
    (columns, cells)
}

/// A JSON object's fields in the order they were written.
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn alert(id: &str, severity: Severity, user: &str) -> Alert {
        serde_json::from_value(serde_json::json!({
            "id": id, "rule": "auth.failed_login_burst", "title": "Multiple failed logins", "severity": severity,
            "group": {"user": user}, "summary": format!("5 failed logins for {user}"),
            "ts": "2026-11-23T10:00:00Z", "first_ts": "2026-11-23T09:58:00Z", "count": 5,
            "tags": ["auth"], "runbook": "https://runbooks.example/auth",
            "fingerprint": "f00", "raised_at": "2026-11-23T10:00:01Z",
        }))
        .map(|mut a: Alert| {
            // Raw text, as the engine keeps it: fields in the order written.
            a.evidence = [
                format!(r#"{{"ts":"2026-11-23T09:58:00Z","kind":"login","user":"{user}","src_ip":"203.0.113.9","success":false}}"#),
                format!(r#"{{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"{user}","src_ip":"203.0.113.9","success":false,"device":{{"id":"d1"}}}}"#),
            ]
            .into_iter()
            .map(|line| serde_json::value::RawValue::from_string(line).unwrap())
            .collect();
            a
        })
        .unwrap()
    }

    #[test]
    fn an_update_has_a_notice_id_of_its_own_and_says_so_in_the_subject() {
        let mut update = alert("a1", Severity::Critical, "alice");
        update.update = 2;
        let message = Message::single(update.clone());
        assert_eq!(message.id, "a1.2");
        assert_eq!(message.subject(), "[CRITICAL] Multiple failed logins: alice (update 2)");
        update.update = 3;
        update.status = crate::alert::Status::Resolved;
        assert_eq!(Message::single(update).subject(), "[CRITICAL] Multiple failed logins: alice (resolved)");
        assert_eq!(Message::single(alert("a1", Severity::Critical, "alice")).id, "a1");
    }

    #[test]
    fn subjects_name_severity_title_and_group() {
        let single = Message::single(alert("a", Severity::Critical, "alice@corp.example"));
        assert_eq!(single.subject(), "[CRITICAL] Multiple failed logins: alice@corp.example");
        let unlisted = vec![RuleCount { rule: "x".into(), title: "X".into(), severity: Severity::Warning, count: 40 }];
        let held =
            Message::batch(Kind::Held, "route 2".into(), vec![alert("b", Severity::Warning, "bob")], unlisted.clone());
        assert_eq!(held.total(), 41);
        assert_eq!(held.subject(), "[WARNING] 41 alerts held back by the rate limit of route 2");
        assert_eq!(held.lines().last().unwrap(), "… and 40 more of X (x)");
        let again =
            Message::batch(Kind::Held, "route 2".into(), vec![alert("b", Severity::Warning, "bob")], unlisted.clone());
        assert_eq!(held.id, again.id, "batch ids are stable across retries");
    }

    #[test]
    fn times_show_utc_and_the_display_timezone() {
        let ts = Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(times(ts, None), "2026-11-23 10:00:00 UTC");
        let berlin = "Europe/Berlin".parse().ok();
        assert_eq!(times(ts, berlin), "2026-11-23 10:00:00 UTC (2026-11-23 11:00:00 Europe/Berlin)");
    }

    #[test]
    fn the_evidence_table_has_the_union_of_fields() {
        let (columns, rows) = evidence_table(&alert("a", Severity::Warning, "alice"));
        assert_eq!(columns, ["ts", "kind", "user", "src_ip", "success", "device"]);
        assert_eq!(rows[0][5], "");
        assert_eq!(rows[1][5], r#"{"id":"d1"}"#);
    }
}
