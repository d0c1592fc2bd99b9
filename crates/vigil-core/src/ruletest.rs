//! `vigil test`: runs every rule's inline `tests:`.
//!
//! Each test feeds its events through a fresh pipeline holding only its
//! rule, and compares the alerts with `expect:` in order: the number of
//! alerts must match, and each expected map's fields must equal the alert's
//! group values or top-level fields (`count`, `value`, `severity`, ...).
//! The input's end closes nothing but sends the updates of incidents that
//! went on; they are compared only when some expected alert names `update`
//! or `status`, so that a test about when a rule pages lists its pages.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::alert::Alert;
use crate::ruleset::{Rule, RuleSet, RuleTest};
use crate::time::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    pub rule: Arc<str>,
    pub name: String,
    pub failure: Option<String>,
}

pub fn run_all(rules: &RuleSet, lateness: Span) -> Vec<TestOutcome> {
    let mut outcomes = Vec::new();
    for rule in rules.all_rules() {
        for test in &rule.tests {
            outcomes.push(TestOutcome {
                rule: rule.id.clone(),
                name: test.name.clone(),
                failure: run_one(rules, rule, test, lateness).err(),
            });
        }
    }
    outcomes
}

/// Runs one test; `Err` says how it failed.
pub fn run_one(rules: &RuleSet, rule: &Arc<Rule>, test: &RuleTest, lateness: Span) -> Result<(), String> {
    let only = match test.site.as_deref() {
        Some(own) => own.only(own.all_rules().next().unwrap_or(rule)),
        None => rules.only(rule),
    };
    let mut pipeline = crate::pipeline::Pipeline::new(&only, lateness, crate::event::decode::DEFAULT_MAX_EVENT_BYTES);
    for (n, event) in test.events.iter().enumerate() {
        let line = event.to_string();
        // A test event vigil would refuse tests nothing: say so rather
        // than report a missing alert.
        if let Err(err) = pipeline.feed(line.as_bytes()) {
            return Err(format!("event {} is refused ({}): {line:.200}", n + 1, err.detail));
        }
    }
    pipeline.end_source(crate::time::watermark::SourceId::default());
    pipeline.finish();
    let updates = test.expect.iter().any(|e| e.contains_key("update") || e.contains_key("status"));
    let alerts: Vec<Alert> = pipeline.drain_alerts().filter(|a| updates || a.update == 0).collect();
    if alerts.len() != test.expect.len() {
        return Err(format!("expected {} alert(s), got {}{}", test.expect.len(), alerts.len(), describe(&alerts)));
    }
    for (i, (alert, expected)) in alerts.iter().zip(&test.expect).enumerate() {
        let actual = serde_json::to_value(alert).unwrap_or(Json::Null);
        for (name, want) in expected {
            let got = alert.group_value(name).map(|v| Json::String(v.to_owned())).or_else(|| actual.get(name).cloned());
            if !same(got.as_ref(), want) {
                let got = got.map_or_else(|| "nothing".to_owned(), |g| g.to_string());
                return Err(format!("alert {}: `{name}` is {got}, expected {want}{}", i + 1, describe(&alerts)));
            }
        }
    }
    Ok(())
}

fn same(got: Option<&Json>, want: &Json) -> bool {
    match (got, want) {
        (None, Json::Null) => true,
        (None, _) => false,
        (Some(Json::String(g)), Json::String(w)) => g == w,
        (Some(Json::String(g)), Json::Number(w)) => g.parse::<f64>().ok() == w.as_f64(),
        (Some(Json::Number(g)), Json::Number(w)) => g.as_f64() == w.as_f64(),
        (Some(Json::Number(g)), Json::String(w)) => w.parse::<f64>().ok() == g.as_f64(),
        (Some(g), w) => g == w,
    }
}

fn describe(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return String::new();
    }
    let list: Vec<String> = alerts.iter().map(|a| format!("[{}] {}", a.group_text(), a.summary)).collect();
    format!(": {}", list.join("; "))
}
