//! The noise budget: what the shipped rules page for when nothing happens.
//!
//! Four weeks of the generator's normal traffic (200 users, 40 accounts,
//! 120 API tokens, nights and weekends), then its live day with the seeded
//! attacks, replayed with every shipped rule, as the live daemon would see
//! it. Alerts before the live day are noise: each rule's criticals per week
//! and warnings per day of history. Alerts on the live day are what it
//! found. Replay and the daemon raise the same alerts (the same ids) on the
//! same events, so this is what on-call would have received.
//!
//! `cargo bench --bench noise` (VIGIL_NOISE_DAYS: days of history, default
//! 28; VIGIL_NOISE_SEED). The generator is vigil's own demo traffic, one
//! office's working day; issue #13 brings traffic from several offices and
//! time zones, and this benchmark is where its numbers belong.

use std::collections::BTreeMap;

use vigil::app::{self, ReplayInput, ReplaySources};
use vigil::config::Settings;
use vigil::ruleset::RuleSet;
use vigil::source::demo::{self, DemoSpec};
use vigil::time::Timestamp;

#[derive(Default)]
struct Tally {
    severity: String,
    noise: usize,
    found: usize,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |name: &str, default: i64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let days = env("VIGIL_NOISE_DAYS", 28).max(1);
    let seed = env("VIGIL_NOISE_SEED", 1) as u64;
    let stream = demo::generate(&DemoSpec { seed, ..DemoSpec::benchmark(days) });
    let rules = RuleSet::compile(&vigil::load::embedded_rules()).expect("the shipped rules compile");
    let mut input = Vec::new();
    for (_, line) in &stream.events {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let mut out = Vec::new();
    let inputs = vec![ReplayInput { name: "noise".into(), reader: Box::new(&input[..]) }];
    let report =
        app::replay(inputs, &ReplaySources::PerInput, &rules, &Settings::default(), &mut out, &mut std::io::sink())
            .expect("replay");
    let mut tally: BTreeMap<String, Tally> = rules
        .rules
        .iter()
        .map(|r| (r.id.to_string(), Tally { severity: r.severity.as_str().into(), ..Tally::default() }))
        .collect();
    for line in String::from_utf8_lossy(&out).lines() {
        let alert: serde_json::Value = serde_json::from_str(line).expect("alerts are JSON lines");
        let ts = alert["ts"].as_str().and_then(Timestamp::parse_rfc3339).unwrap_or(Timestamp::MIN);
        let entry = tally.entry(alert["rule"].as_str().unwrap_or_default().to_owned()).or_default();
        if ts < stream.live_from {
            entry.noise += 1;
        } else {
            entry.found += 1;
        }
    }
    let weeks = days as f64 / 7.0;
    println!(
        "noise budget: {} events, {days} days of history + the attack day, {} rules, {} alerts",
        report.events,
        rules.rules.len(),
        report.alerts
    );
    println!(
        "{:<32} {:<9} {:>18} {:>17} {:>12}",
        "rule", "severity", "noise criticals/wk", "noise warnings/d", "attack day"
    );
    let (mut criticals, mut warnings) = (0, 0);
    for (rule, t) in &tally {
        let critical = t.severity == "critical";
        let (per_week, per_day) = if critical {
            (format!("{:.1}", t.noise as f64 / weeks), "-".into())
        } else {
            ("-".into(), format!("{:.2}", t.noise as f64 / days as f64))
        };
        if critical {
            criticals += t.noise;
        } else {
            warnings += t.noise;
        }
        println!("{rule:<32} {:<9} {per_week:>18} {per_day:>17} {:>12}", t.severity, t.found);
    }
    println!(
        "all rules: {:.1} criticals per week, {:.2} warnings per day of normal traffic",
        criticals as f64 / weeks,
        warnings as f64 / days as f64
    );
}
