//! Criterion benches of the delivery path, per alert: the alert log as
//! outbox (append + fsync, one alert or a batch; a notifier reading and
//! parsing it back), and rendering a notification (redaction, email MIME,
//! a signed generic webhook body, Slack, PagerDuty), and the file
//! notifier's send (one alert, a record batch).
//! `cargo bench --bench notify`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vigil::alert::Alert;
use vigil::config::{
    DeliveryPolicy, Email, Notifier, NotifierKind, OutputFormat, Redaction, Secret, SmtpTls, Webhook, WebhookFormat,
};
use vigil::notify::email::Mailer;
use vigil::notify::message::{Descriptions, Message};
use vigil::notify::redact::Redactor;
use vigil::notify::sink::Sink;
use vigil::notify::webhook::{sign, signing_key, Poster};
use vigil::state::alert_log::{AlertLog, LogLimits, LogReader, Position};

const LOGIN: &str = r#"{"country":"DE","device_id":"dev-alice-1","kind":"login","mfa":true,"outcome":"failure","role":"agent","src_ip":"203.0.113.10","ts":"2026-11-09T08:01:00Z","user":"alice@acme.example","user_agent":"Mozilla/5.0"}"#;

/// A failed-login burst alert with 10 evidence events, as the shipped rule
/// raises it.
fn alert(id: usize) -> Alert {
    let mut alert: Alert = serde_json::from_value(serde_json::json!({
        "id": format!("{id:032x}"), "rule": "auth.failed_login_burst", "title": "Multiple failed logins for one user",
        "severity": "critical", "group": {"user": "alice@acme.example"},
        "summary": "5 failed logins for alice@acme.example within 5m (last from 203.0.113.10)",
        "ts": "2026-11-09T08:01:00Z", "first_ts": "2026-11-09T08:00:00Z", "count": 5,
        "tags": ["attack.credential_access", "attack.t1110.001"],
        "runbook": "https://runbooks.acme.example/vigil/auth.failed_login_burst",
        "fingerprint": "0123456789abcdef", "raised_at": "2026-11-09T08:01:00.2Z"
    }))
    .unwrap();
    alert.evidence = (0..10).map(|_| serde_json::value::RawValue::from_string(LOGIN.to_owned()).unwrap()).collect();
    alert
}

fn outbox(c: &mut Criterion) {
    // Bounded, so the many iterations do not fill the disk.
    let limits = LogLimits { segment_bytes: 16 << 20, max_bytes: 64 << 20 };
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path(), limits).unwrap();
    let mut next = 0usize;
    let mut group = c.benchmark_group("outbox");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    group.bench_function("append + fsync, one alert", |b| {
        b.iter(|| {
            next += 1;
            log.append(&alert(next));
            log.sync().unwrap();
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("append + fsync, 100 alerts", |b| {
        b.iter(|| {
            for _ in 0..100 {
                next += 1;
                log.append(&alert(next));
            }
            log.sync().unwrap();
        })
    });

    const READ: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path(), limits).unwrap();
    for id in 0..READ as usize {
        log.append(&alert(id));
    }
    log.sync().unwrap();
    let outbox = log.outbox();
    group.sample_size(10);
    group.throughput(Throughput::Elements(READ));
    group.bench_function(format!("read + parse back, {READ} alerts"), |b| {
        b.iter(|| {
            let mut reader = LogReader::new(outbox.clone(), Position { segment: 1, offset: 0 });
            let mut line = Vec::new();
            let mut count = 0u64;
            while reader.next_line(&mut line).unwrap() {
                count += serde_json::from_slice::<Alert>(&line).map_or(0, |_| 1);
            }
            assert_eq!(count, READ);
        })
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    let descriptions: Descriptions = Default::default();
    let email = Email {
        host: "localhost".into(),
        port: 25,
        tls: SmtpTls::None,
        ca: None,
        username: None,
        password: None,
        from: "vigil@acme.example".into(),
        to: vec!["oncall@acme.example".into()],
        timezone: Some(chrono_tz::Europe::Berlin),
    };
    let mailer = Mailer::new(&email, &DeliveryPolicy::default(), descriptions.clone()).unwrap();
    let poster = |format| {
        let webhook = Webhook {
            format,
            url: Secret::Value("https://example.com/hook".into()),
            secret: None,
            routing_key: None,
            allow_http: false,
            ca: None,
            resolve_after: None,
        };
        Poster::new(&webhook, &DeliveryPolicy::default(), descriptions.clone()).unwrap()
    };
    let (generic, slack, pagerduty) =
        (poster(WebhookFormat::Generic), poster(WebhookFormat::Slack), poster(WebhookFormat::PagerDuty));
    let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let message = Message::single(alert(1));
    let redactor = Redactor::new(vec![("user".into(), Redaction::Mask), ("src_ip".into(), Redaction::Hash)]);

    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("redact user and src_ip (10 evidence events)", |b| {
        b.iter_batched(|| alert(1), |mut a| redactor.apply(black_box(&mut a)), BatchSize::SmallInput)
    });
    group.bench_function("email: text + HTML MIME", |b| {
        b.iter(|| mailer.compose(black_box(&message)).map(|m| m.formatted().len()))
    });
    group.bench_function("generic webhook: body + signature", |b| {
        b.iter(|| {
            let body = generic.body(black_box(&message));
            sign(&key, &message.id, 1_800_000_000, &body)
        })
    });
    group.bench_function("slack body", |b| b.iter(|| slack.body(black_box(&message)).len()));
    group.bench_function("pagerduty body", |b| b.iter(|| pagerduty.body(black_box(&message)).len()));
    group.finish();
}

/// The file notifier's send: the message's lines in one write, then
/// fdatasync; one alert (as every send was before record batches) and a
/// record batch of 512.
fn file_sink(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let notifier = Notifier {
        name: "archive".into(),
        kind: NotifierKind::File { path: Some(dir.path().join("archive.jsonl")), format: OutputFormat::Json },
        redact: Vec::new(),
        delivery: DeliveryPolicy::default(),
    };
    let mut sink = Sink::new(&notifier, &Descriptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let timeout = std::time::Duration::from_secs(10);
    let one = Message::single(alert(1));
    let batch = Message::records((0..512).map(alert).collect());
    let mut group = c.benchmark_group("file notifier");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    group.bench_function("send + fdatasync, one alert", |b| {
        b.iter(|| runtime.block_on(sink.send(&one, timeout)).map_err(|_| ()).unwrap())
    });
    group.throughput(Throughput::Elements(512));
    group.bench_function("send + fdatasync, 512 alerts", |b| {
        b.iter(|| runtime.block_on(sink.send(&batch, timeout)).map_err(|_| ()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, outbox, render, file_sink);
criterion_main!(benches);
