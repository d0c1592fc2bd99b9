//! The invariants of `docs/ARCHITECTURE.md`, checked on the source text:
//! the detection core does no IO, spawns nothing, reads no wall clock and
//! touches no metrics registry; what users write is read only through spec
//! types, and detector state only through checkpoints.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    if dir.is_file() {
        out.push((dir.display().to_string(), std::fs::read_to_string(dir).unwrap()));
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        sources(&entry.unwrap().path(), out);
    }
}

/// Source text without `#[cfg(test)]` modules (tests may build fixtures).
fn production_part(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

#[test]
fn the_detection_core_does_no_io_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for part in [
        "event",
        "rules",
        "detect",
        "alert.rs",
        "incident.rs",
        "engine.rs",
        "ruleset.rs",
        "pipeline.rs",
        "ruletest.rs",
        "time",
    ] {
        sources(&root.join(part), &mut files);
    }
    let forbidden = [
        "std::fs",
        "File::",
        "tokio",
        "std::thread",
        "Utc::now",
        "SystemTime",
        "Instant::now",
        "prometheus",
        "println!",
        "eprintln!",
        "std::io",
        "tracing::",
        "std::net::TcpStream",
    ];
    let mut violations = Vec::new();
    for (path, text) in &files {
        for word in forbidden {
            if production_part(text).contains(word) {
                violations.push(format!("{path}: {word}"));
            }
        }
    }
    assert!(violations.is_empty(), "the core must stay pure:\n{}", violations.join("\n"));
}

/// Input a user writes (rules, config) is read only through spec types that
/// deny unknown fields; detector state derives `Deserialize` only to be read
/// back from vigil's own checkpoints, and only `checkpoint.rs` decodes them;
/// vigil's other own records (alert log lines, delivery positions) are read
/// back by the alert log and the notifiers.
#[test]
fn only_spec_types_and_checkpointed_state_derive_deserialize() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let specs = ["rules/spec.rs", "/config/", "rules/yaml.rs"];
    let state = ["/detect/", "engine.rs", "incident.rs", "checkpoint.rs", "/time/watermark.rs"];
    let records = ["/alert.rs", "/alert_log.rs", "/notify/worker.rs", "/rules/mod.rs"];
    for (path, text) in &files {
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    for (path, text) in &files {
        assert!(text.starts_with("//!"), "{path} lacks a //! module comment");
    }
}

/// Dependencies point one way: source → decode → detect → alert → alert
/// log → notify. The core knows nothing of delivery, and the notifiers
/// know alerts only as the alert log holds them.
#[test]
fn dependencies_point_from_sources_to_notifiers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let rules: [(&[&str], &[&str]); 2] = [
        (
            &["event", "rules", "detect", "alert.rs", "incident.rs", "engine.rs", "ruleset.rs", "pipeline.rs", "time"],
            &["crate::notify", "crate::alert_log", "crate::kafka", "crate::app", "crate::source"],
        ),
        (
            &["notify", "alert_log.rs"],
            &[
                "crate::app",
                "crate::kafka::consumer",
                "crate::engine",
                "crate::pipeline",
                "crate::source",
                "crate::detect",
            ],
        ),
    ];
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
