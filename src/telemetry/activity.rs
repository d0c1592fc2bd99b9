//! The activity the SOC's overview charts, counted per event as the
//! pipeline's [`Watch`]: logins by outcome, API calls by status class,
//! messages sent. It is the daemon's, not the core's, because it knows the
//! dashboard's fields; every label is from a fixed list.

use crate::event::{EventRef, FieldId, Schema};
use crate::pipeline::Watch;

/// `login.outcome` values counted by name; others count as `other`.
pub const LOGIN_OUTCOMES: &[&str] = &["success", "failure", "other"];
/// `api_call.status` classes; a missing or out-of-range status is `other`.
pub const STATUS_CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Counts of the well-known fields the SOC overview charts: every label is
/// from a fixed list, and no user, address, token or account is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity {
    pub logins: [u64; LOGIN_OUTCOMES.len()],
    pub api_calls: [u64; STATUS_CLASSES.len()],
    /// The sum of `message_volume.count` (non-negative numbers only).
    pub messages: u64,
    fields: ActivityFields,
}

/// The well-known fields' slots; every [`Schema`] has them.
#[derive(Debug, Clone, Copy)]
struct ActivityFields {
    outcome: FieldId,
    status: FieldId,
    count: FieldId,
}

impl Default for ActivityFields {
    /// Until [`Watch::schema`] tells the slots: the `kind` slot, which no
    /// counted value is read from.
    fn default() -> ActivityFields {
        ActivityFields { outcome: FieldId::KIND, status: FieldId::KIND, count: FieldId::KIND }
    }
}

impl ActivityFields {
    fn of(schema: &Schema) -> ActivityFields {
        let field = |path| schema.lookup(path).unwrap_or(FieldId::KIND);
        ActivityFields { outcome: field("outcome"), status: field("status"), count: field("count") }
    }
}

impl Watch for Activity {
    fn schema(&mut self, schema: &Schema) {
        self.fields = ActivityFields::of(schema);
    }

    fn event(&mut self, event: &EventRef<'_>) {
        let fields = self.fields;
        match event.kind {
            "login" => {
                let outcome = match event.get(fields.outcome).as_str() {
                    Some("success") => 0,
                    Some("failure") => 1,
                    _ => 2,
                };
                self.logins[outcome] += 1;
            }
            "api_call" => {
                let class = match event.get(fields.status).as_f64() {
                    Some(status) if (100.0..600.0).contains(&status) => (status / 100.0) as usize - 1,
                    _ => STATUS_CLASSES.len() - 1,
                };
                self.api_calls[class] += 1;
            }
            "message_volume" => {
                if let Some(count) = event.get(fields.count).as_f64().filter(|c| c.is_finite() && *c >= 0.0) {
                    self.messages = self.messages.saturating_add(count as u64);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::ruleset::{RuleSet, RuleSources};
    use crate::time::Span;

    #[test]
    fn activity_counts_login_outcomes_status_classes_and_messages() {
        let api = "id: api.any\ntitle: Any call\nseverity: warning\nfilter: {kind: api_call}\n\
            detect: {type: match}\nalert: {summary: call}\n";
        let files = vec![("r.yml".into(), api.to_owned())];
        let rules = RuleSet::compile(&RuleSources { files, ..RuleSources::default() }).unwrap();
        let mut p = Pipeline::new(&rules, Span::from_secs(60), 1 << 20).watched(Activity::default());
        let lines = [
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"a","outcome":"success"}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"a","outcome":"failure"}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"a"}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"api_call","status":200}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"api_call","status":503}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"api_call","status":99}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"api_call"}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"message_volume","account":"x","count":120}"#,
            r#"{"ts":"2026-11-23T10:00:00Z","kind":"message_volume","account":"x","count":30.7}"#,
        ];
        for line in lines {
            p.feed(line.as_bytes()).unwrap();
        }
        let negative = r#"{"ts":"2026-11-23T10:00:00Z","kind":"message_volume","account":"x","count":-5}"#;
        assert_eq!(p.feed(negative.as_bytes()).unwrap_err().reason, crate::event::decode::Reason::NegativeValue);
        let activity = p.watch();
        assert_eq!(activity.logins, [1, 1, 1]);
        assert_eq!(activity.api_calls, [0, 1, 0, 0, 1, 2]);
        assert_eq!(activity.messages, 150);
    }
}
