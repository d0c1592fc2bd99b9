//! Names the git commit vigil is built from (`VIGIL_GIT_COMMIT`, for
//! `vigil_build_info`): from the environment when set (a container build
//! without `.git`), else from git, else `unknown`. (The shipped rules are
//! embedded by the core's build script.)

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
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
