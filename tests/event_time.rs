//! Event time that holds against one lying event: whatever single event (any
//! `ts`, any kind) is put before or inside a fixed attack, the shipped
//! rules still raise the attack's alerts, live (the wall clock lent) and in
//! a replay (the outlier guard). Before per-source clocks, one event dated
//! 9999 made every later event late and the attack invisible.

use std::collections::BTreeSet;

use proptest::prelude::*;
use vigil::pipeline::{Fed, Pipeline};
use vigil::ruleset::RuleSet;
use vigil::time::watermark::{SourceId, TimePolicy};
use vigil::time::{Span, Timestamp};

/// 2026-11-09T08:00:00Z
const START: i64 = 1_794_211_200;

fn rules() -> RuleSet {
    RuleSet::compile(&vigil::config::load::embedded_rules()).expect("the shipped rules compile")
}

/// A brute force that succeeds (victim) and a password spray from one
/// address over twelve users: `(ts in seconds, event)`.
fn attack() -> Vec<(i64, String)> {
    let mut events = Vec::new();
    for i in 0..12 {
        events.push((START + i * 7, login("victim", "failure", "198.51.100.7")));
    }
    events.push((START + 90, login("victim", "success", "198.51.100.7")));
    for i in 0..12 {
        events.push((START + 120 + i * 5, login(&format!("user{i}"), "failure", "203.0.113.9")));
    }
    events.push((START + 400, login("alice", "success", "192.0.2.10")));
    events.into_iter().map(|(t, fields)| (t, format!(r#"{{"ts":"{}",{fields}}}"#, Timestamp::from_secs(t)))).collect()
}

fn login(user: &str, outcome: &str, ip: &str) -> String {
    format!(r#""kind":"login","user":"{user}","outcome":"{outcome}","src_ip":"{ip}","device_id":"d-{user}""#)
}

/// How the events reach the pipeline.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The daemon: the wall clock is lent, a second after each event's time.
    Live,
    /// `vigil replay`: no wall clock, the outlier guard.
    Replay,
}

/// The rules and groups that alerted.
fn alerted(rules: &RuleSet, events: &[(i64, String)], mode: Mode) -> BTreeSet<(String, String)> {
    let policy = TimePolicy::with_lateness(Span::from_secs(60));
    let mut pipeline = Pipeline::with_time(rules, policy, 1 << 20);
    let mut out = BTreeSet::new();
    if matches!(mode, Mode::Replay) {
        pipeline.guard_outliers();
    }
    for (number, (wall, line)) in events.iter().enumerate() {
        match mode {
            Mode::Live => {
                pipeline.engine_mut().set_wall(Timestamp::from_secs(wall + 1));
                let _ = pipeline.feed(line.as_bytes());
            }
            Mode::Replay => {
                let _: Fed = pipeline.feed_guarded(SourceId::default(), number as u64 + 1, line.as_bytes());
            }
        }
        out.extend(pipeline.drain_alerts().map(|a| (a.rule.to_string(), a.group_text())));
    }
    pipeline.end_source(SourceId::default());
    out.extend(pipeline.drain_alerts().map(|a| (a.rule.to_string(), a.group_text())));
    out
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("heartbeat".to_owned()),
        Just("login".to_owned()),
        Just("api_call".to_owned()),
        Just("message_volume".to_owned()),
        "[a-z_]{1,12}",
    ]
}

/// Any time an RFC 3339 timestamp can hold: years 0001 to 9999.
fn any_ts() -> impl Strategy<Value = i64> {
    prop_oneof![-62_135_596_800i64..=253_402_300_799, START - 86_400..START + 86_400, START..START + 600,]
}

#[test]
fn the_attack_alone_raises_the_alerts_the_property_relies_on() {
    let rules = rules();
    for mode in [Mode::Live, Mode::Replay] {
        let alerts = alerted(&rules, &attack(), mode);
        let ids: BTreeSet<&str> = alerts.iter().map(|(r, _)| r.as_str()).collect();
        for rule in ["auth.failed_login_burst", "auth.password_spraying", "auth.brute_force_success"] {
            assert!(ids.contains(rule), "{mode:?}: {rule} missing from {alerts:?}");
        }
    }
}

#[test]
fn an_event_dated_9999_before_the_attack_is_set_aside() {
    let rules = rules();
    let mut events = attack();
    let far = r#"{"ts":"9999-12-31T23:59:59Z","kind":"heartbeat"}"#.to_owned();
    events.insert(0, (START, far));
    for mode in [Mode::Live, Mode::Replay] {
        assert_eq!(alerted(&rules, &events, mode), alerted(&rules, &attack(), mode), "{mode:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_single_event_hides_the_attack(ts in any_ts(), kind in kind(), place in 0usize..24, live in any::<bool>()) {
        let rules = rules();
        let mode = if live { Mode::Live } else { Mode::Replay };
        let expected = alerted(&rules, &attack(), mode);
        let mut events = attack();
        let place = place.min(events.len());
        let wall = events.get(place).or(events.last()).map(|e| e.0).unwrap_or(START);
        let line = format!(r#"{{"ts":"{}","kind":"{kind}","user":"victim","outcome":"failure"}}"#, Timestamp::from_secs(ts));
        events.insert(place, (wall, line));
        let got = alerted(&rules, &events, mode);
        let missing: Vec<_> = expected.difference(&got).collect();
        prop_assert!(missing.is_empty(), "{:?}: missing {:?}", mode, missing);
    }
}
