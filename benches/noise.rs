//! The noise budget: what the shipped rules page for on traffic from
//! outside vigil's own world, and whether they find the attacks in it.
//!
//! The field traffic generator (`vigil::source::traffic`): staff in five
//! offices from UTC−5 to UTC+5:30, home networks no list knows, travel,
//! integrations, accounts with daily, weekly and seasonal volume, the
//! internet's background of password guessing; a week of history, then
//! two evaluated weeks with labelled attacks. Replayed with every shipped
//! rule as the repository ships it (no site data), as the daemon would see
//! it: replay and daemon raise the same alerts on the same events.
//!
//! In the evaluated weeks, an alert that names an attack's marker (its
//! address, victim, token or account) between its start and two hours
//! after its end is about that attack; every other alert is noise. An
//! attack is found when an alert about it carries the expected severity
//! within five minutes of its start. Budget, per 1,000 users: at most 1
//! critical a week and 5 warnings a day of noise.
//!
//! `cargo bench --bench noise` (VIGIL_NOISE_HISTORY: days of history,
//! default 7; VIGIL_NOISE_DAYS: evaluated days, default 14;
//! VIGIL_NOISE_USERS, default 300; VIGIL_NOISE_SEED, default 1).
//! VIGIL_NOISE_SHOW=rule prints that rule's noise alerts.

use std::collections::BTreeMap;

use vigil::app::{self, ReplayInput, ReplaySources};
use vigil::config::Settings;
use vigil::ruleset::RuleSet;
use vigil::source::traffic::{self, Attack, TrafficSpec};
use vigil::time::{Span, Timestamp};

#[derive(Default)]
struct Tally {
    severity: String,
    noise: usize,
    about_attacks: usize,
}

fn names(alert: &serde_json::Value, marker: &str) -> bool {
    let group = alert["group"].as_object().is_some_and(|g| g.values().any(|v| v.as_str() == Some(marker)));
    group || alert["value"].as_str() == Some(marker) || alert["summary"].as_str().is_some_and(|s| s.contains(marker))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |name: &str, default: i64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let spec = TrafficSpec {
        seed: env("VIGIL_NOISE_SEED", 1) as u64,
        history_days: env("VIGIL_NOISE_HISTORY", 7).max(1),
        evaluated_days: env("VIGIL_NOISE_DAYS", 14).max(1),
        users: env("VIGIL_NOISE_USERS", 300).max(10) as usize,
        ..TrafficSpec::default()
    };
    let show = std::env::var("VIGIL_NOISE_SHOW").unwrap_or_default();
    let started = std::time::Instant::now();
    let world = traffic::generate(&spec);
    let generated = started.elapsed();
    let rules = RuleSet::compile(&vigil::config::load::embedded_rules()).expect("the shipped rules compile");
    let mut input = Vec::new();
    for (_, line) in &world.events {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let mut out = Vec::new();
    let inputs = vec![ReplayInput { name: "field".into(), reader: Box::new(&input[..]) }];
    let report =
        app::replay(inputs, &ReplaySources::PerInput, &rules, &Settings::default(), &mut out, &mut std::io::sink())
            .expect("replay");
    let mut tally: BTreeMap<String, Tally> = rules
        .rules
        .iter()
        .map(|r| (r.id.to_string(), Tally { severity: r.severity.as_str().into(), ..Tally::default() }))
        .collect();
    // Per attack: the first alert of the expected severity about it.
    let mut detected: Vec<Option<(Span, String)>> = vec![None; world.attacks.len()];
    let mut updates = 0u64;
    for line in String::from_utf8_lossy(&out).lines() {
        let alert: serde_json::Value = serde_json::from_str(line).expect("alerts are JSON lines");
        let ts = alert["ts"].as_str().and_then(Timestamp::parse_rfc3339).unwrap_or(Timestamp::MIN);
        if ts < world.evaluated_from {
            continue;
        }
        // An update goes to the incident its alert opened (the same
        // thread, PagerDuty incident or Slack conversation): not a page.
        if alert["update"].as_u64().unwrap_or(0) > 0 {
            updates += 1;
            continue;
        }
        let rule = alert["rule"].as_str().unwrap_or_default().to_owned();
        let severity = alert["severity"].as_str().unwrap_or_default();
        let about = |a: &Attack| {
            ts >= a.start.saturating_sub(Span::from_secs(60))
                && ts <= a.end.saturating_add(Span::from_secs(7200))
                && names(&alert, &a.marker)
        };
        let mut attributed = false;
        for (i, attack) in world.attacks.iter().enumerate() {
            if about(attack) {
                attributed = true;
                let delay = ts.since(attack.start);
                if severity == attack.severity && detected[i].as_ref().is_none_or(|(d, _)| delay < *d) {
                    detected[i] = Some((delay, rule.clone()));
                }
            }
        }
        let entry = tally.entry(rule.clone()).or_default();
        if attributed {
            entry.about_attacks += 1;
        } else {
            entry.noise += 1;
            if show == rule || show == "all" {
                println!("noise: {}", alert["summary"].as_str().unwrap_or_default());
            }
        }
    }
    let days = spec.evaluated_days as f64;
    let per_1000 = 1000.0 / spec.users as f64;
    println!(
        "noise budget: {} events ({} days of history, {} evaluated), {} users, {} rules, {} alerts \
         ({} updates of them evaluated, not counted as pages); generated in {:.1?}",
        report.events,
        spec.history_days,
        spec.evaluated_days,
        spec.users,
        rules.rules.len(),
        report.alerts,
        updates,
        generated
    );
    println!(
        "{:<32} {:<9} {:>6} {:>22} {:>22} {:>14}",
        "rule", "severity", "noise", "criticals/wk/1000 u", "warnings/d/1000 u", "about attacks"
    );
    let (mut criticals, mut warnings) = (0, 0);
    for (rule, t) in &tally {
        let critical = t.severity == "critical";
        let (per_week, per_day) = if critical {
            criticals += t.noise;
            (format!("{:.2}", t.noise as f64 / (days / 7.0) * per_1000), "-".into())
        } else {
            warnings += t.noise;
            ("-".into(), format!("{:.2}", t.noise as f64 / days * per_1000))
        };
        println!("{rule:<32} {:<9} {:>6} {per_week:>22} {per_day:>22} {:>14}", t.severity, t.noise, t.about_attacks);
    }
    let critical_rate = criticals as f64 / (days / 7.0) * per_1000;
    let warning_rate = warnings as f64 / days * per_1000;
    println!(
        "all rules: {criticals} criticals ({critical_rate:.2} a week per 1,000 users, budget 1), {warnings} warnings \
         ({warning_rate:.2} a day per 1,000 users, budget 5)"
    );
    println!("\n{:<16} {:<9} {:<21} {:<34} what", "attack", "severity", "start", "found by (delay)");
    let mut found = 0;
    for (attack, detection) in world.attacks.iter().zip(&detected) {
        let by = match detection {
            Some((delay, rule)) if *delay <= Span::from_secs(300) => {
                found += 1;
                format!("{rule} ({delay})")
            }
            Some((delay, rule)) => format!("LATE: {rule} ({delay})"),
            None => "MISSED".into(),
        };
        println!(
            "{:<16} {:<9} {:<21} {by:<34} {}",
            attack.kind,
            attack.severity,
            attack.start.to_string(),
            attack.what
        );
    }
    let within = critical_rate <= 1.0 && warning_rate <= 5.0 && found == world.attacks.len();
    println!(
        "\nattacks found with the right severity within 5 minutes: {found} of {}; {}",
        world.attacks.len(),
        if within { "within budget" } else { "OVER BUDGET" }
    );
}
