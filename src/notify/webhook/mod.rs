//! Webhooks: an HTTP POST (HTTPS unless plain HTTP is allowed explicitly)
//! in one of four formats.
//!
//! - `generic`: vigil's alert JSON, signed per Standard Webhooks: headers
//!   `webhook-id` (the alert id, stable across retries, so a receiver can
//!   drop what it already has), `webhook-timestamp` and `webhook-signature:
//!   v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. Several alerts sent
//!   together are `{"alerts": [...], "unlisted": [...], "total": N}`.
//! - `slack`: an incoming-webhook message with blocks.
//! - `pagerduty`: an Events API v2 trigger whose `dedup_key` is the alert's
//!   fingerprint, so PagerDuty folds repeats and updates of one rule and
//!   group into one incident; an alert's `resolved` notice resolves it.
//! - `alertmanager`: `POST /api/v2/alerts` with labels `alertname`,
//!   `severity`, `rule` and the group values, so an existing Alertmanager
//!   groups, silences and routes them.
//!
//! A 2xx is success; 408, 429, 5xx, timeouts and connection failures are
//! retried; any other status is a permanent failure, reported and not
//! retried. Redirects are not followed: a signed body goes only where the
//! config says.

pub mod config;

use std::fmt::Write as _;

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::message::{times, Descriptions, Kind, Message};
use super::sink::Failure;
use crate::alert::Alert;
use crate::config::DeliveryPolicy;
pub use config::{Webhook, WebhookFormat, PAGERDUTY_EVENTS_URL};

pub struct Poster {
    client: reqwest::Client,
    url: String,
    /// Scheme, host and port only: what messages show, since a webhook
    /// URL often is the credential (Slack hook paths, `?token=`).
    shown: String,
    format: WebhookFormat,
    key: Option<Vec<u8>>,
    routing_key: Option<String>,
    resolve_after: Option<std::time::Duration>,
    descriptions: Descriptions,
}

impl Poster {
    pub fn new(webhook: &Webhook, policy: &DeliveryPolicy, descriptions: Descriptions) -> Result<Poster> {
        let mut url = webhook.url.read().context("the webhook URL")?;
        let parsed = reqwest::Url::parse(&url).with_context(|| "the webhook URL is not a URL".to_string())?;
        match parsed.scheme() {
            "https" => {}
            "http" if webhook.allow_http => {}
            _ => anyhow::bail!("the webhook URL must be https:// (or http:// with `allow_http: true`)"),
        }
        if webhook.format == WebhookFormat::Alertmanager && !url.ends_with("/api/v2/alerts") {
            url = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        }
        let mut client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .https_only(!webhook.allow_http);
        if let Some(ca) = &webhook.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading the CA file {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            client = client.add_root_certificate(cert);
        }
        let key = match &webhook.secret {
            Some(secret) => Some(signing_key(&secret.read().context("the webhook secret")?)?),
            None => None,
        };
        let routing_key = match &webhook.routing_key {
            Some(key) => Some(key.read().context("the PagerDuty routing key")?),
            None => None,
        };
        let shown = shown_url(&parsed);
        Ok(Poster {
            client: client.build().context("setting up the HTTP client")?,
            url,
            shown,
            format: webhook.format,
            key,
            routing_key,
            resolve_after: webhook.resolve_after,
            descriptions,
        })
    }

    pub async fn send(&self, message: &Message) -> Result<(), Failure> {
        let body = self.body(message);
        let mut request = self.client.post(&self.url).header("content-type", "application/json");
        if let Some(key) = &self.key {
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header("webhook-id", &message.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", sign(key, &message.id, timestamp, &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|err| Failure::Retry(format!("{}: {}", self.shown, error_chain(&err.without_url()))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the start of the body: a receiver must not make vigil buffer
        // whatever it sends.
        let mut response = response;
        let mut body = Vec::new();
        while body.len() < 1024 {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
        Err(failure(status.as_u16(), format!("HTTP {status}: {}", text.chars().take(300).collect::<String>())))
    }

    /// How long after its last alert a PagerDuty incident is resolved.
    pub fn resolves_after(&self) -> Option<std::time::Duration> {
        self.resolve_after.filter(|_| self.format == WebhookFormat::PagerDuty)
    }

    /// The request body. Serializing plain data (alerts hold their evidence
    /// as raw JSON text) cannot fail.
    pub fn body(&self, message: &Message) -> Vec<u8> {
        let value = match self.format {
            WebhookFormat::Generic => return generic(message),
            WebhookFormat::Slack => slack(message),
            WebhookFormat::PagerDuty => pagerduty(message, self.routing_key.as_deref().unwrap_or_default()),
            WebhookFormat::Alertmanager => alertmanager(message, &self.descriptions, self.resolve_after),
        };
        serde_json::to_vec(&value).expect("JSON values serialize")
    }
}

/// A non-2xx answer: a timeout (408), a rate limit (429) and server errors
/// may pass; any other refusal will not.
fn failure(status: u16, detail: String) -> Failure {
    match status {
        408 | 429 | 500..=599 => Failure::Retry(detail),
        _ => Failure::Permanent(detail),
    }
}

/// The key of a Standard Webhooks secret: `whsec_` and base64, or else the
/// secret's bytes as they are.
pub fn signing_key(secret: &str) -> Result<Vec<u8>> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).context("a `whsec_` secret must be base64 after the prefix"),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// `https://hooks.slack.com/…`: a URL without what may be secret in it.
fn shown_url(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Serialized from the alerts themselves, not through `serde_json::Value`:
/// evidence is raw event text, which may hold numbers no `Value` can
/// represent (`1e999`), and must reach the receiver unchanged.
fn generic(message: &Message) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Batch<'a> {
        kind: &'static str,
        total: u64,
        alerts: &'a [Alert],
        unlisted: &'a [super::message::RuleCount],
    }
    let bytes = match (message.kind, message.alerts.first()) {
        (Kind::Single, Some(alert)) => serde_json::to_vec(alert),
        (kind, _) => serde_json::to_vec(&Batch {
            kind: match kind {
                Kind::Held => "held",
                Kind::Resolve => "resolve",
                _ => "digest",
            },
            total: message.total(),
            alerts: &message.alerts,
            unlisted: &message.unlisted,
        }),
    };
    bytes.expect("alerts serialize")
}

/// Evidence events as JSON values for a format built as a `Value`; an
/// event no `Value` can hold (a number out of range) is given as its text.
fn evidence_values(alert: &Alert) -> Vec<Value> {
    alert
        .evidence
        .iter()
        .map(|raw| serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().to_owned())))
        .collect()
}

/// Slack's limits: a header of 150 characters, sections of 3,000, 50 blocks.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

fn slack(message: &Message) -> Value {
    let subject = message.subject();
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text", "text": clip(&subject, 150)}})];
    match (message.kind, message.alerts.first()) {
        (Kind::Single, Some(alert)) => {
            let mut fields = vec![
                json!({"type": "mrkdwn", "text": format!("*Rule*\n{}", alert.rule)}),
                json!({"type": "mrkdwn", "text": format!("*Time*\n{}", times(alert.ts, None))}),
            ];
            for (name, value) in alert.group.iter().take(8) {
                fields.push(json!({"type": "mrkdwn", "text": clip(&format!("*{name}*\n{value}"), 2000)}));
            }
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&alert.summary, 3000)}, "fields": fields}));
            if let Some(runbook) = &alert.runbook {
                blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{runbook}|Runbook>")}]}));
            }
        }
        _ => {
            let lines = message.lines();
            for chunk in lines.chunks(20).take(45) {
                blocks.push(
                    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&chunk.join("\n"), 3000)}}),
                );
            }
        }
    }
    json!({"text": subject, "blocks": blocks})
}

fn pagerduty(message: &Message, routing_key: &str) -> Value {
    match (message.kind, message.alerts.first()) {
        (Kind::Resolve, _) => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": message.id,
            "client": "vigil",
        }),
        (Kind::Single, Some(alert)) if alert.status == crate::alert::Status::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.fingerprint,
            "client": "vigil",
        }),
        (Kind::Single, Some(alert)) => {
            let mut details = serde_json::Map::new();
            for (name, value) in &alert.group {
                details.insert(name.to_string(), json!(value));
            }
            details.insert("rule".into(), json!(alert.rule));
            if let Some(count) = alert.count {
                details.insert("count".into(), json!(count));
            }
            if let Some(events) = alert.events {
                details.insert("events".into(), json!(events));
            }
            if alert.update > 0 {
                details.insert("update".into(), json!(alert.update));
            }
            if let Some(score) = alert.score {
                details.insert("score".into(), json!(score));
            }
            details.insert("alert_id".into(), json!(alert.id));
            details.insert("evidence".into(), Value::Array(evidence_values(alert)));
            let mut event = json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": alert.fingerprint,
                "client": "vigil",
                "payload": {
                    "summary": clip(&format!("{}: {}", alert.title, alert.summary), 1024),
                    "source": if alert.group.is_empty() { "vigil".to_owned() } else { alert.group_text() },
                    "severity": alert.severity.as_str(),
                    "timestamp": alert.ts,
                    "component": alert.rule,
                    "class": alert.title,
                    "custom_details": details,
                },
            });
            if let Some(runbook) = &alert.runbook {
                event["links"] = json!([{"href": runbook, "text": "Runbook"}]);
            }
            event
        }
        _ => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": message.id,
            "client": "vigil",
            "payload": {
                "summary": clip(&message.subject(), 1024),
                "source": "vigil",
                "severity": message.severity().as_str(),
                "custom_details": {"alerts": message.lines()},
            },
        }),
    }
}

/// A label name as Prometheus allows it: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

fn am_alert(alert: &Alert, descriptions: &Descriptions, ends_at: Option<&str>) -> Value {
    let mut labels = serde_json::Map::new();
    for (name, value) in &alert.group {
        labels.insert(label_name(name), json!(value));
    }
    labels.insert("alertname".into(), json!(alert.title));
    labels.insert("severity".into(), json!(alert.severity.as_str()));
    labels.insert("rule".into(), json!(alert.rule));
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), json!(alert.summary));
    annotations.insert("alert_id".into(), json!(alert.id));
    if let Some(description) = descriptions.get(&alert.rule) {
        annotations.insert("description".into(), json!(&*description));
    }
    if let Some(runbook) = &alert.runbook {
        annotations.insert("runbook_url".into(), json!(runbook));
    }
    let mut value =
        json!({"labels": labels, "annotations": annotations, "startsAt": alert.first_ts, "generatorURL": ""});
    if let Some(ends_at) = ends_at {
        value["endsAt"] = json!(ends_at);
    }
    value
}

/// Without `resolve_after`, Alertmanager resolves the alerts after its own
/// `resolve_timeout`.
fn alertmanager(message: &Message, descriptions: &Descriptions, resolve_after: Option<std::time::Duration>) -> Value {
    let ends_at = resolve_after.and_then(|after| {
        let at = chrono::Utc::now() + chrono::Duration::from_std(after).ok()?;
        Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    });
    let mut alerts: Vec<Value> = message
        .alerts
        .iter()
        .map(|a| {
            // The last notice of an incident ends the alert at its last event.
            let ended = (a.status == crate::alert::Status::Resolved).then(|| a.ts.to_string());
            am_alert(a, descriptions, ended.as_deref().or(ends_at.as_deref()))
        })
        .collect();
    if message.unlisted_total() > 0 {
        let text: Vec<String> = message.unlisted.iter().map(|c| format!("{} × {}", c.count, c.title)).collect();
        alerts.push(json!({
            "labels": {"alertname": "vigil alerts held back", "severity": message.severity().as_str(), "rule": "vigil.held_back"},
            "annotations": {"summary": format!("{} more alerts: {}", message.unlisted_total(), text.join(", "))},
        }));
    }
    Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::alert;
    use crate::rules::Severity;

    #[tokio::test]
    async fn a_failed_delivery_names_the_host_never_the_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("http://user:pa55@127.0.0.1:{port}/services/T000/B000/XXXXSECRETPATH?token=SECRETTOKEN");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), &url).unwrap();
        let webhook = Webhook {
            format: WebhookFormat::Slack,
            url: crate::config::Secret::File(dir.path().join("url")),
            secret: None,
            routing_key: None,
            allow_http: true,
            ca: None,
            resolve_after: None,
        };
        let poster = Poster::new(&webhook, &DeliveryPolicy::default(), Descriptions::default()).unwrap();
        let Err(Failure::Retry(reason)) = poster.send(&Message::single(alert("a1", Severity::Critical, "alice"))).await
        else {
            panic!("a closed port is a failure to retry");
        };
        for secret in ["SECRET", "pa55", "services", "token"] {
            assert!(!reason.contains(secret), "{secret} in {reason}");
        }
        assert!(reason.starts_with(&format!("http://127.0.0.1:{port}/…: ")), "{reason}");
    }

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The example in the Standard Webhooks specification (and its
        // reference libraries' tests).
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(signing_key("plain").unwrap(), b"plain");
        assert!(signing_key("whsec_not base64!").is_err());
    }

    #[test]
    fn an_incident_that_ended_resolves_in_pagerduty_and_alertmanager() {
        let mut a = alert("a1", Severity::Critical, "alice");
        a.update = 1;
        a.status = crate::alert::Status::Resolved;
        let message = Message::single(a);
        let pd = pagerduty(&message, "key");
        assert_eq!((pd["event_action"].as_str(), pd["dedup_key"].as_str()), (Some("resolve"), Some("f00")));
        let am = alertmanager(&message, &Descriptions::default(), None);
        assert_eq!(am[0]["endsAt"], "2026-11-23T10:00:00Z");
        assert_eq!(am[0]["annotations"]["alert_id"], "a1", "the alert's own id, for every notice");
    }

    #[test]
    fn evidence_no_json_value_can_hold_still_renders() {
        let mut a = alert("a1", Severity::Critical, "alice");
        let huge = r#"{"user":"alice","n":9e99009}"#;
        a.evidence = vec![serde_json::value::RawValue::from_string(huge.into()).unwrap()];
        let message = Message::single(a);
        let body = String::from_utf8(generic(&message)).unwrap();
        assert!(body.contains(huge), "the raw event, unchanged: {body}");
        let pd = pagerduty(&message, "key");
        assert_eq!(pd["payload"]["custom_details"]["evidence"][0], huge);
    }

    #[test]
    fn only_timeouts_rate_limits_and_server_errors_are_retried() {
        for status in [408, 429, 500, 502, 503, 599] {
            assert!(matches!(failure(status, String::new()), Failure::Retry(_)), "{status}");
        }
        for status in [300, 301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(matches!(failure(status, String::new()), Failure::Permanent(_)), "{status}");
        }
    }

    #[test]
    fn formats_carry_what_each_receiver_needs() {
        let message = Message::single(alert("a1", Severity::Critical, "alice"));
        let pd = pagerduty(&message, "key");
        assert_eq!(pd["dedup_key"], "f00");
        assert_eq!(pd["payload"]["severity"], "critical");
        assert_eq!(pd["payload"]["source"], "user=alice");
        assert_eq!(pd["links"][0]["href"], "https://runbooks.example/auth");
        let am = alertmanager(&message, &Descriptions::default(), None);
        assert_eq!(am[0]["labels"]["alertname"], "Multiple failed logins");
        assert_eq!(am[0]["labels"]["rule"], "auth.failed_login_burst");
        assert_eq!(am[0]["labels"]["user"], "alice");
        let slack = slack(&message);
        assert_eq!(slack["text"], "[CRITICAL] Multiple failed logins: alice");
        assert_eq!(slack["blocks"][0]["type"], "header");
        let body: Value = serde_json::from_slice(&generic(&message)).unwrap();
        assert_eq!(body["id"], "a1");
        let resolve = pagerduty(&Message::resolve("f00"), "key");
        assert_eq!((resolve["event_action"].as_str(), resolve["dedup_key"].as_str()), (Some("resolve"), Some("f00")));
        let ends = alertmanager(&message, &Descriptions::default(), Some(std::time::Duration::from_secs(3600)));
        assert!(ends[0]["endsAt"].is_string());
        assert_eq!(label_name("device.id"), "device_id");
        assert_eq!(label_name("1x"), "_1x");
    }
}
