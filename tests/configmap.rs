//! Rules mounted the way the kubelet mounts a ConfigMap volume: the data
//! in `..<timestamp>/`, a `..data` link to it, and one link per top-level
//! entry into `..data`. An update writes a new timestamp directory and
//! renames a fresh link over `..data` (its `AtomicWriter`). vigil must read
//! each rule once, and a reload must see the swap.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Stdio;

use common::daemon::{metric, start, wait_metric, wait_metrics, watching, BURST_RULE};

/// Projects `files` (path → content) into `dir` as the kubelet does, or
/// updates a projection already there.
fn project(dir: &Path, version: u32, files: &[(String, String)]) {
    let stamp = format!("..2026_12_01_08_00_0{version}.{}", 100 + version);
    let data = dir.join(&stamp);
    for (path, text) in files {
        let file = data.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&stamp, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (path, _) in files {
        let top = path.split('/').next().unwrap();
        let link = dir.join(top);
        if link.symlink_metadata().is_err() {
            symlink(Path::new("..data").join(top), link).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// The repo's shipped rules as (path, content), the chart's items.
fn shipped_rules() -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = common::root().join("rules");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

#[test]
fn check_reads_a_configmap_mount_of_the_shipped_rules_once() {
    let mount = tempfile::tempdir().unwrap();
    project(mount.path(), 1, &shipped_rules());
    let direct = common::run(&["check", "--rules", common::root().join("rules").to_str().unwrap()]);
    let mounted = common::run(&["check", "--rules", mount.path().to_str().unwrap()]);
    let summary = |out: &std::process::Output| {
        let text = common::text(&out.stdout) + &common::text(&out.stderr);
        text.lines().find(|l| l.starts_with("ok:")).map(str::to_owned).unwrap_or(text)
    };
    assert!(direct.status.success() && summary(&direct).starts_with("ok: 22 rules"), "{}", summary(&direct));
    assert!(mounted.status.success(), "{}", summary(&mounted));
    assert_eq!(summary(&mounted), summary(&direct));
}

const BURST: &str = BURST_RULE;

#[test]
fn a_running_daemon_loads_a_configmap_mount_once_and_reloads_on_the_swap_of_its_data() {
    let mount = tempfile::tempdir().unwrap();
    let files = |extra: bool| {
        let mut files =
            vec![("auth/burst.yml".to_owned(), BURST.to_owned()), ("lists/staff.txt".to_owned(), "alice\n".to_owned())];
        if extra {
            files.push(("auth/other.yml".to_owned(), BURST.replace("auth.burst", "auth.other")));
        }
        files
    };
    project(mount.path(), 1, &files(false));
    let config = watching(mount.path());
    let (mut daemon, _lines, addr, _dir) = start(&config, Stdio::piped());
    let metrics = wait_metric(&addr, "vigil_rules_loaded 1");
    assert_eq!(metric(&metrics, "vigil_rules_last_reload_successful"), Some(1.0));

    project(mount.path(), 2, &files(true));
    let metrics = wait_metrics(&addr, "the reload after the swap of ..data", |m| {
        metric(m, r#"vigil_rules_reloads_total{result="success"}"#) == Some(1.0)
    });
    assert_eq!(metric(&metrics, "vigil_rules_loaded"), Some(2.0));
    assert_eq!(metric(&metrics, r#"vigil_rules_reloads_total{result="failure"}"#).unwrap_or(0.0), 0.0);
    assert!(common::daemon::terminate(&mut daemon).success());
}

#[test]
fn a_link_loop_in_the_rules_directory_is_read_once() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::create_dir(rules.path().join("auth")).unwrap();
    std::fs::write(rules.path().join("auth/burst.yml"), BURST).unwrap();
    symlink("..", rules.path().join("auth/up")).unwrap();
    let out = common::run(&["check", "--rules", rules.path().to_str().unwrap()]);
    let text = common::text(&out.stdout) + &common::text(&out.stderr);
    assert!(out.status.success() && text.contains("ok: 1 rules"), "{text}");
}
