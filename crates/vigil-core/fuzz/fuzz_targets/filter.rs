//! Fuzzes the filter compiler and evaluator: the input is split into a
//! filter (YAML) and an event (JSON); the filter is compiled inside a fixed
//! rule and evaluated against the event.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vigil_core::pipeline::Pipeline;
use vigil_core::ruleset::{RuleSet, RuleSources};
use vigil_core::time::Span;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (filter, event) = text.split_once('\u{0}').unwrap_or((text, "{}"));
    let indented: String = filter.lines().map(|l| format!("  {l}\n")).collect();
    let rule = format!(
        "id: f\ntitle: f\nseverity: warning\nfilter:\n{indented}detect: {{type: match}}\nalert: {{summary: x}}\n"
    );
    let sources = RuleSources { files: vec![(PathBuf::from("f.yml"), rule)], lists: vec![("l".into(), "a\n".into())], tables: Vec::new() };
    if let Ok(rules) = RuleSet::compile(&sources) {
        let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 16);
        let _ = pipeline.feed(event.as_bytes());
    }
});
