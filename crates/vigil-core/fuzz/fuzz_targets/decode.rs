//! Fuzzes the event decoder with the shipped rules' schema, then the engine
//! with whatever decodes: no input may panic either.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_core::pipeline::Pipeline;
use vigil_core::ruleset::RuleSet;
use vigil_core::time::Span;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::compile(&vigil_core::shipped::rules()).expect("shipped rules compile"))
}

fuzz_target!(|data: &[u8]| {
    let mut pipeline = Pipeline::new(rules(), Span::from_secs(60), 1 << 16);
    for line in data.split(|&b| b == b'\n') {
        let _ = pipeline.feed(line);
    }
    let _ = pipeline.drain_alerts().count();
});
