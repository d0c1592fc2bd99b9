//! Embeds the shipped rules (`rules/**/*.yml`, `rules/lists/*.txt|csv|jsonl`) into the
//! binary, so `vigil run` works from any directory with no files around it,
//! and names the git commit it is built from (`VIGIL_GIT_COMMIT`, for
//! `vigil_build_info`): from the environment when set (a container build
//! without `.git`), else from git, else `unknown`.

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
    println!("cargo:rerun-if-changed=rules");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
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

    println!("cargo:rerun-if-env-changed=VIGIL_GIT_COMMIT");
    for git in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if root.join(git).exists() {
            println!("cargo:rerun-if-changed={git}");
        }
    }
    let commit = std::env::var("VIGIL_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&root)
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!("cargo:rustc-env=VIGIL_GIT_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}
