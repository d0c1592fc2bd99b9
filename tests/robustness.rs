//! No panic on any input: arbitrary rule files, config files and events go
//! through the real entry points and come back as values or errors.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vigil::config;
use vigil::pipeline::Pipeline;
use vigil::ruleset::{RuleSet, RuleSources};
use vigil::time::Span;

const RULE: &str = r#"id: x.y
title: T
severity: critical
filter:
  sel: {kind: login, user|contains: [a, b], src_ip|cidr: 10.0.0.0/8}
  other: {status|gte: 500}
  condition: sel or not other
detect: {type: threshold, group_by: [user], window: 5m, threshold: 3}
alert: {summary: "{{count}} for {{user}}"}
"#;

fn compile(text: &str) -> Result<RuleSet, vigil::rules::Diagnostics> {
    RuleSet::compile(&RuleSources {
        files: vec![(PathBuf::from("r.yml"), text.to_owned())],
        lists: vec![("l".into(), "a\nb\n".into())],
        tables: vec![("t".into(), "user,tz\nalice,UTC\n".into())],
    })
}

/// YAML-ish text: fragments of real rules recombined.
fn yamlish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "id: a\n",
        "title: t\n",
        "severity: warning\n",
        "filter:\n",
        "  kind: login\n",
        "  x|re: '('\n",
        "  y|in_list: l\n",
        "  condition: a and (b\n",
        "detect:\n",
        "  type: spike\n",
        "  type: sequence\n",
        "  steps: [{filter: {a: 1}}]\n",
        "  window: 5x\n",
        "  threshold: -1\n",
        "alert: {summary: '{{'}\n",
        "---\n",
        "tests: [{name: n, events: [{ts: +5m}], expect: [1]}]\n",
        "  - [\n",
        "&a *a\n",
        ": :\n",
        "\t\n",
        "  group_by: []\n",
        "  interval: 0s\n",
        "  mode: profile\n",
        "  timezone: Mars/Base\n",
        "\"\\u0000\"\n",
    ]);
    prop::collection::vec(pieces, 0..30).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_rule_loader_never_panics_on_rule_like_text(text in yamlish()) {
        let _ = compile(&text);
    }

    #[test]
    fn the_rule_loader_never_panics_on_any_text(text in "\\PC{0,400}") {
        let _ = compile(&text);
    }

    #[test]
    fn mutated_rules_never_panic(at in 0usize..RULE.len(), insert in "[-:\\[\\]{}|'\"*&!#\\n a-z0-9]{0,8}") {
        let mut text = RULE.to_owned();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        let _ = compile(&text);
    }

    #[test]
    fn config_parsing_never_panics(text in "\\PC{0,300}") {
        let _ = config::parse(Path::new("c.yml"), &text, Path::new("."));
    }

    #[test]
    fn events_never_panic_the_pipeline(lines in prop::collection::vec(
        prop_oneof![
            "\\PC{0,120}",
            r#"\{"ts":"2026-11-09T08:0[0-9]:[0-5][0-9]Z","kind":"(login|api_call|x)","user":"[ab]","status":[0-9]{1,3},"src_ip":"10\.0\.0\.[0-9]"\}"#,
        ],
        0..40,
    )) {
        let rules = compile(RULE).unwrap();
        let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 4096);
        for line in &lines {
            let _ = pipeline.feed(line.as_bytes());
        }
        let _ = pipeline.drain_alerts().count();
    }
}

#[test]
fn the_reference_rule_compiles() {
    compile(RULE).unwrap();
}

/// Events are attacker-sized: 500 failed logins from distinct users, each
/// carrying a 1 MB field, once held 1.5 GB of evidence (here 250 users
/// with 64 KB fields, 160 MB per rule before the fix). Through the
/// shipped rules, every rule's evidence now stays within its
/// `limits.evidence_bytes` (plus one ring), and the alerts still carry
/// readable, compacted evidence.
#[test]
fn huge_events_keep_evidence_within_each_rules_byte_budget() {
    let rules = RuleSet::compile(&vigil::config::load::embedded_demo_rules()).unwrap();
    let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 2 << 20);
    let pad = "A".repeat(64 << 10);
    let mut alerts = Vec::new();
    for i in 0..250 {
        for attempt in 0..12 {
            let line = format!(
                r#"{{"ts":"2026-11-23T10:{:02}:{:02}Z","kind":"login","user":"user{i}@corp.example","outcome":"failure","src_ip":"203.0.113.{attempt}","user_agent":"{pad}"}}"#,
                (i * 12 + attempt) / 600,
                (i * 12 + attempt) / 10 % 60,
            );
            pipeline.feed(line.as_bytes()).unwrap();
            alerts.extend(pipeline.drain_alerts());
        }
    }
    let budget = vigil::detect::evidence::DEFAULT_BUDGET;
    let ring = 100 * (vigil::detect::evidence::LINE_BYTES + 64);
    let mut total = 0;
    for (rule, bytes) in pipeline.engine().evidence_bytes() {
        assert!(bytes <= 2 * (budget + ring), "{rule} holds {bytes} bytes of evidence");
        total += bytes;
    }
    assert!(total < 200 << 20, "{total} bytes of evidence in all");
    let burst = alerts.iter().find(|a| &*a.rule == "auth.failed_login_burst").expect("the bursts are detected");
    assert!(!burst.evidence.is_empty());
    for event in &burst.evidence {
        let event: serde_json::Value = serde_json::from_str(event.get()).unwrap();
        assert_eq!(event["outcome"], "failure");
        assert!(event["vigil_truncated"].as_u64().unwrap() > 64 << 10);
        assert!(event["user_agent"].as_str().unwrap().len() < 300);
    }
}

/// An attacker hides a password-guessing burst by flooding failed logins of
/// invented users: more of them (20,001) between two of the victim's
/// failures than the rule's `max_groups` (20,000 by default), so that
/// least-recently-used eviction pushed the victim's window out every time
/// and the burst was seen only in `vigil_detector_evictions_total`. The
/// victim's key comes back and outweighs the flood's one-off keys: the
/// burst is detected, with the evictions still counted.
#[test]
fn a_burst_interleaved_with_a_flood_of_distinct_users_is_still_detected() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/auth/failed_login_burst.yml"))
        .unwrap();
    let rules = RuleSet::compile(&RuleSources {
        files: vec![(PathBuf::from("failed_login_burst.yml"), text)],
        ..RuleSources::default()
    })
    .unwrap();
    let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 2 << 20);
    let mut alerts = Vec::new();
    let mut flooded = 0;
    for attempt in 0..12 {
        let victim = format!(
            r#"{{"ts":"2026-11-23T10:{:02}:{:02}Z","kind":"login","user":"victim@acme.example","outcome":"failure","src_ip":"203.0.113.9"}}"#,
            attempt * 20 / 60,
            attempt * 20 % 60
        );
        pipeline.feed(victim.as_bytes()).unwrap();
        for _ in 0..20_001 {
            flooded += 1;
            let noise = format!(
                r#"{{"ts":"2026-11-23T10:{:02}:{:02}Z","kind":"login","user":"u{flooded}@acme.example","outcome":"failure","src_ip":"198.51.100.{}"}}"#,
                attempt * 20 / 60,
                attempt * 20 % 60,
                flooded % 250
            );
            pipeline.feed(noise.as_bytes()).unwrap();
        }
        alerts.extend(pipeline.drain_alerts());
    }
    let burst: Vec<_> = alerts.iter().filter(|a| &*a.rule == "auth.failed_login_burst").collect();
    assert_eq!(burst.len(), 1, "{burst:#?}");
    assert_eq!(burst[0].group[0].1, "victim@acme.example");
    let evictions: u64 = pipeline.engine().rule_stats().map(|(_, _, _, evicted)| evicted).sum();
    assert!(evictions > 200_000, "{evictions} evictions are counted");
}
