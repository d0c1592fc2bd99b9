//! A running `vigil run`: its stdout lines, its admin address, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::vigil;

/// A running daemon; killed when dropped, so a failing test leaves no
/// process behind.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line holds `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with `{needle}`");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A threshold rule: four failed logins of a user within 5 minutes.
pub const BURST_RULE: &str = "id: auth.burst
title: Burst
severity: critical
filter: {kind: login, outcome: failure}
detect: {type: threshold, group_by: [user], window: 5m, threshold: 4}
alert: {summary: \"{{count}} failures for {{user}}\"}
";

/// A config reading stdin with the rules of `rules`, polled for changes
/// every 200 ms.
pub fn watching(rules: &std::path::Path) -> String {
    format!(
        "rules: {}\nreload: {{watch: 200ms}}\nsource: {{type: stdin}}\nmetrics: {{listen: 127.0.0.1:0}}\n\
         output: {{format: json}}\n",
        rules.display()
    )
}

/// Starts the daemon with `config`; returns it, its stdout lines and the
/// admin address it logged.
pub fn start(config: &str, stdin: Stdio) -> (Daemon, mpsc::Receiver<String>, String, tempfile::TempDir) {
    spawn(config, stdin, Some(std::env::var("VIGIL_TEST_LOG").unwrap_or_else(|_| "info".into())))
}

/// Like [`start`], with the log level the config sets (no `RUST_LOG`).
pub fn start_with_config_log(
    config: &str,
    stdin: Stdio,
) -> (Daemon, mpsc::Receiver<String>, String, tempfile::TempDir) {
    spawn(config, stdin, None)
}

fn spawn(
    config: &str,
    stdin: Stdio,
    rust_log: Option<String>,
) -> (Daemon, mpsc::Receiver<String>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.yml");
    std::fs::write(&path, config).unwrap();
    let mut command = vigil();
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command
        .args(["run", "--config", path.to_str().unwrap()])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = child.stderr.take().unwrap();
    let (addr_tx, addr_rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Shown with the output of a failing test.
            eprintln!("vigil: {line}");
            kept.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("http://").nth(1) {
                let addr: String = rest.chars().take_while(|c| *c != '/' && !c.is_whitespace()).collect();
                let _ = addr_tx.send(addr);
            }
        }
    });
    let child = Daemon { child, log };
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("the daemon logs its admin address");
    (child, lines, addr, dir)
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    // A listener that stops answering fails the test instead of hanging it.
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

/// The status of a GET, or `None` while nothing listens.
pub fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

pub fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the daemon closed its output before a line with `{needle}`; saw:\n{}", seen.join("\n"))
            }
        }
    }
    panic!("no output line with `{needle}`; saw:\n{}", seen.join("\n"));
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `/metrics` until it holds `series` (a line prefix with its value).
pub fn wait_metric(addr: &str, series: &str) -> String {
    wait_metrics(addr, series, |m| m.contains(series))
}

/// Polls `/metrics` until `done` holds.
pub fn wait_metrics(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = http_get(addr, "/metrics");
        if done(&metrics) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "no `{what}` in:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of one series (`name{labels}`) in a `/metrics` text.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
