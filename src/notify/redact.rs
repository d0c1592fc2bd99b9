//! Redaction per notifier: an email to a wide list or a chat channel need
//! not carry user names, addresses or device ids. A redacted field is
//! replaced wherever the alert shows it: group values, the summary, the
//! `value` of a new-value alert and the evidence events (dotted names reach
//! into nested objects).
//!
//! `hash` keeps values joinable (the same user gives the same hash in every
//! alert) without showing them. It is an unkeyed SHA-256, so a value from a
//! small set (an IPv4 address) can be found by trying them all: use `mask`
//! where that matters.

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::alert::Alert;
use crate::config::Redaction;

pub struct Redactor {
    fields: Vec<(String, Redaction)>,
}

/// What replaces an evidence event that cannot be redacted.
const WITHHELD: &str = r#""event withheld: it could not be parsed for redaction""#;

/// Values shorter than this are not searched for in the summary: they
/// would match inside unrelated words.
const MIN_REPLACED_LEN: usize = 3;

impl Redactor {
    pub fn new(fields: Vec<(String, Redaction)>) -> Redactor {
        Redactor { fields }
    }

    pub fn apply(&self, alert: &mut Alert) {
        if self.fields.is_empty() {
            return;
        }
        let mut replaced: Vec<(String, String)> = Vec::new();
        for (name, value) in &mut alert.group {
            if let Some((_, how)) = self.fields.iter().find(|(f, _)| **f == **name) {
                let new = redact(value, *how);
                replaced.push((std::mem::replace(value, new.clone()), new));
            }
        }
        for raw in &mut alert.evidence {
            let Ok(mut event) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
                // An event no `Value` can hold (a number out of range) cannot
                // be redacted field by field: it is withheld whole.
                *raw = RawValue::from_string(WITHHELD.into()).expect("a JSON string");
                continue;
            };
            let mut changed = false;
            for (field, how) in &self.fields {
                let Some(slot) = event.pointer_mut(&format!("/{}", field.replace('.', "/"))) else { continue };
                let original = match &*slot {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => continue,
                    other => other.to_string(),
                };
                let new = redact(&original, *how);
                *slot = serde_json::Value::String(new.clone());
                replaced.push((original, new));
                changed = true;
            }
            if changed {
                if let Ok(text) = serde_json::to_string(&event) {
                    if let Ok(new) = RawValue::from_string(text) {
                        *raw = new;
                    }
                }
            }
        }
        replaced.sort_by_key(|(original, _)| std::cmp::Reverse(original.len()));
        replaced.dedup();
        for (original, new) in &replaced {
            if original.len() >= MIN_REPLACED_LEN && alert.summary.contains(original.as_str()) {
                alert.summary = alert.summary.replace(original.as_str(), new);
            }
            if alert.value.as_deref() == Some(original.as_str()) {
                alert.value = Some(new.clone());
            }
        }
    }
}

fn redact(value: &str, how: Redaction) -> String {
    match how {
        Redaction::Hash => {
            let digest = Sha256::digest(value.as_bytes());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        }
        Redaction::Mask => match value.rsplit_once('@') {
            Some((_, domain)) if !domain.is_empty() => format!("***@{domain}"),
            _ => "***".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::alert;
    use crate::rules::Severity;

    #[test]
    fn hides_a_field_everywhere_the_alert_shows_it() {
        let mut a = alert("a", Severity::Warning, "alice@corp.example");
        let redactor = Redactor::new(vec![
            ("user".into(), Redaction::Mask),
            ("src_ip".into(), Redaction::Hash),
            ("device.id".into(), Redaction::Mask),
        ]);
        redactor.apply(&mut a);
        let text = serde_json::to_string(&a).unwrap();
        for secret in ["alice", "203.0.113.9", "\"d1\""] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        assert_eq!(a.group_value("user"), Some("***@corp.example"));
        assert_eq!(a.summary, "5 failed logins for ***@corp.example");
        let hashed = redact("203.0.113.9", Redaction::Hash);
        assert_eq!(hashed.len(), 16);
        assert!(text.contains(&hashed), "the same value hashes the same everywhere");

        let mut odd = alert("b", Severity::Warning, "bob");
        odd.evidence = vec![RawValue::from_string(r#"{"user":"bob","n":1e999}"#.into()).unwrap()];
        redactor.apply(&mut odd);
        assert_eq!(odd.evidence[0].get(), WITHHELD, "an event that cannot be redacted is not sent");
    }
}
