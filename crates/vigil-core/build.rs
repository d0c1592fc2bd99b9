//! Embeds the shipped rules (`rules/**/*.yml`, `rules/lists/*.txt|csv|jsonl`
//! at the workspace's root) into the core (`shipped`), so every front end —
//! `vigil run` from any directory, the benches, the fuzz targets — has them
//! with no files around it.
// Reading the repository at build time is this script's job; the core's
// clippy.toml refuses file access to the library, not to its build.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..").canonicalize().expect("the workspace root");
    println!("cargo:rerun-if-changed={}", root.join("rules").display());
    let mut files = Vec::new();
    collect(&root.join("rules"), &mut files);
    files.sort();
    let mut rules = String::new();
    let mut lists = String::new();
    let mut tables = String::new();
    for path in &files {
        let relative = path.strip_prefix(&root).expect("under the manifest dir").to_string_lossy().replace('\\', "/");
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let in_lists = relative.starts_with("rules/lists/");
        let entry = |name: &str| format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string());
        if in_lists && ext == "txt" {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            lists.push_str(&entry(stem));
        } else if in_lists && (ext == "csv" || ext == "jsonl") {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            tables.push_str(&entry(stem));
        } else if !in_lists && (ext == "yml" || ext == "yaml") {
            rules.push_str(&entry(&relative));
        }
    }
    let code = format!(
        "/// Shipped rule files: (path, text).\npub static RULE_FILES: &[(&str, &str)] = &[\n{rules}];\n\
         /// Shipped lists: (name, text).\npub static LIST_FILES: &[(&str, &str)] = &[\n{lists}];\n\
         /// Shipped lookup tables: (name, text).\npub static TABLE_FILES: &[(&str, &str)] = &[\n{tables}];\n"
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_rules.rs");
    fs::write(out, code).expect("write embedded_rules.rs");
}
