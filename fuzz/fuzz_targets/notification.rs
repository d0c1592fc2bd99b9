//! Fuzzes what notifiers do with attacker-controlled event content: an
//! evidence event (and group value) is redacted and rendered as an email
//! and in every webhook format.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil::alert::Alert;
use vigil::config::{DeliveryPolicy, Email, Redaction, Secret, SmtpTls, Webhook, WebhookFormat};
use vigil::notify::email::Mailer;
use vigil::notify::message::{Descriptions, Message};
use vigil::notify::redact::Redactor;
use vigil::notify::webhook::Poster;

static RENDERERS: OnceLock<(Mailer, Vec<Poster>)> = OnceLock::new();

fn renderers() -> (Mailer, Vec<Poster>) {
    let descriptions: Descriptions = Default::default();
    let email = Email {
        host: "localhost".into(),
        port: 25,
        tls: SmtpTls::None,
        ca: None,
        username: None,
        password: None,
        from: "vigil@example.com".into(),
        to: vec!["soc@example.com".into()],
        timezone: Some(chrono_tz::Europe::Berlin),
    };
    let mailer = Mailer::new(&email, &DeliveryPolicy::default(), descriptions.clone()).unwrap();
    let formats = [WebhookFormat::Generic, WebhookFormat::Slack, WebhookFormat::PagerDuty, WebhookFormat::Alertmanager];
    let posters = formats
        .into_iter()
        .map(|format| {
            let webhook = Webhook {
                format,
                url: Secret::Value("http://127.0.0.1:9/".into()),
                secret: None,
                routing_key: None,
                allow_http: true,
                ca: None,
                resolve_after: None,
            };
            Poster::new(&webhook, &DeliveryPolicy::default(), descriptions.clone()).unwrap()
        })
        .collect();
    (mailer, posters)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (value, event) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(evidence) = serde_json::value::RawValue::from_string(event.to_owned()) else { return };
    let mut alert: Alert = serde_json::from_value(serde_json::json!({
        "id": "a", "rule": "r", "title": "t", "severity": "critical", "group": {"user": value},
        "summary": format!("{value} did something"), "ts": "2026-11-23T10:00:00Z",
        "first_ts": "2026-11-23T10:00:00Z", "fingerprint": "f", "value": value
    }))
    .expect("a valid alert");
    alert.evidence = vec![evidence];
    let redactor = Redactor::new(vec![
        ("user".into(), Redaction::Mask),
        ("src_ip".into(), Redaction::Hash),
        ("a.b".into(), Redaction::Hash),
    ]);
    redactor.apply(&mut alert);
    let message = Message::single(alert);
    let (mailer, posters) = RENDERERS.get_or_init(renderers);
    let _ = mailer.compose(&message);
    for poster in posters {
        let _ = poster.body(&message);
    }
});
