//! vigil's own health alerting rules (`dashboards/prometheus-rules.yaml`)
//! against Debian's promtool: they load, and their unit tests (which
//! include alerts that must not fire) pass.

mod common;

use std::process::Command;

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(common::root().join("dashboards"))
        .output()
        .expect("run promtool (apt-get install prometheus)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_health_rules_load_and_pass_their_unit_tests() {
    let (ok, report) = promtool(&["check", "rules", "prometheus-rules.yaml"]);
    assert!(ok && report.contains(&format!("SUCCESS: {} rules found", common::health_rule_count())), "{report}");
    let (ok, report) = promtool(&["test", "rules", "prometheus-rules.test.yaml"]);
    assert!(ok && report.contains("SUCCESS"), "{report}");
}
