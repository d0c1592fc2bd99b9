//! Rule reload in a running daemon: a changed file or SIGHUP swaps the
//! rules, windows survive a reworded rule, a broken rule set is refused
//! with its position and the running rules go on.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::daemon::{metric, start, wait_for, wait_metric, wait_metrics, watching, BURST_RULE};

const BURST: &str = BURST_RULE;

fn failure(stdin: &mut impl Write, user: &str, second: u32) {
    writeln!(stdin, r#"{{"ts":"2026-11-23T10:00:{second:02}Z","kind":"login","user":"{user}","outcome":"failure"}}"#)
        .unwrap();
    stdin.flush().unwrap();
}

#[test]
fn rules_reload_on_change_and_on_sighup_keep_windows_and_refuse_a_broken_set() {
    let rules = tempfile::tempdir().unwrap();
    let file = rules.path().join("auth.yml");
    std::fs::write(&file, BURST).unwrap();
    let config = watching(rules.path());
    let (mut daemon, lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = daemon.stdin.take().unwrap();
    let mut seen = Vec::new();
    let metrics = wait_metric(&addr, "vigil_rules_loaded 1");
    assert_eq!(metric(&metrics, "vigil_rules_last_reload_successful"), Some(1.0));
    assert!(metrics.contains(r#"vigil_rule_info{detector="threshold",rule="auth.burst",severity="critical"} 1"#));

    // Three failures, then the rule is reworded: its window is kept.
    for second in 0..3 {
        failure(&mut stdin, "alice", second);
    }
    wait_metric(&addr, r#"vigil_logins_total{outcome="failure"} 3"#);
    let reworded = BURST.replace("title: Burst", "title: Renamed burst").replace("critical", "warning");
    std::fs::write(&file, &reworded).unwrap();
    wait_metric(&addr, r#"vigil_rules_reloads_total{result="success"} 1"#);
    let reloaded = daemon.wait_log("Rules reloaded");
    assert!(reloaded.contains("kept=1") && reloaded.contains("reset=0"), "{reloaded}");
    failure(&mut stdin, "alice", 3);
    wait_for(&lines, "Renamed burst", &mut seen);
    let alert = seen.last().unwrap();
    assert!(alert.contains(r#""count":4"#) && alert.contains(r#""severity":"warning""#), "{alert}");

    // A broken rule set is refused with its position; the rules running go on.
    let broken = reworded.replace("threshold: 4", "threshold: many");
    std::fs::write(&file, &broken).unwrap();
    let metrics = wait_metric(&addr, r#"vigil_rules_reloads_total{result="failure"} 1"#);
    assert_eq!(metric(&metrics, "vigil_rules_last_reload_successful"), Some(0.0));
    let problem = daemon.wait_log("Rule error");
    assert!(problem.contains(&format!("{}:5:", file.display())), "the position of the problem: {problem}");
    daemon.wait_log("Rule reload refused");
    for second in 10..14 {
        failure(&mut stdin, "bob", second);
    }
    wait_for(&lines, r#""user":"bob""#, &mut seen);

    // Fixed and given a second rule: reloaded by the watch; SIGHUP reloads
    // even when nothing changed.
    let second = BURST.replace("auth.burst", "auth.other").replace("outcome: failure", "outcome: success");
    std::fs::write(rules.path().join("other.yml"), second).unwrap();
    std::fs::write(&file, &reworded).unwrap();
    let metrics = wait_metric(&addr, r#"vigil_rules_reloads_total{result="success"} 2"#);
    assert_eq!(metric(&metrics, "vigil_rules_last_reload_successful"), Some(1.0));
    assert_eq!(metric(&metrics, "vigil_rules_loaded"), Some(2.0));
    assert!(metrics.contains(r#"vigil_rule_info{detector="threshold",rule="auth.other",severity="critical"} 1"#));
    assert!(metrics.contains(r#"vigil_rule_info{detector="threshold",rule="auth.burst",severity="warning"} 1"#));
    assert!(!metrics.contains(r#"rule="auth.burst",severity="critical"} 1"#), "the old rule's info is gone");
    Command::new("kill").args(["-HUP", &daemon.id().to_string()]).status().unwrap();
    wait_metrics(&addr, "a third successful reload", |m| {
        metric(m, r#"vigil_rules_reloads_total{result="success"}"#) == Some(3.0)
    });
    assert!(common::daemon::terminate(&mut daemon).success());
    drop(stdin);
}

/// Emptying the rules directory (a ConfigMap rendered without its rules)
/// is refused on reload: the running rules go on detecting.
#[test]
fn a_reload_to_no_rules_is_refused_and_the_running_rules_stay() {
    let rules = tempfile::tempdir().unwrap();
    let file = rules.path().join("auth.yml");
    std::fs::write(&file, BURST).unwrap();
    let config = watching(rules.path());
    let (mut daemon, lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = daemon.stdin.take().unwrap();
    wait_metric(&addr, "vigil_rules_loaded 1");
    std::fs::write(&file, "# all rules removed\n").unwrap();
    let metrics = wait_metric(&addr, r#"vigil_rules_reloads_total{result="failure"} 1"#);
    assert_eq!(metric(&metrics, "vigil_rules_loaded"), Some(1.0));
    daemon.wait_log("no rules");
    std::fs::remove_file(&file).unwrap();
    wait_metric(&addr, r#"vigil_rules_reloads_total{result="failure"} 2"#);
    daemon.wait_log("no rule files");
    for second in 0..4 {
        failure(&mut stdin, "carol", second);
    }
    wait_for(&lines, r#""user":"carol""#, &mut Vec::new());
    assert!(common::daemon::terminate(&mut daemon).success());
    drop(stdin);
}
