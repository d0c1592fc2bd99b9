//! The Kafka source against a real Kafka-protocol broker (tansu, started
//! on loopback per test): alerts end to end, dead letters, the alerts
//! topic, restarts, checkpoints, consumer groups and broker outages.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::alert_log;
use common::daemon::{http_get, start, terminate, wait_for, wait_metric, wait_metrics};
use common::kafka::{Broker, Relay};

/// A login at that second, from an address of its own: the tests count
/// per-user alerts, and no address tries often enough to be alerted on.
fn login(user: &str, second: u32, outcome: &str) -> String {
    format!(
        r#"{{"ts":"2026-11-09T08:00:{second:02}Z","kind":"login","user":"{user}","outcome":"{outcome}","src_ip":"185.220.101.{second}"}}"#
    )
}

fn config(broker: &Broker, state: &Path, extra_source: &str, rest: &str) -> String {
    format!(
        "source:\n  type: kafka\n  brokers: {}\n  group_id: vigil-test\n  {extra_source}\n  \
         properties: {{session.timeout.ms: 6000, statistics.interval.ms: 500}}\n\
         state: {{dir: {}, checkpoint_interval: 1s}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\n{rest}",
        broker.addr,
        state.display()
    )
}

#[test]
fn events_become_alerts_bad_messages_become_dead_letters() {
    let broker = Broker::start();
    broker.create_topic("events", 3);
    broker.create_topic("logins", 2);
    broker.create_topic("dead", 1);
    broker.create_topic("alerts", 1);
    let state = tempfile::tempdir().unwrap();
    let config = config(
        &broker,
        state.path(),
        "topics: [events, {name: logins, kind: login}]\n  dead_letter_topic: dead",
        "limits: {max_event_bytes: 1024}\nnotifiers:\n  siem: {type: kafka, topic: alerts}\n",
    );
    let (mut child, lines, addr, _dir) = start(&config, Stdio::null());

    // Failed logins without a `kind` on the logins topic: its default kind applies.
    let burst: Vec<(&str, String)> =
        (0..12).map(|i| ("alice", login("alice", i * 5, "failure").replace(r#""kind":"login","#, ""))).collect();
    broker.produce("logins", &burst);
    let big = format!(r#"{{"ts":"2026-11-09T08:00:00Z","kind":"login","pad":"{}"}}"#, "x".repeat(2000));
    broker.produce(
        "events",
        &[
            ("bob", login("bob", 1, "success")),
            ("x", "[\"not\", \"an\", \"object\"]".into()),
            ("w", "{\"ts\":".into()),
            ("y", r#"{"kind":"login"}"#.into()),
            ("z", big),
        ],
    );

    let mut seen = Vec::new();
    wait_for(&lines, "auth.failed_login_burst", &mut seen);
    let alert: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(alert["group"]["user"], "alice");

    let logged = alert_log(state.path());
    assert!(logged.contains(alert["id"].as_str().unwrap()), "the alert is in the alert log");

    let produced = broker.read("alerts", 1, 1, Duration::from_secs(20));
    assert_eq!(produced.len(), 1, "one alert on the alerts topic");
    assert_eq!(String::from_utf8_lossy(&produced[0].key), "auth.failed_login_burst/user=alice");
    let body: serde_json::Value = serde_json::from_slice(&produced[0].payload).unwrap();
    assert_eq!(body["id"], alert["id"]);

    let mut dead = broker.read("dead", 1, 4, Duration::from_secs(20));
    assert_eq!(dead.len(), 4, "four dead letters: {dead:?}");
    dead.sort_by_key(|r| r.key.clone());
    let reason = |r: &common::kafka::Record| r.headers.iter().find(|h| h.0 == "vigil-error-reason").unwrap().1.clone();
    assert_eq!(reason(&dead[0]), "invalid_json");
    assert_eq!(
        (reason(&dead[1]), dead[1].payload.as_slice()),
        ("not_an_object".into(), &br#"["not", "an", "object"]"#[..])
    );
    assert_eq!(reason(&dead[2]), "missing_ts");
    assert_eq!(reason(&dead[3]), "too_large");
    assert_eq!(dead[3].payload.len(), 2000 + 53, "the original bytes");
    assert!(dead[1].headers.iter().any(|h| h.0 == "vigil-source-topic" && h.1 == "events"));
    assert_eq!(dead[1].key, b"x", "the original key");

    let metrics = wait_metric(&addr, "vigil_kafka_dead_lettered_total{reason=\"too_large\"} 1");
    for series in [
        "vigil_kafka_messages_total{topic=\"logins\"} 12",
        "vigil_kafka_messages_total{topic=\"events\"} 5",
        "vigil_events_rejected_total{reason=\"not_an_object\"} 1",
        "vigil_kafka_assigned_partitions 5",
        "vigil_kafka_connected 1",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
    wait_metric(&addr, "vigil_kafka_consumer_lag_messages{partition=\"0\",topic=\"logins\"} 0");
    wait_metric(&addr, "vigil_notifications_total{notifier=\"siem\",result=\"sent\"} 1");
    wait_metrics(&addr, "a timed checkpoint", |m| metric_value(m, "vigil_checkpoint_seconds_count") > 0.0);
    wait_metrics(&addr, "a counted assignment", |m| {
        metric_value(m, "vigil_kafka_rebalances_total{event=\"assign\"}") > 0.0
    });
    wait_metrics(&addr, "timed commits", |m| metric_value(m, "vigil_kafka_commit_seconds_count") > 0.0);
    wait_metrics(&addr, "event-time lag", |m| metric_value(m, "vigil_event_lag_seconds_count") > 0.0);
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    assert!(terminate(&mut child).success());
}

/// `count` failed logins of `user` in that minute, each from an address
/// of its own (a guesser's pool), so only the per-user rule can fire.
fn failures(user: &str, minute: u32, count: u32) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let line = format!(
                r#"{{"ts":"2026-11-09T09:{minute:02}:{:02}Z","kind":"login","user":"{user}","outcome":"failure","src_ip":"198.18.{minute}.{i}"}}"#,
                i * 5
            );
            (user.to_owned(), line)
        })
        .collect()
}

/// The alerts `vigil replay` raises for these lines, as JSON lines.
fn replay(input: &str) -> String {
    let output = common::run_with_stdin(&["replay", "-"], input.as_bytes());
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    common::text(&output.stdout)
}

/// The alert ids `vigil replay` raises for these events.
fn replayed_ids(events: &[(String, String)]) -> Vec<String> {
    let input: String = events.iter().map(|(_, line)| format!("{line}\n")).collect();
    sorted_field(&replay(&input), "id")
}

/// The alert logs of these instances together, once they hold `count`
/// alerts (or after 30 s).
fn alert_logs(states: &[&Path], count: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logs: String = states.iter().map(|state| alert_log(state)).collect();
        if logs.lines().count() >= count || std::time::Instant::now() > deadline {
            return logs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn logged_ids(state: &Path) -> Vec<String> {
    sorted_field(&alert_log(state), "id")
}

/// A string field of each alert's first notice in JSON lines, sorted. The
/// updates are left out: a replay's end sends those of incidents still
/// open, which a daemon, whose input never ends, does not.
fn sorted_field(lines: &str, field: &str) -> Vec<String> {
    let mut values: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|alert| alert["update"].as_u64().unwrap_or(0) == 0)
        .map(|alert| alert[field].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    values
}

fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

#[test]
fn sigkill_loses_no_alert_repeats_none_and_state_survives_the_restart() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let state = tempfile::tempdir().unwrap();
    // Checkpoints every 5 s: the kill below lands between two of them.
    let config = config(&broker, state.path(), "topics: [events]", "")
        .replace("checkpoint_interval: 1s", "checkpoint_interval: 5s");

    // mallory's burst straddles the restart; trudy's lies after the first
    // checkpoint, so it is read again after the kill.
    let part_a = failures("mallory", 0, 6);
    let part_b1 = failures("trudy", 1, 12);
    let part_b2 = failures("mallory", 2, 6);

    let (mut first, lines, addr, _dir) = start(&config, Stdio::null());
    broker.produce("events", &part_a);
    wait_metric(&addr, "vigil_kafka_messages_total{topic=\"events\"} 6");
    wait_metrics(&addr, "a checkpoint", |m| metric_value(m, "vigil_checkpoint_bytes") > 0.0);
    broker.produce("events", &part_b1);
    let mut seen = Vec::new();
    wait_for(&lines, "trudy", &mut seen);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(logged_ids(state.path()).len(), 1, "trudy's alert was logged before it was shown");

    let (mut second, lines, addr, _dir) = start(&config, Stdio::null());
    broker.produce("events", &part_b2);
    let mut seen = Vec::new();
    wait_for(&lines, "mallory", &mut seen);
    let metrics = wait_metric(&addr, "vigil_alerts_replayed_total 1");
    assert!(metrics.contains("vigil_checkpoint_restores_total{outcome=\"restored\"} 1"), "{metrics}");
    assert!(terminate(&mut second).success());

    let all: Vec<(String, String)> = [part_a, part_b1, part_b2].concat();
    let expected = replayed_ids(&all);
    assert_eq!(expected.len(), 2);
    assert_eq!(logged_ids(state.path()), expected, "every alert once, none lost");
    assert!(!seen.iter().any(|l| l.contains("trudy")), "trudy's alert is not shown twice: {seen:?}");
}

#[test]
fn two_instances_split_the_partitions_and_raise_what_one_would() {
    let broker = Broker::start();
    broker.create_topic("events", 4);
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _lines_a, addr_a, _dir_a) =
        start(&config(&broker, state_a.path(), "topics: [events]", ""), Stdio::null());
    wait_metric(&addr_a, "vigil_kafka_assigned_partitions 4");
    let (mut b, _lines_b, addr_b, _dir_b) =
        start(&config(&broker, state_b.path(), "topics: [events]", ""), Stdio::null());
    wait_metric(&addr_b, "vigil_kafka_assigned_partitions 2");
    wait_metric(&addr_a, "vigil_kafka_assigned_partitions 2");

    let users: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let mut events = Vec::new();
    for (i, user) in users.iter().enumerate() {
        events.extend(failures(user, i as u32, if i % 3 == 0 { 2 } else { 12 }));
    }
    broker.produce("events", &events);
    let expected = replayed_ids(&events);
    assert_eq!(expected.len(), 8);

    let union = sorted_field(&alert_logs(&[state_a.path(), state_b.path()], expected.len()), "id");
    assert_eq!(union, expected, "together exactly the alerts of one instance");
    assert!(!logged_ids(state_a.path()).is_empty() && !logged_ids(state_b.path()).is_empty(), "both did work");
    assert!(terminate(&mut a).success());
    assert!(terminate(&mut b).success());
}

#[test]
fn a_partition_handed_over_in_a_rebalance_takes_its_state_along_through_shared_checkpoints() {
    let broker = Broker::start();
    broker.create_topic("events", 2);
    let shared = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with_shared = |state: &Path| {
        config(&broker, state, "topics: [events]", "").replace(
            "checkpoint_interval: 1s}",
            &format!("checkpoint_interval: 1s, checkpoint_dir: {}}}", shared.path().display()),
        )
    };
    let (mut a, _lines_a, addr_a, _dir_a) = start(&with_shared(state_a.path()), Stdio::null());
    wait_metric(&addr_a, "vigil_kafka_assigned_partitions 2");
    // Six of ten failures each, one user per partition: no burst yet.
    broker.produce_to("events", Some(0), &failures("alice", 0, 6));
    broker.produce_to("events", Some(1), &failures("bob", 0, 6));
    wait_metric(&addr_a, "vigil_kafka_messages_total{topic=\"events\"} 12");

    // B joins: one partition moves, and A checkpoints and commits it on
    // revoke. B restores that checkpoint from the shared directory.
    let (mut b, _lines_b, addr_b, _dir_b) = start(&with_shared(state_b.path()), Stdio::null());
    wait_metric(&addr_b, "vigil_kafka_assigned_partitions 1");
    wait_metric(&addr_a, "vigil_kafka_assigned_partitions 1");
    wait_metric(&addr_b, "vigil_checkpoint_restores_total{outcome=\"restored\"} 1");

    let later = |user: &str| -> Vec<(String, String)> {
        failures(user, 0, 10).into_iter().skip(6).collect() // the 7th to 10th failure
    };
    broker.produce_to("events", Some(0), &later("alice"));
    broker.produce_to("events", Some(1), &later("bob"));
    alert_logs(&[state_a.path(), state_b.path()], 2);
    std::thread::sleep(Duration::from_secs(1)); // nothing more comes
    let (in_a, in_b) = (alert_log(state_a.path()), alert_log(state_b.path()));
    assert_eq!(in_a.lines().count(), 1, "A: the burst of the partition it kept\n{in_a}");
    assert_eq!(in_b.lines().count(), 1, "B: the burst whose first six failures A saw\n{in_b}");
    assert!((in_a.clone() + &in_b).contains("alice") && (in_a + &in_b).contains("bob"));
    assert!(terminate(&mut a).success());
    assert!(terminate(&mut b).success());
}

#[test]
fn vigil_stops_on_sigterm_while_the_broker_is_down() {
    let relay = Relay::start();
    let broker = Broker::behind(&relay);
    broker.create_topic("events", 1);
    let state = tempfile::tempdir().unwrap();
    // No checkpoint before the shutdown, whose commit then waits for a
    // broker that is gone.
    let config = config(&broker, state.path(), "topics: [events]", "")
        .replace("checkpoint_interval: 1s", "checkpoint_interval: 1h");
    let (mut child, lines, addr, _dir) = start(&config, Stdio::null());
    broker.produce("events", &failures("alice", 0, 12));
    wait_for(&lines, "alice", &mut Vec::new());
    broker.pause(&relay);
    wait_metric(&addr, "vigil_kafka_connected 0");
    std::thread::sleep(Duration::from_secs(2));
    assert!(terminate(&mut child).success(), "a clean stop without the broker");
    assert!(alert_log(state.path()).contains("alice"), "the alert is kept");
}

/// (rule, group) of each alert in JSON lines, sorted.
fn fingerprints(lines: &str) -> Vec<String> {
    sorted_field(lines, "fingerprint")
}

#[test]
fn rekeying_lets_a_rule_grouped_by_address_see_the_partitions_of_every_user() {
    let broker = Broker::start();
    broker.create_topic("logins", 4);
    let source = "topics: [{name: logins, kind: login, key: [user]}]\n  \
                  rekey: {topic_prefix: vigil-rekey, partitions: 2}";
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _lines_a, addr_a, _dir_a) = start(&config(&broker, state_a.path(), source, ""), Stdio::null());
    // Every stream (the source topic and each internal topic) has a
    // messages series from the start.
    let metrics = wait_metric(&addr_a, "vigil_kafka_messages_total{topic=\"vigil-rekey.src_ip\"} 0");
    let internal = metrics.lines().filter(|l| l.starts_with("vigil_kafka_messages_total{topic=\"vigil-rekey.")).count();
    let all = 4 + 2 * internal;
    wait_metric(&addr_a, &format!("vigil_kafka_assigned_partitions {all}"));
    let (mut b, _lines_b, addr_b, _dir_b) = start(&config(&broker, state_b.path(), source, ""), Stdio::null());
    wait_metrics(&addr_b, "a share of the partitions", |m| {
        let (in_a, in_b) = (metric_value(&http_get(&addr_a, "/metrics").1, "vigil_kafka_assigned_partitions"), {
            metric_value(m, "vigil_kafka_assigned_partitions")
        });
        in_b > 0.0 && in_a + in_b == all as f64
    });

    // One address tries one password on twelve users; the records are
    // keyed by user, so they spread over the four partitions. Mallory's
    // burst is grouped by user, as the topic is keyed. No record carries
    // a kind: the topic's default travels with the re-keyed copies.
    let mut events: Vec<(String, String)> = (0..12)
        .map(|i| {
            let user = format!("u{i:02}");
            let line = format!(
                r#"{{"ts":"2026-11-09T08:20:{:02}Z","user":"{user}","outcome":"failure","src_ip":"45.155.205.33"}}"#,
                i * 4
            );
            (user, line)
        })
        .collect();
    events.extend((0..12).map(|i| {
        let line = format!(
            r#"{{"ts":"2026-11-09T08:21:{:02}Z","user":"mallory","outcome":"failure","src_ip":"198.51.100.7"}}"#,
            i * 5
        );
        ("mallory".to_owned(), line)
    }));
    broker.produce("logins", &events);

    let replay_input: String =
        events.iter().map(|(_, line)| line.replacen('{', r#"{"kind":"login","#, 1) + "\n").collect();
    let replayed = replay(&replay_input);
    let expected = fingerprints(&replayed);
    assert!(replayed.contains("auth.password_spraying") && replayed.contains("auth.failed_login_burst"), "{replayed}");

    let union = fingerprints(&alert_logs(&[state_a.path(), state_b.path()], expected.len()));
    assert_eq!(union, expected, "together the alerts of one instance, each once");
    let copied: f64 = [&addr_a, &addr_b]
        .iter()
        .map(|addr| {
            metric_value(&http_get(addr, "/metrics").1, "vigil_kafka_rekeyed_total{topic=\"vigil-rekey.src_ip\"}")
        })
        .sum();
    assert_eq!(copied, 24.0, "every failed login copied once to the address topic");
    assert!(terminate(&mut a).success());
    assert!(terminate(&mut b).success());
}

#[test]
fn a_broker_outage_makes_vigil_unready_and_it_carries_on_when_the_broker_returns() {
    // vigil reaches the broker through a relay, like a stable DNS name;
    // the outage stops the broker process and cuts it off.
    let relay = Relay::start();
    let broker = Broker::behind(&relay);
    broker.create_topic("events", 1);
    let state = tempfile::tempdir().unwrap();
    let (mut child, lines, addr, _dir) = start(&config(&broker, state.path(), "topics: [events]", ""), Stdio::null());
    broker.produce("events", &failures("alice", 0, 12));
    let mut seen = Vec::new();
    wait_for(&lines, "alice", &mut seen);
    assert_eq!(http_get(&addr, "/readyz").0, 200);

    broker.pause(&relay);
    wait_metric(&addr, "vigil_kafka_connected 0");
    assert_eq!(http_get(&addr, "/readyz").0, 503);
    assert_eq!(http_get(&addr, "/healthz").0, 200, "alive all along");
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "vigil keeps running without a broker");

    broker.resume(&relay);
    wait_metric(&addr, "vigil_kafka_connected 1");
    broker.produce("events", &failures("bob", 5, 12));
    wait_for(&lines, "bob", &mut seen);
    // Alice's twelve and bob's twelve, each read once.
    wait_metric(&addr, "vigil_kafka_messages_total{topic=\"events\"} 24");
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    assert_eq!(seen.len(), 2, "one alert each: {seen:?}");
    assert!(terminate(&mut child).success());
}

/// A storm of 3,000 alerts to the alerts topic: produced in batches, so
/// they reach the topic within a shutdown's grace (one flush per alert
/// once made that 10 a second, and every shutdown left hundreds behind).
#[test]
fn a_storm_reaches_the_alerts_topic_before_the_shutdown_ends() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    broker.create_topic("alerts", 1);
    let state = tempfile::tempdir().unwrap();
    let rules = common::login_match_rules(state.path());
    let rest = format!("rules: {}\nnotifiers:\n  siem: {{type: kafka, topic: alerts}}\n", rules.display());
    let (mut child, _lines, addr, _dir) =
        start(&config(&broker, state.path(), "topics: [events]", &rest), Stdio::null());
    let events: Vec<(String, String)> =
        (0..3000).map(|i| (format!("u{i}"), login(&format!("u{i}"), (i % 60) as u32, "success"))).collect();
    broker.produce("events", &events);
    wait_metric(&addr, r#"vigil_alerts_total{detector="match",rule="t.login",severity="warning"} 3000"#);
    assert!(!child.log().contains("declare no `key:`"), "a match rule needs no key");
    assert!(terminate(&mut child).success());
    let delivered = broker.read("alerts", 1, 3000, Duration::from_secs(30));
    assert_eq!(delivered.len(), 3000, "every alert on the topic by the end of the shutdown");
}

/// A hung broker process (SIGSTOP, its connections left open): vigil
/// reports it down within seconds, not librdkafka's minute, logs the outage
/// once at WARN (never ERROR), and carries on when it answers again.
#[test]
fn a_hung_broker_is_down_within_seconds_and_its_outage_is_logged_once() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let state = tempfile::tempdir().unwrap();
    let (mut child, lines, addr, _dir) = start(&config(&broker, state.path(), "topics: [events]", ""), Stdio::null());
    broker.produce("events", &failures("alice", 0, 12));
    let mut seen = Vec::new();
    wait_for(&lines, "alice", &mut seen);
    wait_metric(&addr, "vigil_kafka_connected 1");
    child.wait_log("These topics declare no `key:`");

    broker.freeze();
    let frozen = std::time::Instant::now();
    wait_metric(&addr, "vigil_kafka_connected 0");
    assert!(frozen.elapsed() < Duration::from_secs(40), "down after {:?}", frozen.elapsed());
    assert_eq!(http_get(&addr, "/readyz").0, 503);
    std::thread::sleep(Duration::from_secs(10));
    broker.thaw();
    wait_metric(&addr, "vigil_kafka_connected 1");
    broker.produce("events", &failures("bob", 5, 12));
    wait_for(&lines, "bob", &mut seen);
    assert!(terminate(&mut child).success());
    let log = child.log();
    assert!(!log.contains(" ERROR "), "nothing was lost or refused:\n{log}");
    assert_eq!(log.matches("No Kafka broker is reachable").count(), 1, "{log}");
}

#[test]
fn a_reload_reaches_every_partition_and_one_needing_other_rekey_topics_is_refused() {
    let broker = Broker::start();
    broker.create_topic("logins", 3);
    let rules = tempfile::tempdir().unwrap();
    let burst = "id: auth.burst\ntitle: Burst\nseverity: critical\nfilter: {kind: login, outcome: failure}\n\
                 detect: {type: threshold, group_by: [user], window: 5m, threshold: 4}\nalert: {summary: burst}\n";
    let spray = "id: auth.spray\ntitle: Spray\nseverity: warning\nfilter: {kind: login, outcome: failure}\n\
                 detect: {type: distinct, group_by: [src_ip], field: user, window: 5m, threshold: 50}\n\
                 alert: {summary: spray}\n";
    std::fs::write(rules.path().join("burst.yml"), burst).unwrap();
    std::fs::write(rules.path().join("spray.yml"), spray).unwrap();
    let state = tempfile::tempdir().unwrap();
    let source = "topics: [{name: logins, kind: login, key: [user]}]\n  rekey: {partitions: 2}";
    let rest = format!("rules: {}\nreload: {{watch: 200ms}}\n", rules.path().display());
    let (mut child, lines, addr, _dir) = start(&config(&broker, state.path(), source, &rest), Stdio::null());
    wait_metric(&addr, "vigil_kafka_assigned_partitions 5");

    let users = ["alice", "bob", "carol"];
    let early: Vec<(String, String)> =
        users.iter().flat_map(|u| (0..3).map(move |i| (u.to_string(), login(u, i, "failure")))).collect();
    broker.produce("logins", &early);
    wait_metric(&addr, "vigil_logins_total{outcome=\"failure\"} 9");
    std::fs::write(rules.path().join("burst.yml"), burst.replace("title: Burst", "title: Renamed burst")).unwrap();
    wait_metric(&addr, "vigil_rules_reloads_total{result=\"success\"} 1");
    let late: Vec<(String, String)> = users.iter().map(|u| (u.to_string(), login(u, 10, "failure"))).collect();
    broker.produce("logins", &late);
    let mut seen = Vec::new();
    for _ in users {
        wait_for(&lines, "Renamed burst", &mut seen);
    }

    // Grouping the spray rule by another field needs another internal topic.
    std::fs::write(rules.path().join("spray.yml"), spray.replace("group_by: [src_ip]", "group_by: [country]")).unwrap();
    wait_metric(&addr, "vigil_rules_reloads_total{result=\"failure\"} 1");
    assert!(child.log().contains("restart vigil to apply them"), "the refusal says why");
    let metrics = wait_metric(&addr, "vigil_rules_last_reload_successful 0");
    assert!(metrics.contains("vigil_rules_loaded 2"));
    assert!(terminate(&mut child).success());
}

/// A week of the demo's traffic (with its attacks), keyed by user (or the
/// account, for volume reports) over four partitions; `busy` for seven
/// times the API traffic of three times the users.
fn week_of_history(busy: bool) -> Vec<(String, String)> {
    let size: &[&str] = if busy { &["--users", "300", "--calls-per-hour", "40"] } else { &["--users", "100"] };
    let out = common::run(&[&["generate", "--days", "7"], size].concat());
    assert!(out.status.success());
    common::text(&out.stdout)
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = ["user", "account", "token_id"].iter().find_map(|f| event[f].as_str()).unwrap_or("-");
            (key.to_owned(), line.to_owned())
        })
        .collect()
}

/// A week of history on a 4-partition topic before vigil starts, the ids
/// replay raises for it, and a config with re-keying.
struct Backlog {
    history: Vec<(String, String)>,
    expected: Vec<String>,
    broker: Broker,
    state: tempfile::TempDir,
    config: String,
}

fn backlog(busy: bool) -> Backlog {
    let history = week_of_history(busy);
    let expected = replayed_ids(&history);
    let broker = Broker::start();
    broker.create_topic("events", 4);
    broker.produce("events", &history);
    let state = tempfile::tempdir().unwrap();
    let source = "topics: [{name: events, key: [user]}]\n  rekey: {topic_prefix: vigil-rekey, partitions: 4}";
    let config = config(&broker, state.path(), source, "");
    Backlog { history, expected, broker, state, config }
}

/// Waits until vigil has consumed `events` source messages and every copy
/// it made, and the alert log has stopped growing.
fn wait_caught_up(addr: &str, state: &Path, events: usize) {
    wait_metrics(addr, "every source message consumed", |m| {
        metric_value(m, "vigil_kafka_messages_total{topic=\"events\"}") >= events as f64
    });
    wait_metrics(addr, "every copy consumed", |m| {
        let produced: f64 = m
            .lines()
            .filter(|l| l.starts_with("vigil_kafka_rekeyed_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let consumed: f64 = m
            .lines()
            .filter(|l| l.starts_with("vigil_kafka_messages_total{topic=\"vigil-rekey."))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        produced > 0.0 && consumed >= produced
    });
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = alert_log(state).lines().count();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Catching up on a week of backlog with re-keying loses nothing: the
/// alert ids are those `vigil replay` gives for the same events, with
/// every shipped rule and the default lateness. Before per-source
/// alignment, the source partitions drifted days apart while catching up
/// and the re-keyed rules lost most of their alerts.
#[test]
fn a_week_of_backlog_caught_up_with_rekeying_raises_the_alerts_replay_does() {
    let Backlog { history, expected, broker: _broker, state, config } = backlog(false);
    let (mut vigil, _lines, addr, _dir) = start(&config, Stdio::null());
    wait_caught_up(&addr, state.path(), history.len());
    let metrics = http_get(&addr, "/metrics").1;
    assert!(terminate(&mut vigil).success());
    let got = logged_ids(state.path());
    let missing: Vec<&String> = expected.iter().filter(|id| !got.contains(id)).collect();
    let extra: Vec<String> = alert_log(state.path())
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| !expected.contains(&a["id"].as_str().unwrap().to_owned()))
        .map(|a| format!("{} {} {}", a["rule"], a["group"], a["ts"]))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} of {} alerts missing, {} not in the replay; late: {}; extra: {:#?}",
        missing.len(),
        expected.len(),
        extra.len(),
        metric_value(&metrics, "vigil_events_late_total"),
        &extra[..extra.len().min(12)]
    );
}

/// A busier week caught up, killed three times (SIGKILL) on its way: each
/// run resumes from its checkpoints, and together they raise exactly the
/// alert ids replay does, each once.
#[test]
fn a_week_of_backlog_caught_up_through_three_sigkills_raises_the_alerts_replay_does() {
    let Backlog { history, expected, broker: _broker, state, config } = backlog(true);
    for kill in 1..=3 {
        let (mut vigil, _lines, addr, _dir) = start(&config, Stdio::null());
        // Killed once it is reading and has written a checkpoint: mid-way
        // through the week, with copies in flight and in the merges.
        wait_metrics(&addr, "progress", |m| {
            metric_value(m, "vigil_kafka_messages_total{topic=\"events\"}") > 0.0
                && metric_value(m, "vigil_checkpoint_bytes") > 0.0
        });
        std::thread::sleep(Duration::from_millis(150 * kill));
        vigil.kill().unwrap();
        vigil.wait().unwrap();
    }
    let (mut vigil, _lines, addr, _dir) = start(&config, Stdio::null());
    let left = wait_metrics(&addr, "the rest of the backlog", |m| {
        metric_value(m, "vigil_kafka_messages_total{topic=\"events\"}") > 0.0
    });
    let left = metric_value(&left, "vigil_kafka_messages_total{topic=\"events\"}");
    assert!(left < history.len() as f64, "the kills came after the catch-up was over");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !expected.iter().all(|id| logged_ids(state.path()).contains(id)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(terminate(&mut vigil).success());
    let got = logged_ids(state.path());
    let missing: Vec<&String> = expected.iter().filter(|id| !got.contains(id)).collect();
    assert!(missing.is_empty(), "{} of {} alerts missing after three kills", missing.len(), expected.len());
    assert_eq!(got, expected, "every alert once, none extra");
}
