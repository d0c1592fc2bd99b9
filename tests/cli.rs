//! The `vigil` binary as a user drives it: check, test, replay, generate.

mod common;

use common::{data, demo_site_rules, golden, run, run_with_stdin, text};

#[test]
fn check_accepts_the_shipped_rules() {
    let out = run(&["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: 22 rules, 4 lists, 2 tables"), "{}", text(&out.stdout));
}

#[test]
fn check_accepts_the_shipped_example_config() {
    let out = run(&["check", "--config", "examples/vigil.yml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn check_reports_every_error_with_file_line_column_and_rule() {
    let dir = data("rules_broken");
    let out = run(&["check", "--rules", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = [
        "broken.yml:3:11: [bad.one] severity must be `critical` or `warning`, not `urgent`",
        "broken.yml:6:3: [bad.one] modifier `contains` cannot be combined with another comparison",
        "broken.yml:7:16: [bad.one] `300.1.1.1/8` is not a CIDR network such as 10.0.0.0/8",
        "broken.yml:12:10: [bad.one] `field` is not a parameter of `threshold` detectors",
        "broken.yml:14:13: [bad.one] unclosed `{{` in template",
        "broken.yml:19:1: [bad.two] unknown field `filtr`: did you mean `filter`?",
        "broken.yml:29:23: [bad.three] condition: unknown selection `nope`",
        "broken.yml:30:16: [bad.three] unknown detector type `sequenze`",
        "more.yaml:6:3: [bad.four] `spike` detectors need `interval`",
        "more.yaml:8:8: [bad.four] `method: poisson` models event counts; it cannot be used with `sum`",
        // Every mistake serde finds in one document, not only the first.
        "more.yaml:17:13: [bad.five] expected a list: `[a, b]`, or one `- item` per line",
        "more.yaml:18:3: [bad.five] unknown field `windw`: did you mean `window`?",
        "more.yaml:19:14: [bad.five] expected a number",
        "more.yaml:23:13: [bad.five] expected a whole number from 0 to 4294967295",
    ];
    for line in expected {
        assert!(stderr.contains(line), "missing `{line}` in:\n{stderr}");
    }
    assert!(!stderr.contains("missing field `filter`"), "a misspelt field is reported once:\n{stderr}");
    assert!(stderr.contains("14 error(s) in the rules"), "{stderr}");
}

#[test]
fn check_reports_config_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.yml");
    std::fs::write(&config, "lateness: 1m\nsource: {type: file}\nmetrics: {listen: nowhere}\nbogus: 1\n").unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("vigil.yml:4:1: unknown field `bogus`"), "{stderr}");
    std::fs::write(&config, "source: {type: file}\nmetrics: {listen: nowhere}\n").unwrap();
    let stderr = text(&run(&["check", "--config", config.to_str().unwrap()]).stderr);
    assert!(stderr.contains("vigil.yml:1:9: a `file` source needs a `path`"), "{stderr}");
    assert!(stderr.contains("error: /") && stderr.contains("vigil.yml:2:19: `nowhere` is not an address"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error: ")).count(), 2, "{stderr}");
}

#[test]
fn test_runs_every_inline_test_of_the_shipped_rules() {
    let out = run(&["test"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("test auth.failed_login_burst :: a mistyped password does not page anyone ... ok"));
    assert!(!stdout.contains("FAILED"));
    assert!(!stdout.contains("rules without tests"), "every shipped rule has tests:\n{stdout}");
}

#[test]
fn test_reports_failures_and_exits_1() {
    let dir = data("rules_failing");
    let out = run(&["test", "--rules", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("test demo.wrong :: right ... ok"), "{stdout}");
    assert!(stdout.contains("test demo.wrong :: wrong ... FAILED"), "{stdout}");
    assert!(stdout.contains("alert 1: `user` is \"a\", expected \"b\""), "{stdout}");
    assert!(stdout.contains("1 passed; 1 failed"), "{stdout}");
}

#[test]
fn replay_skips_malformed_lines_with_their_numbers() {
    let path = data("malformed.jsonl");
    let out = run(&["replay", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    for expected in [
        "malformed.jsonl:2: skipped (invalid_json)",
        "malformed.jsonl:3: skipped (invalid_json)",
        "malformed.jsonl:4: skipped (missing_ts)",
        "malformed.jsonl:5: skipped (invalid_ts)",
        "malformed.jsonl:6: skipped (missing_kind)",
        "malformed.jsonl:7: skipped (not_an_object)",
        "malformed.jsonl:8: skipped (wrong_type): `status` of a `api_call` event must be a number",
        "replay: 10 events, 2 alerts, 7 rejected, 0 late, 0 ahead",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    golden(&data("malformed.alerts.jsonl"), &text(&out.stdout));
}

#[test]
fn replay_counts_late_events_and_keeps_them_out_of_windows() {
    let path = data("late.jsonl");
    let site = demo_site_rules();
    let out = run(&["replay", path.to_str().unwrap(), "--rules", site.path().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("replay: 14 events, 2 alerts, 0 rejected, 5 late, 0 ahead"), "{stderr}");
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("failed_login_burst"), "late failures must not complete a burst: {stdout}");
    golden(&data("late.alerts.jsonl"), &stdout);
    // With more lateness allowed, the same events do make a burst.
    let out = run(&["replay", path.to_str().unwrap(), "--lateness", "30m"]);
    assert!(text(&out.stdout).contains("auth.failed_login_burst"));
}

/// Failed logins of `user`, one every second from `start` (`HH:MM`), as lines.
fn failures(user: &str, date: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(r#"{{"ts":"{date}T08:00:{i:02}Z","kind":"login","user":"{user}","outcome":"failure"}}"#) + "\n"
        })
        .collect()
}

#[test]
fn one_event_dated_9999_does_not_blind_a_replay() {
    let mut input = r#"{"ts":"9999-12-31T23:59:59Z","kind":"heartbeat"}"#.to_owned() + "\n";
    input.push_str(&failures("victim", "2026-11-09", 12));
    let out = run_with_stdin(&["replay", "-"], input.as_bytes());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("-:1: ahead of its stream (`ts` 9999-12-31T23:59:59Z"), "{stderr}");
    assert!(stderr.contains("replay: 13 events, 1 alerts, 0 rejected, 0 late, 1 ahead, 1 updates"), "{stderr}");
    assert!(text(&out.stdout).contains("auth.failed_login_burst"));
}

#[test]
fn a_replay_of_two_sources_with_disjoint_times_drops_nothing_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    let november = dir.path().join("november.jsonl");
    let october = dir.path().join("october.jsonl");
    std::fs::write(&november, failures("alice", "2026-11-09", 12)).unwrap();
    std::fs::write(&october, failures("bob", "2026-10-09", 12)).unwrap();
    for files in [[&november, &october], [&october, &november]] {
        let out = run(&["replay", files[0].to_str().unwrap(), files[1].to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert!(stderr.contains("replay: 24 events, 2 alerts, 0 rejected, 0 late, 0 ahead"), "{stderr}");
        let stdout = text(&out.stdout);
        assert!(stdout.contains(r#""user":"alice""#) && stdout.contains(r#""user":"bob""#), "{stdout}");
        // Merged by event time: October's burst comes out first.
        assert!(stdout.find("bob").unwrap() < stdout.find("alice").unwrap(), "{stdout}");
    }
    // The same files concatenated into one source: November first makes
    // October late, which is what separate inputs avoid.
    let mut both = std::fs::read(&november).unwrap();
    both.extend(std::fs::read(&october).unwrap());
    let out = run_with_stdin(&["replay", "-"], &both);
    assert!(text(&out.stderr).contains("12 late"), "{}", text(&out.stderr));
    // ... or naming the field that tells the recordings apart.
    let out = run_with_stdin(&["replay", "-", "--source-field", "user"], &both);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("replay: 24 events, 2 alerts, 0 rejected, 0 late, 0 ahead"), "{stderr}");
}

#[test]
fn replay_reads_stdin_and_rejects_oversized_lines() {
    let mut input = br#"{"ts":"2026-11-09T08:00:00Z","kind":"login","user":"a","outcome":"failure"}"#.to_vec();
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'x', 2 << 20));
    input.push(b'\n');
    let out = run_with_stdin(&["replay", "-"], &input);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("-:2: skipped (too_large)"), "{stderr}");
    assert!(stderr.contains("replay: 1 events, 0 alerts, 1 rejected"), "{stderr}");
}

#[test]
fn replay_of_the_demo_stream_is_deterministic_and_golden() {
    let events = run(&["generate"]);
    assert!(events.status.success());
    let site = demo_site_rules();
    let rules = site.path().to_str().unwrap();
    let first = run_with_stdin(&["replay", "-", "--rules", rules], &events.stdout);
    let second = run_with_stdin(&["replay", "-", "--rules", rules], &events.stdout);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(first.stdout, second.stdout, "same input, same output, byte for byte");
    let alerts = text(&first.stdout);
    for line in alerts.lines() {
        let alert: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["id", "rule", "title", "severity", "group", "summary", "ts", "first_ts", "evidence", "tags"] {
            assert!(alert.get(field).is_some(), "alert lacks `{field}`: {line}");
        }
        assert!(alert.get("count").is_some() || alert.get("score").is_some());
        assert!(alert.get("raised_at").is_none(), "a replay has no wall-clock time");
    }
    golden(&data("demo.alerts.jsonl"), &alerts);
}

#[test]
fn every_seeded_attack_in_the_demo_fires_and_normal_days_stay_quiet() {
    let alerts = std::fs::read_to_string(data("demo.alerts.jsonl")).unwrap();
    let alerts: Vec<serde_json::Value> = alerts.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let live: Vec<&serde_json::Value> =
        alerts.iter().filter(|a| a["ts"].as_str().unwrap().starts_with("2026-11-09")).collect();
    for rule in [
        "auth.failed_login_burst",
        "auth.password_spraying",
        "auth.brute_force_success",
        "auth.offboarded_user",
        "auth.new_device",
        "auth.new_country",
        "auth.unusual_login_hour",
        "access.role_permission",
        "access.revoked_token",
        "access.outside_allowlist",
        "access.new_network",
        "access.old_token",
        "api.error_spike",
        "api.error_volume_spike",
        "volume.message_spike",
        "volume.high_message_rate",
        "volume.reports_stopped",
        "admin.off_hours_change",
    ] {
        assert!(live.iter().any(|a| a["rule"] == rule), "{rule} did not fire on the live day");
    }
    let history_criticals: Vec<_> = alerts
        .iter()
        .filter(|a| !a["ts"].as_str().unwrap().starts_with("2026-11-09") && a["severity"] == "critical")
        .collect();
    assert!(history_criticals.is_empty(), "two weeks of normal traffic paged someone: {history_criticals:?}");
}

/// A long attack on one user, the user's own failure of days before, and
/// another user's failures at the same time: the alert tells this attack
/// and only it, first when it starts, then whole once it is over.
#[test]
fn an_alert_describes_its_incident_and_only_it() {
    let line = |ts: String, user: &str, ip: &str| {
        format!(r#"{{"ts":"{ts}","kind":"login","user":"{user}","outcome":"failure","src_ip":"{ip}"}}"#) + "\n"
    };
    let mut input = line("2026-11-06T08:00:00Z".into(), "frank", "198.51.100.20");
    for i in 0..150u32 {
        let ts = format!("2026-11-09T09:{:02}:{:02}Z", i * 2 / 60, i * 2 % 60);
        input.push_str(&line(ts.clone(), "frank", "203.0.113.5"));
        if i % 50 == 0 {
            input.push_str(&line(ts, "grace", "192.0.2.77"));
        }
    }
    // Later traffic moves event time on; the replay's guard holds the last
    // event back, so it takes two.
    for minute in ["11:00", "11:01"] {
        input.push_str(&format!(
            r#"{{"ts":"2026-11-09T{minute}:00Z","kind":"login","user":"frank","outcome":"success"}}"#
        ));
        input.push('\n');
    }
    let out = run_with_stdin(&["replay", "-"], input.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    golden(&data("incident.alerts.jsonl"), &stdout);

    let alerts: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let burst: Vec<&serde_json::Value> =
        alerts.iter().filter(|a| a["rule"] == "auth.failed_login_burst" && a["group"]["user"] == "frank").collect();
    assert_eq!(burst.len(), 2, "the first notice and the last: {stdout}");
    let (first, last) = (burst[0], burst[1]);
    assert_eq!(first["id"], last["id"], "one alert, updated");
    assert_eq!((first["count"].as_u64(), first["events"].as_u64()), (Some(10), Some(10)));
    assert_eq!(last["update"], 1);
    assert_eq!(last["status"], "resolved");
    assert_eq!(last["events"], 150);
    assert_eq!(last["top"]["src_ip"], serde_json::json!([{"value": "203.0.113.5", "count": 150}]));
    assert_eq!(last["summary"], "150 failed logins for frank from 203.0.113.5 (150)");
    assert_eq!(
        (last["first_ts"].as_str(), last["ts"].as_str()),
        (Some("2026-11-09T09:00:00Z"), Some("2026-11-09T09:04:58Z"))
    );
    for alert in [first, last] {
        let evidence = alert["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty());
        for event in evidence {
            assert_eq!(
                (event["user"].as_str(), event["src_ip"].as_str()),
                (Some("frank"), Some("203.0.113.5")),
                "{event}"
            );
            assert!(event["ts"].as_str().unwrap() >= alert["first_ts"].as_str().unwrap(), "in the window: {event}");
        }
    }
    assert_eq!(first["evidence"].as_array().unwrap().len(), 10, "the ten that fired, not the failure of days before");
    assert!(!stdout.contains(r#""summary":"150 failed logins for grace"#));
}

/// YAML 1.2 core schema: `country: NO` is Norway, not `false`; `yes` is
/// no boolean in a config either.
#[test]
fn yaml_1_1_booleans_are_strings_in_rules_and_refused_as_booleans_in_config() {
    let dir = tempfile::tempdir().unwrap();
    let rule = r#"id: x.norway
title: Logins from Norway
severity: warning
filter: {kind: login, country: NO, mfa: false}
detect: {type: match, group_by: [user]}
alert: {summary: "{{user}} from {{country}}"}
tests:
  - name: a login from Norway fires
    events: [{ts: "2026-11-23T10:00:00Z", kind: login, user: a, country: NO, mfa: false}]
    expect: [{user: a}]
  - name: a login from Sweden does not
    events: [{ts: "2026-11-23T10:00:00Z", kind: login, user: b, country: SE, mfa: false}]
    expect: []
  - name: a test event vigil would refuse fails the test
    events: [{kind: login, user: c, country: NO}]
    expect: []
"#;
    std::fs::write(dir.path().join("norway.yml"), rule).unwrap();
    let out = common::run(&["test", "--rules", dir.path().to_str().unwrap()]);
    let text = common::text(&out.stdout);
    assert!(text.contains("a login from Norway fires ... ok"), "{text}");
    assert!(text.contains("a login from Sweden does not ... ok"), "{text}");
    assert!(text.contains("event 1 is refused (the event has no `ts`)"), "{text}");
    assert!(text.contains("2 passed; 1 failed"), "{text}");

    let elsewhere = tempfile::tempdir().unwrap();
    let config = elsewhere.path().join("vigil.yml");
    std::fs::write(&config, "source: {type: stdin}\nmetrics: {enabled: yes}\n").unwrap();
    let out = common::run(&["check", "--config", config.to_str().unwrap(), "--rules", dir.path().to_str().unwrap()]);
    let err = common::text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("vigil.yml:2:20: not a boolean: write `true` or `false`"), "{err}");
    assert!(!err.contains("error(s) in the rules"), "{err}");
}

/// An empty config would run the demo stream and an empty rule set would
/// detect nothing: both are refused, with what to do instead.
#[test]
fn an_empty_config_or_rule_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.yml");
    for text in ["", "# source: {type: kafka}\n\n", "---\n"] {
        std::fs::write(&config, text).unwrap();
        let out = common::run(&["check", "--config", config.to_str().unwrap()]);
        let err = common::text(&out.stderr);
        assert!(!out.status.success(), "{text:?}");
        assert!(err.contains("vigil.yml:1:1: the config is empty"), "{text:?}: {err}");
        let out = common::run(&["run", "--config", config.to_str().unwrap()]);
        assert!(!out.status.success() && common::text(&out.stderr).contains("the config is empty"));
    }
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let out = common::run(&["check", "--rules", rules.to_str().unwrap()]);
    let err = common::text(&out.stderr);
    assert!(!out.status.success() && err.contains("no rule files (*.yml, *.yaml) in"), "{err}");
    std::fs::write(
        rules.join("off.yml"),
        "id: x.off\ntitle: Off\nseverity: warning\nenabled: false\nfilter: {kind: login}\n\
         detect: {type: match}\nalert: {summary: off}\n",
    )
    .unwrap();
    let out = common::run(&["check", "--rules", rules.to_str().unwrap()]);
    let err = common::text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("off.yml:1:1: no rules: 1 rule file(s), none with an enabled rule"),
        "{err}"
    );
}
