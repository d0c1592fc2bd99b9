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
