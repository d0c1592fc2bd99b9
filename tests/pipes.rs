//! Commands whose reader goes away (`vigil check | head -1`): a batch
//! command stops printing and exits quietly, keeping its verdict; the
//! daemon stops printing, never detecting. Each test gives vigil a real
//! pipe whose read end is already closed, so every write fails with EPIPE.

mod common;

use std::process::{Output, Stdio};

/// Runs vigil with stdout, stderr or both on a pipe nobody reads.
fn closed(args: &[&str], stdout: bool, stderr: bool, stdin: Option<&std::path::Path>) -> Output {
    let pipe = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Stdio::from(writer)
    };
    let mut command = common::vigil();
    command.args(args);
    command.stdout(if stdout { pipe() } else { Stdio::piped() });
    command.stderr(if stderr { pipe() } else { Stdio::piped() });
    command.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    });
    command.output().unwrap()
}

fn assert_quiet(out: &Output, code: i32, what: &str) {
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{what}: {stderr}");
}

#[test]
fn check_and_test_keep_their_verdict_when_their_reader_goes_away() {
    assert_quiet(&closed(&["check", "--rules", "rules"], true, true, None), 0, "check, both closed");
    assert_quiet(&closed(&["check", "--rules", "rules"], true, false, None), 0, "check, stdout closed");
    assert_quiet(&closed(&["test", "--rules", "rules"], true, true, None), 0, "test, both closed");

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("bad.yml"), "id: bad\nseverity: loud\n").unwrap();
    let dir = broken.path().to_str().unwrap();
    assert_quiet(&closed(&["check", "--rules", dir], true, true, None), 1, "check of a broken rule, both closed");
    assert_quiet(&closed(&["test", "--rules", dir], true, true, None), 1, "test of a broken rule, both closed");
}

#[test]
fn replay_and_generate_exit_quietly_when_their_reader_goes_away() {
    let events = common::data("late.jsonl");
    assert_quiet(&closed(&["replay", events.to_str().unwrap()], true, false, None), 0, "replay");
    assert_quiet(&closed(&["generate", "--days", "1"], true, false, None), 0, "generate");
}

#[test]
fn the_daemon_logs_every_alert_when_its_stdout_is_closed() {
    let state = tempfile::tempdir().unwrap();
    let input = state.path().join("events.jsonl");
    let mut events = String::new();
    for user in ["alice", "bob"] {
        for second in 0..12 {
            events.push_str(&format!(
                r#"{{"ts":"2026-11-23T10:00:{second:02}Z","kind":"login","user":"{user}","outcome":"failure","src_ip":"203.0.113.{second}"}}"#
            ));
            events.push('\n');
        }
    }
    std::fs::write(&input, events).unwrap();
    let config = state.path().join("vigil.yml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: stdin}}\nstate: {{dir: {}}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\n",
            state.path().display()
        ),
    )
    .unwrap();
    let out = closed(&["run", "--config", config.to_str().unwrap()], true, false, Some(&input));
    let log = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("no longer printed"), "{log}");
    let alerts = common::alert_log(state.path());
    let bursts = alerts.lines().filter(|l| l.contains("auth.failed_login_burst")).count();
    assert_eq!(bursts, 2, "{alerts}");
}
