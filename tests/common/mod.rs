//! Helpers shared by the integration tests: run the real binary, compare
//! with golden files under `tests/data/` (`UPDATE_GOLDEN=1` rewrites them).

#![allow(dead_code)]

pub mod daemon;
pub mod kafka;
pub mod notify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn vigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.current_dir(root()).env_remove("RUST_LOG");
    cmd
}

/// The alert log of the daemon with this state directory: its segments in
/// order, as one text.
pub fn alert_log(state: &Path) -> String {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(state.join("alerts"))
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    segments.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    segments.sort();
    segments.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect()
}

/// `dir/rules/` holding one rule that raises an alert for every login,
/// grouped by user: a storm of alerts from a stream of logins.
pub fn login_match_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("login.yml"),
        "id: t.login\ntitle: Login\nseverity: warning\nfilter: {kind: login}\n\
         detect: {type: match, group_by: [user]}\nalert: {summary: \"{{user}}\"}\n",
    )
    .unwrap();
    rules
}

/// The alerting rules in `dashboards/prometheus-rules.yaml`.
pub fn health_rule_count() -> usize {
    let text = std::fs::read_to_string(root().join("dashboards/prometheus-rules.yaml")).unwrap();
    text.lines().filter(|l| l.trim_start().starts_with("- alert:")).count()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

pub fn run(args: &[&str]) -> Output {
    vigil().args(args).stdin(Stdio::null()).output().expect("run vigil")
}

pub fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = vigil()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for vigil");
    writer.join().expect("writer");
    output
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Compares `actual` with the golden file, or rewrites it when
/// `UPDATE_GOLDEN` is set.
pub fn golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDEN=1 to create it", path.display()));
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
        panic!(
            "{} differs from the output (first differing line: {:?}); rerun with UPDATE_GOLDEN=1 if the change is intended\n--- actual ---\n{}",
            path.display(),
            first.map(|i| i + 1),
            actual.lines().take(40).collect::<Vec<_>>().join("\n")
        );
    }
}

/// The shipped rules with the demo company's site data in their empty
/// lists, as `vigil run` on the demo stream uses them.
pub fn demo_site_rules() -> tempfile::TempDir {
    let shipped = root().join("rules");
    let mut sources = vigil::config::load::read_rules(&shipped).expect("read the shipped rules");
    vigil::config::load::with_demo_site(&mut sources);
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in &sources.files {
        let relative = path.strip_prefix(&shipped).expect("under rules/");
        let target = dir.path().join(relative);
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::write(target, text).expect("write a rule");
    }
    std::fs::create_dir_all(dir.path().join("lists")).expect("mkdir lists");
    for (name, text) in &sources.lists {
        std::fs::write(dir.path().join("lists").join(format!("{name}.txt")), text).expect("write a list");
    }
    for (name, text) in &sources.tables {
        std::fs::write(dir.path().join("lists").join(format!("{name}.csv")), text).expect("write a table");
    }
    dir
}
