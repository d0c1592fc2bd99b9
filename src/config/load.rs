//! Reading configuration and rules from disk: the only module that does.
//! Everything it reads is handed, as text, to code that does no IO.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{self, Settings};
use crate::ruleset::RuleSources;

pub use crate::shipped::{demo_rules as embedded_demo_rules, rules as embedded_rules, with_demo_site};

/// Reads `dir/**/*.yml|yaml` (sorted by path), the lists
/// `dir/lists/*.txt` and the lookup tables `dir/lists/*.csv|jsonl`;
/// names starting with `.` are skipped (see `walk`).
pub fn read_rules(dir: &Path) -> Result<RuleSources> {
    if !dir.is_dir() {
        anyhow::bail!("rules directory {} does not exist", dir.display());
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths).with_context(|| format!("reading rules from {}", dir.display()))?;
    paths.sort();
    let lists_dir = dir.join("lists");
    let mut sources = RuleSources::default();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let text = || fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()));
        if path.starts_with(&lists_dir) {
            let name = || path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            match ext {
                "txt" => sources.lists.push((name(), text()?)),
                "csv" | "jsonl" => {
                    if sources.tables.iter().any(|(n, _)| *n == name()) {
                        anyhow::bail!("{}: table `{}` is given twice (.csv and .jsonl)", lists_dir.display(), name());
                    }
                    sources.tables.push((name(), text()?))
                }
                _ => {}
            }
        } else if ext == "yml" || ext == "yaml" {
            sources.files.push((path.clone(), text()?));
        }
    }
    if sources.files.is_empty() {
        anyhow::bail!("no rule files (*.yml, *.yaml) in {}: vigil would detect nothing", dir.display());
    }
    Ok(sources)
}

/// Collects the files under `dir`, following links (a ConfigMap's keys
/// are links) but skipping entries whose name starts with `.`: the
/// kubelet mounts a ConfigMap as `..<timestamp>/` with a `..data` link to
/// it and one link per top-level key, so following the dot entries would
/// read every rule three times. Hidden files (editor swap files, `.git`)
/// are not rules either. A directory reached twice (a link loop) is read
/// once.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut seen = std::collections::HashSet::new();
    walk_from(dir, out, &mut seen)
}

fn walk_from(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut std::collections::HashSet<PathBuf>) -> std::io::Result<()> {
    if !seen.insert(fs::canonicalize(dir)?) {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk_from(&path, out, seen)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and validates a config file. Errors carry file:line:column.
pub fn read_config(path: &Path) -> Result<Settings> {
    let text = fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    let base = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    config::parse(path, &text, &base).map_err(|d| anyhow::anyhow!("{d}"))
}

/// Where the running rules were read from, so that a reload reads the
/// same place: a directory, or the rules embedded in the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOrigin {
    pub dir: Option<PathBuf>,
    /// Lay the demo company's lists over the empty ones (the daemon on
    /// the demo stream).
    pub demo_site: bool,
}

impl RuleOrigin {
    /// The command line, else the config, else `./rules` if present, else
    /// the embedded rules.
    pub fn resolve(cli: Option<&Path>, settings: &Settings) -> RuleOrigin {
        let dir = cli.map(Path::to_path_buf).or_else(|| settings.rules_dir.clone()).or_else(|| {
            let local = PathBuf::from("rules");
            local.is_dir().then_some(local)
        });
        RuleOrigin { dir, demo_site: false }
    }

    pub fn read(&self) -> Result<RuleSources> {
        let mut sources = match &self.dir {
            Some(dir) => read_rules(dir)?,
            None => embedded_rules(),
        };
        if self.demo_site {
            with_demo_site(&mut sources);
        }
        Ok(sources)
    }
}

/// Reads the rules from where [`RuleOrigin::resolve`] points.
pub fn rules_for(cli: Option<&Path>, settings: &Settings) -> Result<RuleSources> {
    RuleOrigin::resolve(cli, settings).read()
}
