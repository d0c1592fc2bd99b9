//! `vigil run` as a daemon: alerts on stdout, metrics over HTTP on
//! loopback, graceful shutdown on SIGTERM.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{http_get, start, terminate, wait_for, wait_metric};
use common::vigil;

#[test]
fn demo_daemon_raises_alerts_serves_metrics_and_stops_on_sigterm() {
    let config = "source: {type: demo, speed: 200000}\nmetrics: {listen: 127.0.0.1:0}\n";
    let (mut child, lines, addr, _dir) = start(config, Stdio::null());
    let mut seen = Vec::new();
    // The last alert of the demo's live day (gina's login at an unusual
    // hour): everything before it was raised.
    wait_for(&lines, "gina@acme.example logged in at an unusual time", &mut seen);
    let alerts: Vec<serde_json::Value> =
        seen.iter().map(|l| serde_json::from_str(l).expect("JSON lines when piped")).collect();
    assert!(alerts.iter().any(|a| a["rule"] == "auth.brute_force_success"));
    assert!(alerts.iter().all(|a| a["raised_at"].is_string()), "the daemon stamps wall-clock time");

    assert_eq!(http_get(&addr, "/healthz").0, 200);
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    let (status, metrics) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    for series in [
        "vigil_events_total{kind=\"login\"}",
        "vigil_alerts_total{detector=\"threshold\",rule=\"auth.failed_login_burst\",severity=\"critical\"} 1",
        "vigil_rule_info{detector=\"off_hours\",rule=\"auth.unusual_login_hour\",severity=\"warning\"} 1",
        "vigil_logins_total{outcome=\"failure\"}",
        "vigil_api_calls_total{status_class=\"5xx\"}",
        "vigil_messages_total",
        "vigil_rule_evaluations_sampled_total{rule=\"auth.new_device\"}",
        "vigil_detector_groups{rule=\"auth.new_device\"}",
        "vigil_rules_loaded 22",
        "vigil_events_rejected_total{reason=\"invalid_json\"} 0",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
    assert!(!metrics.contains("acme.example"), "no user in any metric label");
    assert!(!metrics.contains("vigil_rule_inert{"), "the demo brings its site data: no rule is inert");
    assert!(terminate(&mut child).success());
}

/// Failed logins of alice, one a second, each from an address of its own
/// (a guesser's pool): ten make a burst, and only the per-user rule fires.
fn failed_logins(stdin: &mut impl Write, count: u32) {
    for i in 0..count {
        writeln!(
            stdin,
            r#"{{"ts":"2026-11-09T08:00:{i:02}Z","kind":"login","user":"alice","outcome":"failure","src_ip":"185.220.101.{i}"}}"#
        )
        .unwrap();
    }
}

#[test]
fn stdin_daemon_alerts_at_once_and_drains_on_sigterm() {
    let config = "source: {type: stdin}\nmetrics: {listen: 127.0.0.1:0}\noutput: {format: json}\n";
    let (mut child, lines, addr, _dir) = start(config, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    failed_logins(&mut stdin, 10);
    writeln!(stdin, "not json").unwrap();
    stdin.flush().unwrap();
    let mut seen = Vec::new();
    // The stream stays open: the alert must come out without more input.
    wait_for(&lines, "auth.failed_login_burst", &mut seen);
    let (_, metrics) = http_get(&addr, "/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = metrics;
    while !metrics.contains("vigil_events_rejected_total{reason=\"invalid_json\"} 1") {
        assert!(Instant::now() < deadline, "rejection not counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
        metrics = http_get(&addr, "/metrics").1;
    }
    assert!(terminate(&mut child).success());
    drop(stdin);
}

#[test]
fn file_daemon_exits_when_its_input_ends() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let out = dir.path().join("alerts.jsonl");
    std::fs::copy(common::data("malformed.jsonl"), &events).unwrap();
    let config = dir.path().join("vigil.yml");
    std::fs::write(
        &config,
        "source: {type: file, path: events.jsonl}\nmetrics: {enabled: false}\noutput: {path: alerts.jsonl}\n",
    )
    .unwrap();
    let run = || {
        vigil()
            .args(["run", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    assert!(run().success());
    let alerts = std::fs::read_to_string(&out).unwrap();
    assert_eq!(alerts.lines().count(), 2, "{alerts}");
    assert!(alerts.contains("auth.failed_login_burst") && alerts.contains("auth.failed_logins_from_address"));
    // The same input again, with the same state: the alert log already
    // holds the alert, so it is not shown (or delivered) a second time.
    assert!(run().success());
    let again = std::fs::read_to_string(&out).unwrap();
    assert_eq!(again, alerts, "an alert the log refused as a replay is not printed");
}

/// `promtool check metrics` (Debian's prometheus package) accepts what
/// `/metrics` serves, with the detection, delivery and process metrics
/// present.
#[test]
fn promtool_accepts_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "source: {{type: demo, speed: 200000}}\nmetrics: {{listen: 127.0.0.1:0}}\nstate: {{dir: {}}}\n\
         notifiers:\n  archive: {{type: file, path: {}}}\n",
        dir.path().join("state").display(),
        dir.path().join("delivered.jsonl").display()
    );
    let (mut child, lines, addr, _dir) = start(&config, Stdio::null());
    wait_for(&lines, "gina@acme.example", &mut Vec::new());
    let metrics = common::daemon::wait_metrics(&addr, "a delivered alert", |m| {
        m.contains("vigil_notification_latency_seconds_count{notifier=\"archive\"}")
    });
    let body = metrics.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (apt-get install prometheus)");
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
    assert!(terminate(&mut child).success());
}

#[test]
fn json_logs_carry_one_info_line_per_alert_and_nothing_per_event_above_debug() {
    let config = "source: {type: stdin}\nmetrics: {listen: 127.0.0.1:0}\noutput: {format: json}\nlog: {format: json}\n";
    let (mut child, lines, addr, _dir) = start(config, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    failed_logins(&mut stdin, 10);
    for _ in 0..50 {
        writeln!(stdin, "not json").unwrap();
    }
    stdin.flush().unwrap();
    let mut seen = Vec::new();
    wait_for(&lines, "auth.failed_login_burst", &mut seen);
    wait_metric(&addr, "vigil_events_rejected_total{reason=\"invalid_json\"} 50");
    let alert_line = child.wait_log("\"message\":\"Alert\"");
    assert!(terminate(&mut child).success());
    drop(stdin);

    let log = child.log();
    let records: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let alert: serde_json::Value = serde_json::from_str(&alert_line).unwrap();
    assert_eq!(alert["level"], "INFO");
    assert_eq!(alert["fields"]["rule"], "auth.failed_login_burst");
    assert_eq!(alert["fields"]["severity"], "critical");
    assert_eq!(alert["fields"]["group"], "user=alice");
    let alerts = records.iter().filter(|r| r["fields"]["message"] == "Alert").count();
    assert_eq!(alerts, 1, "one line per alert");
    let (inert, warnings): (Vec<_>, Vec<_>) = records
        .iter()
        .filter(|r| r["level"] == "WARN")
        .partition(|r| r["fields"]["message"].as_str().is_some_and(|m| m.starts_with("Rule is inert")));
    let inert: Vec<&str> = inert.iter().filter_map(|r| r["fields"]["rule"].as_str()).collect();
    assert_eq!(
        inert,
        ["access.outside_allowlist", "access.revoked_token", "admin.off_hours_change", "auth.offboarded_user"],
        "start-up says which rules wait for site data"
    );
    assert_eq!(warnings.len(), 1, "50 malformed events make one warning: {warnings:?}");
    assert_eq!(warnings[0]["fields"]["count"], 1, "the first is reported at once; the rest wait a minute");
    assert!(log.lines().all(|l| !l.contains("\u{1b}[")), "no colour codes off a terminal");
}

/// A small tmpfs, so that the alert log can be made unwritable (root
/// ignores permissions; a full disk is the failure that happens).
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (CAP_SYS_ADMIN), as CI has");
        SmallDisk { path, _dir: dir }
    }

    /// Writes until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).and_then(|()| file.sync_all()).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn an_alert_log_that_cannot_be_written_makes_vigil_unready_and_holds_the_alert_until_it_can() {
    let disk = SmallDisk::mount();
    let config = format!(
        "source: {{type: stdin}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\nstate: {{dir: {}}}\n",
        disk.path.display()
    );
    let (mut child, lines, addr, _dir) = start(&config, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    wait_for_status(&addr, "/readyz", 200);
    let filler = disk.fill();

    failed_logins(&mut stdin, 10);
    stdin.flush().unwrap();
    wait_for_status(&addr, "/readyz", 503);
    child.wait_log("Writing the alert log failed");
    assert!(!common::alert_log(&disk.path).contains("auth.failed_login_burst"), "not on disk yet");
    assert_eq!(http_get(&addr, "/healthz").0, 200, "alive while not ready");
    // An alert is shown only once it is on disk.
    std::thread::sleep(Duration::from_millis(500));
    assert!(lines.try_recv().is_err(), "an alert was printed before it was on disk");

    std::fs::remove_file(filler).unwrap();
    let mut seen = Vec::new();
    wait_for(&lines, "auth.failed_login_burst", &mut seen);
    wait_for_status(&addr, "/readyz", 200);
    child.wait_log("The alert log is written again");
    let logged = common::alert_log(&disk.path);
    assert_eq!(logged.lines().count(), 1, "the alert, once and whole:\n{logged}");
    assert!(logged.contains("auth.failed_login_burst"));
    assert!(terminate(&mut child).success());
    drop(stdin);
}

fn wait_for_status(addr: &str, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(addr, path).0 != status {
        assert!(Instant::now() < deadline, "{path} did not answer {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_log_level_is_a_filter_per_module() {
    let config = "source: {type: stdin}\nmetrics: {listen: 127.0.0.1:0}\noutput: {format: json}\n\
                  log: {level: \"warn,vigil::app=info,vigil::app::reload=warn\"}\n";
    let (mut child, _lines, addr, _dir) = common::daemon::start_with_config_log(config, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "not json").unwrap();
    stdin.flush().unwrap();
    child.wait_log("Malformed events set aside");
    std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    wait_metric(&addr, "vigil_rules_reloads_total{result=\"success\"} 1");
    assert!(terminate(&mut child).success());
    drop(stdin);
    let log = child.log();
    assert!(log.contains("vigil is running"), "vigil::app logs at INFO:\n{log}");
    assert!(!log.contains("Rules reloaded"), "vigil::app::reload logs only WARN and above:\n{log}");
}

/// A feed that stops is seen while it is silent: the wall clock moves the
/// quiet source's event time, so a flatline fires within its window plus
/// `idle_advance` (and a tick), and says "resumed" at the next event.
/// Before, event time stood still with the feed and the silence was
/// reported only when an unrelated event arrived.
#[test]
fn a_feed_that_stops_fires_a_flatline_while_silent_and_resumed_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("feed.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("silent.yml"),
        "id: feed.silent\ntitle: No events\nseverity: critical\nfilter: {kind|exists: true}\n\
         detect: {type: flatline, group_by: [], window: 4s, threshold: 1}\n\
         alert: {summary: \"No events for {{window}}\", realert: 1h}\n",
    )
    .unwrap();
    let config = format!(
        "rules: {}\nsource: {{type: file, path: {}}}\nlateness: 1s\nidle_advance: 2s\n\
         metrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\n",
        rules.display(),
        fifo.display()
    );
    // The writer opens the FIFO after vigil does and keeps it open.
    let writer = std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(fifo).unwrap());
    let (mut child, lines, _addr, _dir) = start(&config, Stdio::null());
    let mut feed = writer.join().unwrap();
    let event = || format!(r#"{{"ts":"{}","kind":"login","user":"a","outcome":"success"}}"#, now_rfc3339());
    for _ in 0..3 {
        writeln!(feed, "{}", event()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    feed.flush().unwrap();
    let stopped = Instant::now();
    let mut seen = Vec::new();
    wait_for(&lines, "feed.silent", &mut seen);
    let after = stopped.elapsed();
    assert!(after >= Duration::from_secs(3), "fired before the window was over: {after:?}");
    assert!(after <= Duration::from_secs(4 + 2 + 3), "window 4s + idle_advance 2s (+ tick and slack): {after:?}");
    let silent: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(silent["count"], 0);
    assert!(silent.get("status").is_none(), "a firing alert: {silent}");

    writeln!(feed, "{}", event()).unwrap();
    feed.flush().unwrap();
    wait_for(&lines, "resumed", &mut seen);
    let resumed: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!((resumed["rule"].as_str(), resumed["status"].as_str()), (Some("feed.silent"), Some("resumed")));
    assert!(resumed["summary"].as_str().unwrap().starts_with("Resumed after"), "{resumed}");
    assert!(terminate(&mut child).success());
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    vigil::time::Timestamp(now.as_micros() as i64).to_string()
}

/// 200 idle connections to the admin port under a 96-descriptor limit:
/// vigil keeps at most 32 of them (a new one closes the oldest), so
/// `/healthz` still answers and the alert log is still written.
#[test]
fn idle_admin_connections_cannot_take_the_descriptors_vigil_needs() {
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("vigil.yml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: stdin}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\nstate: {{dir: {}}}\n",
            state.path().display()
        ),
    )
    .unwrap();
    let script = format!("ulimit -n 96 && exec {} run --config {}", env!("CARGO_BIN_EXE_vigil"), config.display());
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("vigil: {line}");
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the admin address is logged");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    let idle: Vec<std::net::TcpStream> = (0..200).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
    assert!(idle.len() >= 150, "connected {}", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_eq!(common::daemon::http_get(&addr, "/healthz").0, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "healthz took {:?}", started.elapsed());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id())).unwrap().count();
    assert!(fds < 80, "vigil holds {fds} descriptors");

    let mut stdin = child.stdin.take().unwrap();
    failed_logins(&mut stdin, 12);
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(common::alert_log(state.path()).contains("auth.failed_login_burst"));
    drop(idle);
}

/// A file source read again after a clean restart: 6,000 alerts over many
/// alert log segments (the log once remembered only its last two) raise,
/// print and deliver nothing a second time.
#[test]
fn a_restarted_file_daemon_neither_raises_nor_delivers_an_alert_twice() {
    let dir = tempfile::tempdir().unwrap();
    common::login_match_rules(dir.path());
    let events: String = (0..6000)
        .map(|i| {
            format!(
                "{{\"ts\":\"2026-11-09T{:02}:{:02}:{:02}Z\",\"kind\":\"login\",\"user\":\"u{i}\"}}\n",
                i / 3600,
                i / 60 % 60,
                i % 60
            )
        })
        .collect();
    std::fs::write(dir.path().join("events.jsonl"), events).unwrap();
    let config = dir.path().join("vigil.yml");
    std::fs::write(
        &config,
        "rules: rules\nsource: {type: file, path: events.jsonl}\nmetrics: {enabled: false}\n\
         output: {path: printed.jsonl}\nstate: {dir: state, alert_log: {segment_bytes: 65536}}\n\
         notifiers:\n  archive: {type: file, path: delivered.jsonl}\n",
    )
    .unwrap();
    let run = || {
        let status = vigil()
            .current_dir(dir.path())
            .args(["run", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    run();
    let segments = std::fs::read_dir(dir.path().join("state/alerts")).unwrap().count();
    assert!(segments > 10, "{segments} segments");
    // What vigil writes holds personal data: its user's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &str| std::fs::metadata(dir.path().join(path)).unwrap().permissions().mode() & 0o777;
    for path in ["state", "state/alerts", "state/outbox"] {
        assert_eq!(mode(path), 0o700, "{path}");
    }
    for path in [
        "state/alerts/000001.jsonl",
        "state/alerts/log.id",
        "state/outbox/archive.json",
        "printed.jsonl",
        "delivered.jsonl",
    ] {
        assert_eq!(mode(path), 0o600, "{path}");
    }
    run();
    let lines = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap().lines().count();
    assert_eq!(lines("printed.jsonl"), 6000);
    assert_eq!(lines("delivered.jsonl"), 6000);
    assert_eq!(common::alert_log(&dir.path().join("state")).lines().count(), 6000);
}

/// The alert log wiped (or restored from an older copy) while `outbox/`
/// keeps the notifiers' positions: the new alerts are still delivered,
/// none read from the middle of a line.
#[test]
fn a_delivery_position_of_a_replaced_alert_log_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    common::login_match_rules(dir.path());
    let events = |prefix: &str, count: usize| -> String {
        (0..count)
            .map(|i| {
                format!(
                    "{{\"ts\":\"2026-11-09T10:{:02}:{:02}Z\",\"kind\":\"login\",\"user\":\"{prefix}{i}\"}}\n",
                    i / 60,
                    i % 60
                )
            })
            .collect()
    };
    let config = dir.path().join("vigil.yml");
    std::fs::write(
        &config,
        "rules: rules\nsource: {type: file, path: events.jsonl}\nmetrics: {enabled: false}\noutput: {path: printed.jsonl}\n\
         state: {dir: state}\nnotifiers:\n  archive: {type: file, path: delivered.jsonl}\n",
    )
    .unwrap();
    let run = || {
        let out = vigil()
            .current_dir(dir.path())
            .args(["run", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        common::text(&out.stderr)
    };
    let delivered = || std::fs::read_to_string(dir.path().join("delivered.jsonl")).unwrap_or_default();
    // The first run starts the archive at the log's end, then delivers 300.
    std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
    run();
    std::fs::write(dir.path().join("events.jsonl"), events("old", 300)).unwrap();
    run();
    assert_eq!(delivered().lines().count(), 300);

    std::fs::remove_dir_all(dir.path().join("state/alerts")).unwrap();
    std::fs::write(dir.path().join("events.jsonl"), events("new", 20)).unwrap();
    let log = run();
    let text = delivered();
    let new: Vec<&str> = text.lines().skip(300).collect();
    assert_eq!(new.len(), 20, "{log}");
    assert!(new.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert!(log.contains("The alert log was replaced"), "{log}");
}
