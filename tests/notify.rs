//! Alert delivery against real receivers: aiosmtpd (STARTTLS, implicit
//! TLS, AUTH), an HTTP server that verifies Standard Webhooks signatures
//! and fails on demand, and Prometheus Alertmanager. The daemon reads events
//! on stdin; rules are written for each test.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::daemon::{http_get, metric, start, terminate, wait_metrics};
use common::notify::{certs, free_port, signature_is_valid, Alertmanager, Receiver, Reply, Smtp, SMTP_PASSWORD};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const RULES: &str = r#"id: test.login
title: Multiple failed logins
severity: critical
description: A failed login, as a stand-in for any critical rule.
tags: [auth]
runbook: https://runbooks.example/test.login
filter: {kind: login, outcome: failure}
detect: {type: match, group_by: [user]}
alert:
  summary: "failed login for {{user}} from {{src_ip}}"
  evidence: 1
---
id: test.setting
title: Setting changed
severity: warning
filter: {kind: setting_change}
detect: {type: match, group_by: [user]}
alert:
  summary: "{{user}} changed {{setting}} from {{src_ip}}"
"#;

/// A state and rules directory, and the secrets as files.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/test.yml"), RULES).unwrap();
        std::fs::write(dir.path().join("webhook-secret"), SECRET).unwrap();
        std::fs::write(dir.path().join("smtp-password"), SMTP_PASSWORD).unwrap();
        std::fs::write(dir.path().join("routing-key"), "R0UT1NGKEY\n").unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A daemon config reading stdin, with these notifiers and routes.
    fn config(&self, notifiers: &str, routes: &str) -> String {
        format!(
            "rules: {}\nsource: {{type: stdin}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\n\
             state: {{dir: {}}}\nnotifiers:\n{notifiers}\n{routes}",
            self.path("rules"),
            self.path("state"),
        )
    }

    fn email(&self, name: &str, port: u16, tls: &str, extra: &str) -> String {
        format!(
            "  {name}: {{type: email, host: 127.0.0.1, port: {port}, tls: {tls}, ca: {}, username: vigil, \
             password_file: {}, from: vigil@corp.example, to: [oncall@corp.example, soc@corp.example]{extra}}}\n",
            self.path("ca.pem"),
            self.path("smtp-password"),
        )
    }

    fn hook(&self, name: &str, url: &str, extra: &str) -> String {
        format!(
            "  {name}: {{type: webhook, url: \"{url}\", allow_http: true, secret_file: {}{extra}}}\n",
            self.path("webhook-secret")
        )
    }
}

fn ts(second: u64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap();
    (base + chrono::Duration::seconds(second as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn failed_login(user: &str, second: u64) -> String {
    format!(
        r#"{{"ts":"{}","kind":"login","user":"{user}","outcome":"failure","src_ip":"198.51.100.7","device_id":"d-{user}"}}"#,
        ts(second)
    )
}

fn setting_change(user: &str, second: u64) -> String {
    format!(
        r#"{{"ts":"{}","kind":"setting_change","user":"{user}","setting":"mfa","src_ip":"198.51.100.7"}}"#,
        ts(second)
    )
}

fn feed(stdin: &mut impl Write, lines: &[String]) {
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parse(mail: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default().parse(mail).expect("a MIME message")
}

#[test]
fn email_goes_over_starttls_or_implicit_tls_with_auth_and_carries_text_and_html() {
    let setup = Setup::new();
    let certs = certs(setup.dir.path());
    let starttls = Smtp::start(free_port(), "starttls", &certs, &setup.dir.path().join("mail-starttls"));
    let implicit = Smtp::start(free_port(), "tls", &certs, &setup.dir.path().join("mail-tls"));
    std::fs::write(setup.dir.path().join("wrong-password"), "nope").unwrap();
    let notifiers = [
        setup.email("oncall", starttls.port, "starttls", ", timezone: Europe/Berlin"),
        setup.email("smtps", implicit.port, "tls", ""),
        setup
            .email("badauth", starttls.port, "starttls", ", retry: {initial: 100ms, max: 200ms}")
            .replace("smtp-password", "wrong-password"),
    ]
    .concat();
    let (mut child, _lines, addr, _dir) = start(&setup.config(&notifiers, ""), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    feed(&mut stdin, &[failed_login("alice@corp.example", 0)]);

    let mail = starttls.wait_messages(1, Duration::from_secs(30)).remove(0);
    let message = parse(&mail);
    assert_eq!(message.subject(), Some("[CRITICAL] Multiple failed logins: alice@corp.example"));
    let to: Vec<&str> = message.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, ["oncall@corp.example", "soc@corp.example"]);
    let text = message.body_text(0).unwrap();
    for needle in [
        "failed login for alice@corp.example from 198.51.100.7",
        "Rule:      Multiple failed logins (test.login)",
        "2026-11-23 10:00:00 UTC (2026-11-23 11:00:00 Europe/Berlin)",
        "Runbook:   https://runbooks.example/test.login",
        "A failed login, as a stand-in for any critical rule.",
        "Evidence (1 events):",
        "d-alice@corp.example",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the text part:\n{text}");
    }
    let html = message.body_html(0).unwrap();
    assert!(html.contains("<th>device_id</th>"), "the evidence as a table:\n{html}");
    assert!(html.contains("href=\"https://runbooks.example/test.login\""), "{html}");

    let over_tls = implicit.wait_messages(1, Duration::from_secs(30));
    assert_eq!(parse(&over_tls[0]).subject(), message.subject());

    // A refused login (535) is the config, not the alert: retried (the
    // alert waits for a fixed password), while the others deliver.
    let metrics = wait_metrics(&addr, "badauth retried", |m| {
        metric(m, r#"vigil_notifications_total{notifier="badauth",result="retried"}"#).is_some_and(|r| r >= 2.0)
    });
    assert_eq!(metric(&metrics, r#"vigil_notifications_total{notifier="oncall",result="sent"}"#), Some(1.0));
    assert_eq!(
        metric(&metrics, r#"vigil_notifications_total{notifier="badauth",result="failed"}"#),
        Some(0.0),
        "present at zero: never refused"
    );
    assert_eq!(metric(&metrics, r#"vigil_outbox_pending_alerts{notifier="badauth"}"#), Some(1.0));
    assert_eq!(starttls.messages().len(), 1, "the wrong password sent nothing");
    drop(stdin);
    assert!(terminate(&mut child).success());
}

#[test]
fn webhooks_are_signed_retried_on_failure_and_not_retried_when_refused() {
    let setup = Setup::new();
    let hook = Receiver::start(0);
    // Two server errors, then no answer within the timeout, then success.
    hook.script(&[Reply::Status(500), Reply::Status(503), Reply::Hang(Duration::from_secs(3))]);
    let slack = Receiver::start(0);
    slack.script(&[Reply::Status(400)]);
    let pagerduty = Receiver::start(0);
    let certs = certs(setup.dir.path());
    let secure = Receiver::start_tls(0, &certs);
    let notifiers = [
        setup.hook("hook", &hook.url("/vigil"), ", timeout: 1s, retry: {initial: 100ms, max: 200ms}"),
        format!("  slack: {{type: webhook, format: slack, url: \"{}\", allow_http: true}}\n", slack.url("/services/x")),
        format!(
            "  pager: {{type: webhook, format: pagerduty, url: \"{}\", allow_http: true, routing_key_file: {}, \
             resolve_after: 1s}}\n",
            pagerduty.url("/v2/enqueue"),
            setup.path("routing-key")
        ),
        format!(
            "  secure: {{type: webhook, url: \"{}\", ca: {}, secret_file: {}}}\n",
            secure.url("/tls"),
            setup.path("ca.pem"),
            setup.path("webhook-secret")
        ),
    ]
    .concat();
    let (mut child, lines, addr, _dir) = start(&setup.config(&notifiers, ""), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    feed(&mut stdin, &[failed_login("alice", 0)]);
    let printed: serde_json::Value =
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();

    let accepted = hook.wait_accepted(1, Duration::from_secs(30));
    let attempts = hook.requests();
    assert_eq!(attempts.len(), 4, "500, 503, a timeout, then 200");
    for attempt in &attempts {
        assert!(signature_is_valid(SECRET, attempt), "a valid Standard Webhooks signature on every attempt");
        assert_eq!(attempt.header("webhook-id"), printed["id"].as_str(), "one id across retries");
        assert_eq!(attempt.path, "/vigil");
    }
    let body = accepted[0].json();
    assert_eq!(body["id"], printed["id"]);
    assert_eq!(body["group"]["user"], "alice");

    let over_tls = secure.wait_accepted(1, Duration::from_secs(30));
    assert!(secure.url("/").starts_with("https://"));
    assert!(signature_is_valid(SECRET, &over_tls[0]), "signed over HTTPS too");

    let paged = pagerduty.wait_accepted(1, Duration::from_secs(30));
    assert!(paged[0].at < accepted[0].at, "a failing receiver holds up no other notifier");
    let sent = paged[0].json();
    assert_eq!(sent["routing_key"], "R0UT1NGKEY");
    assert_eq!(sent["event_action"], "trigger");
    assert_eq!(sent["dedup_key"], printed["fingerprint"]);
    assert_eq!(sent["payload"]["severity"], "critical");
    assert_eq!(sent["links"][0]["href"], "https://runbooks.example/test.login");
    // Quiet for `resolve_after`: the incident is resolved.
    let resolved = pagerduty.wait_accepted(2, Duration::from_secs(30))[1].json();
    assert_eq!(resolved["event_action"], "resolve");
    assert_eq!(resolved["dedup_key"], printed["fingerprint"]);
    assert_eq!(resolved["routing_key"], "R0UT1NGKEY");

    let metrics = wait_metrics(&addr, "slack failed", |m| {
        metric(m, r#"vigil_notifications_total{notifier="slack",result="failed"}"#) == Some(1.0)
    });
    let refused = slack.requests();
    assert_eq!(refused.len(), 1, "a 400 is not retried");
    assert_eq!(refused[0].json()["text"], "[CRITICAL] Multiple failed logins: alice");
    assert_eq!(metric(&metrics, r#"vigil_notifications_total{notifier="hook",result="retried"}"#), Some(3.0));
    assert_eq!(metric(&metrics, r#"vigil_notifications_total{notifier="hook",result="sent"}"#), Some(1.0));
    assert!(metrics.contains(r#"vigil_notification_latency_seconds_count{notifier="hook"} 1"#), "{metrics}");
    drop(stdin);
    assert!(terminate(&mut child).success());
}

/// Sums the alerts a generic webhook's messages carry: one per single
/// alert, `total` per batch.
fn alerts_carried(requests: &[common::notify::Request]) -> u64 {
    requests.iter().map(|r| r.json()["total"].as_u64().unwrap_or(1)).sum()
}

#[test]
fn routes_split_alerts_a_storm_is_rate_limited_into_a_handful_and_redaction_hides_people() {
    let setup = Setup::new();
    let soc = Receiver::start(0);
    let pager = Receiver::start(0);
    let notifiers = [
        setup.hook("soc", &soc.url("/soc"), ", redact: {user: mask, src_ip: hash}"),
        setup.hook("pager", &pager.url("/pager"), ""),
        format!("  archive: {{type: file, path: {}}}\n", setup.path("archive.jsonl")),
    ]
    .concat();
    let routes = "routes:\n  \
        - {match: {severity: critical}, notify: [pager], continue: true}\n  \
        - {match: {severity: warning, rule: test.setting}, notify: [soc], limit: {max: 3, per: 2s}}\n  \
        - {notify: [archive]}\n";
    let (mut child, lines, addr, _dir) = start(&setup.config(&notifiers, routes), Stdio::piped());
    std::thread::spawn(move || for _ in lines {});
    let mut stdin = child.stdin.take().unwrap();
    const STORM: u64 = 10_000;
    let mut events = vec![failed_login("alice", 0)];
    events.extend((0..STORM).map(|i| setting_change(&format!("user-{i}"), i + 1)));
    feed(&mut stdin, &events);

    wait_until("every alert of the storm at the SOC webhook", Duration::from_secs(60), || {
        alerts_carried(&soc.accepted()) >= STORM
    });
    let messages = soc.accepted();
    assert_eq!(alerts_carried(&messages), STORM, "each alert once");
    eprintln!("a storm of {STORM} alerts became {} messages", messages.len());
    assert!(messages.len() <= 8, "{} messages for a storm of {STORM}", messages.len());
    let batch = messages
        .iter()
        .map(|m| m.json())
        .filter(|b| b["kind"] == "held")
        .max_by_key(|b| b["total"].as_u64())
        .expect("a held-back batch");
    assert!(batch["total"].as_u64().unwrap() > 1000, "most of the storm in one message: {}", batch["total"]);
    assert!(batch["alerts"].as_array().unwrap().len() <= 100, "a batch lists at most 100 alerts");
    assert_eq!(batch["unlisted"][0]["rule"], "test.setting");
    for message in &messages {
        assert!(signature_is_valid(SECRET, message));
        let text = String::from_utf8_lossy(&message.body);
        assert!(!text.contains("user-1") && !text.contains("198.51.100.7"), "redacted: {text}");
        assert!(!text.contains("alice"), "the critical alert is not routed to the SOC webhook");
    }
    assert!(String::from_utf8_lossy(&messages[0].body).contains(r#""user":"***""#));

    let paged = pager.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].json()["group"]["user"], "alice");
    let metrics = wait_metrics(&addr, "the archive", |m| {
        metric(m, r#"vigil_notification_alerts_total{notifier="archive"}"#) == Some(1.0)
    });
    let archived = std::fs::read_to_string(setup.path("archive.jsonl")).unwrap();
    assert_eq!(archived.lines().count(), 1, "only the critical alert continues to the catch-all route");
    let held = metric(&metrics, r#"vigil_notification_alerts_held_back_total{notifier="soc"}"#).unwrap();
    assert!(held >= (STORM - 10) as f64, "{held} held back");
    drop(stdin);
    assert!(terminate(&mut child).success());
}

#[test]
fn warnings_wait_for_the_digest_and_go_out_as_one_mail() {
    let setup = Setup::new();
    let certs = certs(setup.dir.path());
    let smtp = Smtp::start(free_port(), "starttls", &certs, &setup.dir.path().join("mail"));
    let notifiers = [
        setup.email("mail", smtp.port, "starttls", ""),
        "  digest: {type: digest, via: mail, to: soc@corp.example, every: 3s}\n".to_owned(),
    ]
    .concat();
    let routes =
        "routes:\n  - {match: {severity: warning}, notify: [digest]}\n  - {match: {severity: critical}, notify: [mail]}\n";
    let (mut child, _lines, _addr, _dir) = start(&setup.config(&notifiers, routes), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    let mut events: Vec<String> = (0..4).map(|i| setting_change(&format!("dana{i}"), i)).collect();
    events.push(failed_login("erin", 10));
    feed(&mut stdin, &events);

    let first = smtp.wait_messages(1, Duration::from_secs(10));
    assert_eq!(parse(&first[0]).subject(), Some("[CRITICAL] Multiple failed logins: erin"), "critical at once");
    let mails = smtp.wait_messages(2, Duration::from_secs(15));
    assert!(started.elapsed() >= Duration::from_secs(2), "the digest waited for its period");
    let digest = parse(&mails[1]);
    assert_eq!(digest.subject(), Some("[WARNING] vigil digest: 4 alerts in the last 3s"));
    let to: Vec<&str> = digest.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, ["soc@corp.example"]);
    let text = digest.body_text(0).unwrap();
    for i in 0..4 {
        assert!(text.contains(&format!("dana{i} changed mfa")), "{text}");
    }
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(smtp.messages().len(), 2, "no digest when nothing is waiting");
    drop(stdin);
    assert!(terminate(&mut child).success());
}

#[test]
fn alertmanager_receives_alerts_it_can_group_and_silence() {
    let am = Alertmanager::start();
    let setup = Setup::new();
    let notifiers = format!("  am: {{type: webhook, format: alertmanager, url: \"{}\", allow_http: true}}\n", am.url());
    let (mut child, _lines, _addr, _dir) = start(&setup.config(&notifiers, ""), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    feed(&mut stdin, &[failed_login("alice", 0), failed_login("bob", 1)]);

    let mut alerts = serde_json::Value::Null;
    wait_until("two alerts in Alertmanager", Duration::from_secs(30), || {
        alerts = am.query();
        alerts.as_array().is_some_and(|a| a.len() == 2)
    });
    let users: BTreeSet<&str> =
        alerts.as_array().unwrap().iter().filter_map(|a| a["labels"]["user"].as_str()).collect();
    assert_eq!(users, BTreeSet::from(["alice", "bob"]));
    for alert in alerts.as_array().unwrap() {
        assert_eq!(alert["labels"]["alertname"], "Multiple failed logins");
        assert_eq!(alert["labels"]["severity"], "critical");
        assert_eq!(alert["labels"]["rule"], "test.login");
        assert_eq!(alert["annotations"]["runbook_url"], "https://runbooks.example/test.login");
        assert!(alert["annotations"]["summary"].as_str().unwrap().starts_with("failed login for"));
    }
    drop(stdin);
    assert!(terminate(&mut child).success());
}

#[test]
fn an_outage_and_a_crash_delay_alerts_but_lose_none_and_send_none_twice() {
    let setup = Setup::new();
    let certs = certs(setup.dir.path());
    let (smtp_port, hook_port) = (free_port(), free_port());
    let retry = ", timeout: 2s, retry: {initial: 200ms, max: 1s}";
    let notifiers = [
        setup.email("mail", smtp_port, "starttls", retry),
        setup.hook("hook", &format!("http://127.0.0.1:{hook_port}/"), retry),
    ]
    .concat();
    let config = setup.config(&notifiers, "");
    let users: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    let events: Vec<String> = users.iter().enumerate().map(|(i, u)| failed_login(u, i as u64)).collect();

    // Both receivers are down: the alerts wait in the outbox.
    let (mut first, _lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = first.stdin.take().unwrap();
    feed(&mut stdin, &events[..5]);
    let metrics = wait_metrics(&addr, "five pending alerts and retries", |m| {
        ["mail", "hook"].iter().all(|n| {
            metric(m, &format!(r#"vigil_outbox_pending_alerts{{notifier="{n}"}}"#)) == Some(5.0)
                && metric(m, &format!(r#"vigil_notifications_total{{notifier="{n}",result="retried"}}"#))
                    .is_some_and(|r| r >= 1.0)
        })
    });
    assert!(metric(&metrics, r#"vigil_outbox_oldest_age_seconds{notifier="hook"}"#).unwrap() > 0.0);
    first.kill().unwrap();
    first.wait().unwrap();

    // A restart reads all eight again (as after an uncommitted Kafka
    // offset): the five logged ones are dropped as replays.
    let (mut second, lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = second.stdin.take().unwrap();
    feed(&mut stdin, &events);
    // Detection goes on while every notifier is down.
    common::daemon::wait_for(&lines, r#""user":"u7""#, &mut Vec::new());
    wait_metrics(&addr, "eight pending alerts", |m| {
        metric(m, r#"vigil_outbox_pending_alerts{notifier="hook"}"#) == Some(8.0)
            && metric(m, "vigil_alerts_replayed_total") == Some(5.0)
    });

    let hook = Receiver::start(hook_port);
    let smtp = Smtp::start(smtp_port, "starttls", &certs, &setup.dir.path().join("mail"));
    hook.wait_accepted(8, Duration::from_secs(30));
    smtp.wait_messages(8, Duration::from_secs(30));
    wait_metrics(&addr, "an empty outbox", |m| {
        ["mail", "hook"]
            .iter()
            .all(|n| metric(m, &format!(r#"vigil_outbox_pending_alerts{{notifier="{n}"}}"#)) == Some(0.0))
    });
    std::thread::sleep(Duration::from_secs(1));

    let ids: Vec<String> = hook.accepted().iter().map(|r| r.header("webhook-id").unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 8, "each alert delivered once: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 8, "no webhook id twice: {ids:?}");
    let delivered: BTreeSet<String> =
        hook.accepted().iter().map(|r| r.json()["group"]["user"].as_str().unwrap().to_owned()).collect();
    assert_eq!(delivered, users.iter().cloned().collect());
    let subjects: Vec<String> = smtp.messages().iter().map(|m| parse(m).subject().unwrap().to_owned()).collect();
    assert_eq!(subjects.len(), 8, "{subjects:?}");
    assert_eq!(subjects.iter().collect::<HashSet<_>>().len(), 8, "no mail twice: {subjects:?}");
    let (_, metrics) = http_get(&addr, "/metrics");
    assert_eq!(metric(&metrics, r#"vigil_outbox_oldest_age_seconds{notifier="mail"}"#), Some(0.0));
    drop(stdin);
    assert!(terminate(&mut second).success());
}

#[test]
fn a_full_outbox_deletes_the_oldest_alerts_and_counts_what_each_notifier_lost() {
    let setup = Setup::new();
    let port = free_port();
    let notifiers = setup.hook("hook", &format!("http://127.0.0.1:{port}/"), ", retry: {initial: 100ms, max: 200ms}");
    let state = format!("state: {{dir: {}}}", setup.path("state"));
    let bounded =
        format!("state: {{dir: {}, alert_log: {{segment_bytes: 4096, max_bytes: 8192}}}}", setup.path("state"));
    let config = setup.config(&notifiers, "").replace(&state, &bounded);
    let (mut child, _lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    const ALERTS: u64 = 200;
    let events: Vec<String> = (0..ALERTS).map(|i| failed_login(&format!("user-{i}"), i)).collect();
    feed(&mut stdin, &events);
    let metrics = wait_metrics(&addr, "dropped alerts", |m| {
        metric(m, r#"vigil_outbox_dropped_alerts_total{notifier="hook"}"#).is_some_and(|d| d > 0.0)
            && metric(m, r#"vigil_alerts_total{detector="match",rule="test.login",severity="critical"}"#)
                == Some(ALERTS as f64)
    });
    let dropped = metric(&metrics, r#"vigil_outbox_dropped_alerts_total{notifier="hook"}"#).unwrap() as u64;
    let on_disk: u64 = std::fs::read_dir(setup.dir.path().join("state/alerts"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 8192 + 4096 + 2048, "{on_disk} bytes on disk");

    let hook = Receiver::start(port);
    let lost = || {
        let (_, metrics) = http_get(&addr, "/metrics");
        metric(&metrics, r#"vigil_outbox_dropped_alerts_total{notifier="hook"}"#).unwrap_or(0.0) as u64
    };
    wait_until("the rest delivered", Duration::from_secs(30), || hook.accepted().len() as u64 + lost() >= ALERTS);
    std::thread::sleep(Duration::from_millis(500));
    let (delivered, lost) = (hook.accepted().len() as u64, lost());
    eprintln!("{delivered} delivered, {lost} lost (first seen: {dropped})");
    assert!(delivered > 0, "the newest alerts survive");
    assert_eq!(delivered + lost, ALERTS, "every alert is delivered or counted as lost");
    drop(stdin);
    assert!(terminate(&mut child).success());
}

/// Failed single sign-ons of bob from `ip`: a kind only `BURST` reads.
fn sso_failure(second: u64, ip: &str) -> String {
    format!(r#"{{"ts":"{}","kind":"sso","user":"bob","outcome":"failure","src_ip":"{ip}"}}"#, ts(second))
}

const BURST: &str = r#"id: test.burst
title: Repeated SSO failures
severity: critical
filter: {kind: sso, outcome: failure}
detect: {type: threshold, group_by: [user], window: 5m, threshold: 3}
alert:
  summary: "{{events}} SSO failures for {{user}} from {{top.src_ip}}"
  top: [src_ip]
  realert: 1m
  evidence: 5
"#;

/// One attack, three notices: the page, an update once realert is over,
/// and the last word once it stopped. Each receiver sees one alert
/// evolving: the webhook the same body `id` under a delivery id of its own,
/// PagerDuty one incident triggered, updated and resolved, the mail one
/// thread.
#[test]
fn an_alert_is_updated_and_resolved_at_every_receiver_as_one_incident() {
    let setup = Setup::new();
    std::fs::write(setup.dir.path().join("rules/burst.yml"), BURST).unwrap();
    let hook = Receiver::start(0);
    let pagerduty = Receiver::start(0);
    let certs = certs(setup.dir.path());
    let smtp = Smtp::start(free_port(), "starttls", &certs, &setup.dir.path().join("mail"));
    let notifiers = [
        setup.hook("hook", &hook.url("/vigil"), ""),
        format!(
            "  pager: {{type: webhook, format: pagerduty, url: \"{}\", allow_http: true, routing_key_file: {}}}\n",
            pagerduty.url("/v2/enqueue"),
            setup.path("routing-key")
        ),
        setup.email("mail", smtp.port, "starttls", ""),
    ]
    .concat();
    let (mut child, _lines, _addr, _dir) = start(&setup.config(&notifiers, ""), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    // Three failures page; two more within realert go to the incident.
    let mut burst: Vec<String> = (0..5).map(|i| sso_failure(i * 10, "203.0.113.5")).collect();
    // Past realert, still within the window: an update.
    burst.push(sso_failure(90, "192.0.2.8"));
    burst.push(sso_failure(100, "203.0.113.5"));
    feed(&mut stdin, &burst);
    hook.wait_accepted(2, Duration::from_secs(30));
    // An hour later the incident is over: its last notice.
    feed(&mut stdin, &[setting_change("carol", 3700), setting_change("carol", 3800)]);

    // The burst's three notices and carol's two setting changes.
    let notices = hook.wait_accepted(5, Duration::from_secs(30));
    let bodies: Vec<serde_json::Value> = notices.iter().map(|n| n.json()).collect();
    let burst_notices: Vec<(&common::notify::Request, &serde_json::Value)> =
        notices.iter().zip(&bodies).filter(|(_, b)| b["rule"] == "test.burst").collect();
    assert_eq!(burst_notices.len(), 3, "{bodies:?}");
    let id = burst_notices[0].1["id"].as_str().unwrap().to_owned();
    let fingerprint = burst_notices[0].1["fingerprint"].clone();
    let expected = [
        (None, 3, "3 SSO failures for bob from 203.0.113.5 (3)", None),
        (Some(1), 6, "6 SSO failures for bob from 203.0.113.5 (5), 192.0.2.8 (1)", None),
        (Some(2), 7, "7 SSO failures for bob from 203.0.113.5 (6), 192.0.2.8 (1)", Some("resolved")),
    ];
    for ((request, body), (update, events, summary, status)) in burst_notices.iter().zip(expected) {
        assert!(signature_is_valid(SECRET, request));
        assert_eq!(body["id"], id, "one alert");
        let delivery = update.map_or_else(|| id.clone(), |n| format!("{id}.{n}"));
        assert_eq!(request.header("webhook-id"), Some(delivery.as_str()), "a delivery id per notice");
        assert_eq!(body["update"].as_u64(), update);
        assert_eq!(body["events"], events);
        assert_eq!(body["summary"], summary);
        assert_eq!(body["status"].as_str(), status);
    }

    let paged: Vec<serde_json::Value> = pagerduty
        .wait_accepted(5, Duration::from_secs(30))
        .iter()
        .map(|r| r.json())
        .filter(|p| p["dedup_key"] == fingerprint)
        .collect();
    let actions: Vec<&str> = paged.iter().map(|p| p["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"], "one PagerDuty incident: {paged:?}");
    assert_eq!(paged[1]["payload"]["custom_details"]["events"], 6);

    let mails = smtp.wait_messages(5, Duration::from_secs(30));
    let mails: Vec<mail_parser::Message<'_>> = mails.iter().map(|m| parse(m)).collect();
    let first = mails.iter().find(|m| m.subject() == Some("[CRITICAL] Repeated SSO failures: bob")).unwrap();
    let first_id = first.message_id().unwrap().to_owned();
    for subject in
        ["[CRITICAL] Repeated SSO failures: bob (update 1)", "[CRITICAL] Repeated SSO failures: bob (resolved)"]
    {
        let mail = mails.iter().find(|m| m.subject() == Some(subject)).unwrap_or_else(|| panic!("no `{subject}`"));
        assert_eq!(mail.in_reply_to().as_text(), Some(first_id.as_str()), "{subject}: in the first mail's thread");
    }
    drop(stdin);
    assert!(terminate(&mut child).success());
}

#[test]
fn a_file_notifier_killed_mid_delivery_keeps_whole_lines_and_every_alert() {
    let setup = Setup::new();
    let archive = setup.dir.path().join("archive.jsonl");
    let config = setup.config(&format!("  archive: {{type: file, path: {}}}\n", archive.display()), "");
    let events: Vec<String> = (0..20_000).map(|i| failed_login(&format!("u{i}"), i / 100)).collect();
    let lines = |path: &std::path::Path| std::fs::read(path).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count());
    // Killed as soon as the archive has grown, four times over; each start
    // reads all the events again (the alert log drops those it holds).
    for _ in 0..4 {
        let before = lines(&archive);
        let (mut daemon, _lines, _addr, _dir) = start(&config, Stdio::piped());
        let mut stdin = daemon.stdin.take().unwrap();
        feed(&mut stdin, &events);
        wait_until("the archive to grow", Duration::from_secs(60), || lines(&archive) > before);
        daemon.kill().unwrap();
        daemon.wait().unwrap();
    }
    let (mut daemon, _lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = daemon.stdin.take().unwrap();
    feed(&mut stdin, &events);
    wait_metrics(&addr, "an empty outbox", |m| {
        metric(m, r#"vigil_outbox_pending_alerts{notifier="archive"}"#) == Some(0.0)
            && metric(m, r#"vigil_alerts_total{detector="match",rule="test.login",severity="critical"}"#)
                == Some(events.len() as f64)
    });
    drop(stdin);
    assert!(terminate(&mut daemon).success());

    let logged: HashSet<String> = common::alert_log(&setup.dir.path().join("state"))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged.len(), events.len());
    let text = std::fs::read_to_string(&archive).unwrap();
    let mut archived = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let alert: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("archive line {}: {e}: {line:.200}", n + 1));
        archived.insert(alert["id"].as_str().unwrap().to_owned());
    }
    let missing = logged.difference(&archived).count();
    assert!(missing == 0 && archived.len() == logged.len(), "{missing} of {} alerts not archived", logged.len());
    assert!(text.lines().count() - archived.len() <= 4 * 512, "at most one send again per kill");
}

/// Four webhooks that take the request and never answer: the shutdown is
/// bounded as a whole (notifier grace, then one stop wait for all), not 15 s
/// per hung notifier, and a second signal ends vigil at once.
#[test]
fn a_shutdown_with_hung_receivers_is_bounded_and_a_second_signal_exits_at_once() {
    let hung: Vec<Receiver> = (0..4).map(|_| Receiver::start(0)).collect();
    let setup = Setup::new();
    let notifiers: String =
        hung.iter().enumerate().map(|(i, r)| setup.hook(&format!("hook{i}"), &r.url("/"), ", timeout: 2m")).collect();
    let config = setup.config(&notifiers, "");
    let stop_with = |signals: usize| {
        for receiver in &hung {
            receiver.script(&[Reply::Hang(Duration::from_secs(600))]);
        }
        let (mut daemon, _lines, _addr, _dir) = start(&config, Stdio::piped());
        let mut stdin = daemon.stdin.take().unwrap();
        feed(&mut stdin, &[failed_login(&format!("s{signals}"), signals as u64)]);
        wait_until("every hook to hold a request", Duration::from_secs(30), || {
            hung.iter().all(|r| r.requests().len() >= signals)
        });
        let started = Instant::now();
        for _ in 0..signals {
            std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = daemon.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "vigil did not exit within a minute");
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(stdin);
        // The log's last lines may still be in the pipe.
        daemon.wait_log(if signals == 2 { "A second stop signal" } else { "notifier=hook3" });
        (started.elapsed(), status, daemon.log())
    };
    let (took, status, log) = stop_with(1);
    assert!(took < Duration::from_secs(25), "one signal: the shutdown took {took:?}\n{log}");
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("did not stop in time").count(), 4, "{log}");
    let (took, _, log) = stop_with(2);
    assert!(took < Duration::from_secs(5), "two signals: exited after {took:?}\n{log}");
    for receiver in &hung {
        assert!(receiver.accepted().is_empty());
    }
}
