//! The invariants of `docs/ARCHITECTURE.md`.
//!
//! The detection core is its own crate, `vigil-core`, so the compiler keeps
//! it from reaching the daemon's modules. What it may depend on is checked
//! here on the resolved dependency graph (`cargo tree`), not on source
//! text; what it may call (no IO, no wall clock, no threads) is refused by
//! clippy through `crates/vigil-core/clippy.toml`, whose entries are checked
//! here too. The rest reads the source: what users write is read only
//! through spec types, and detector state only through checkpoints.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    if dir.is_file() {
        out.push((dir.display().to_string(), std::fs::read_to_string(dir).unwrap()));
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        sources(&entry.unwrap().path(), out);
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every source file of the workspace's crates.
fn all_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    sources(&workspace().join("src"), &mut files);
    sources(&workspace().join("crates/vigil-core/src"), &mut files);
    files
}

/// Source text without `#[cfg(test)]` modules (tests may build fixtures).
fn production_part(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// `cargo tree` of the core alone over `edges`, one package per line in
/// `format`, as cargo resolves it for `-p vigil-core`.
fn core_tree(edges: &str, format: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["tree", "-p", "vigil-core", "--edges", edges, "--prefix", "none", "--format", format])
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The packages `vigil-core` is built with, and their features, resolved
/// for the core alone as `cargo build -p vigil-core` resolves them.
fn core_dependencies() -> Vec<(String, Vec<String>)> {
    core_tree("normal", "{p}|{f}")
        .lines()
        .filter_map(|line| {
            let (package, features) = line.split_once('|')?;
            let name = package.split_whitespace().next()?.to_owned();
            let features = features.trim_end_matches(" (*)").split(',').filter(|f| !f.is_empty()).map(String::from);
            Some((name, features.collect()))
        })
        .collect()
}

#[test]
fn the_core_depends_on_no_runtime_logging_metrics_or_network_crate() {
    let dependencies = core_dependencies();
    assert!(dependencies.iter().any(|(name, _)| name == "serde_json"), "the graph was read: {dependencies:?}");
    let forbidden = [
        "tokio",
        "mio",
        "socket2",
        "tracing",
        "log",
        "prometheus",
        "rdkafka",
        "rdkafka-sys",
        "lettre",
        "reqwest",
        "hyper",
        "axum",
        "anyhow",
        "iana-time-zone",
    ];
    let found: Vec<&str> =
        dependencies.iter().map(|(name, _)| name.as_str()).filter(|name| forbidden.contains(name)).collect();
    assert!(found.is_empty(), "vigil-core must not depend on {found:?}");
    for (name, features) in &dependencies {
        if name == "chrono" {
            assert!(
                !features.iter().any(|f| f == "clock" || f == "now"),
                "chrono's clock is on in the core: {features:?}"
            );
        }
    }
}

/// The core's tests, benches and fuzz targets build without the daemon or
/// librdkafka: its dev and build dependencies are checked on the resolved
/// graph, and its fuzz crate depends on the core alone.
#[test]
fn the_cores_tests_benches_and_fuzz_targets_build_without_the_daemon() {
    let tree = core_tree("normal,dev,build", "{p}");
    assert!(tree.lines().any(|l| l.starts_with("criterion ")), "the graph holds the dev dependencies:\n{tree}");
    for daemon in ["vigil ", "rdkafka", "rdkafka-sys", "tokio ", "openssl-sys"] {
        assert!(!tree.lines().any(|l| l.starts_with(daemon)), "the core's build pulls in {daemon}");
    }
    let fuzz = std::fs::read_to_string(workspace().join("crates/vigil-core/fuzz/Cargo.toml")).unwrap();
    let fuzz: toml::Table = fuzz.parse().unwrap();
    let dependencies = fuzz["dependencies"].as_table().unwrap();
    assert!(dependencies.contains_key("vigil-core") && !dependencies.contains_key("vigil"), "{dependencies:?}");
}

#[test]
fn clippy_refuses_io_clocks_and_threads_in_the_core() {
    let config = std::fs::read_to_string(workspace().join("crates/vigil-core/clippy.toml")).unwrap();
    let config: toml::Table = config.parse().unwrap();
    let paths = |key: &str| -> Vec<String> {
        config[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} in clippy.toml"))
            .iter()
            .map(|entry| entry["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let methods = paths("disallowed-methods");
    for method in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::thread::spawn",
        "std::fs::read_to_string",
        "std::fs::write",
        "std::io::stdout",
    ] {
        assert!(methods.iter().any(|m| m == method), "clippy.toml no longer refuses {method}");
    }
    let types = paths("disallowed-types");
    for ty in ["std::fs::File", "std::net::TcpStream", "std::process::Command"] {
        assert!(types.iter().any(|t| t == ty), "clippy.toml no longer refuses {ty}");
    }
    let lib = std::fs::read_to_string(workspace().join("crates/vigil-core/src/lib.rs")).unwrap();
    assert!(lib.contains("#![warn(clippy::print_stdout, clippy::print_stderr"), "the core may print");
}

/// Input a user writes (rules, config) is read only through spec types that
/// deny unknown fields; detector state derives `Deserialize` only to be read
/// back from vigil's own checkpoints, and only `checkpoint.rs` decodes them;
/// vigil's other own records (alert log lines, delivery positions) are read
/// back by the alert log and the notifiers.
#[test]
fn only_spec_types_and_checkpointed_state_derive_deserialize() {
    let specs = ["rules/spec.rs", "/config/", "rules/yaml.rs"];
    let state = ["/detect/", "engine.rs", "incident.rs", "checkpoint.rs", "/time/watermark.rs"];
    let records = ["/alert.rs", "/alert_log.rs", "/state/cursor.rs", "/notify/worker.rs", "/rules/mod.rs"];
    for (path, text) in &all_sources() {
        let text = production_part(text);
        if !path.ends_with("checkpoint.rs") {
            assert!(!text.contains("postcard::from"), "{path} decodes checkpoint data: only checkpoint.rs may");
        }
        let allowed = [&specs[..], &state[..], &records[..]].concat();
        if allowed.iter().any(|a| path.contains(a)) {
            continue;
        }
        assert!(!text.contains("Deserialize)]"), "{path} derives Deserialize: only spec types and state may");
    }
}

#[test]
fn every_source_file_says_what_it_is_for() {
    for (path, text) in &all_sources() {
        assert!(text.starts_with("//!"), "{path} lacks a //! module comment");
    }
}

/// Dependencies point one way: source → decode → detect → alert → alert
/// log → notify. The core cannot see the daemon at all (another crate);
/// within the daemon, the notifiers know alerts only as the alert log
/// holds them.
#[test]
fn dependencies_point_from_sources_to_notifiers() {
    let root = workspace().join("src");
    let mut violations = Vec::new();
    let rules: [(&[&str], &[&str]); 1] = [(
        &["notify", "state/alert_log.rs"],
        &["crate::app", "crate::kafka::consumer", "crate::engine", "crate::pipeline", "crate::source", "crate::detect"],
    )];
    for (parts, forbidden) in rules {
        let mut files = Vec::new();
        for part in parts {
            sources(&root.join(part), &mut files);
        }
        for (path, text) in &files {
            for word in forbidden {
                if production_part(text).contains(word) {
                    violations.push(format!("{path}: {word}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "dependencies against the data flow:\n{}", violations.join("\n"));
}

/// `docs/metrics.md` and `src/telemetry/metrics.rs` name the same metrics,
/// and the documented type is the one the code defines.
#[test]
fn every_metric_is_documented_and_every_documented_metric_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(root.join("src/telemetry/metrics.rs")).unwrap();
    let code = production_part(&code);
    let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    let mut defined = std::collections::BTreeMap::new();
    for (at, _) in code.match_indices("\"vigil_") {
        let name: String = code[at + 1..].chars().take_while(|c| *c != '"').collect();
        // The constructor named just before the name tells the type.
        let before = &code[..at];
        let kinds = [
            ("counter", before.rfind("counter")),
            ("gauge", before.rfind("gauge").max(before.rfind("Gauge"))),
            ("histogram", before.rfind("istogram")),
        ];
        let kind = kinds.iter().filter_map(|(k, i)| i.map(|i| (i, *k))).max().map(|(_, k)| k).unwrap();
        defined.insert(name, kind);
    }
    let mut documented = std::collections::BTreeMap::new();
    for line in docs.lines().filter(|l| l.starts_with("| `vigil_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        documented.insert(cells[1].trim_matches('`').to_owned(), cells[2].to_owned());
    }
    let in_code: Vec<&String> = defined.keys().collect();
    let in_docs: Vec<&String> = documented.keys().collect();
    assert_eq!(in_code, in_docs, "metrics in the code vs docs/metrics.md");
    for (name, kind) in &defined {
        assert_eq!(documented[name], *kind, "the documented type of {name}");
    }
}
