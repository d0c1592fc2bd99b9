//! Fuzzes the rule loader: YAML parsing, validation and compilation of a
//! whole rule file, lists included.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vigil_core::ruleset::{RuleSet, RuleSources};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sources = RuleSources {
        files: vec![(PathBuf::from("fuzz.yml"), text.to_owned())],
        lists: vec![("users".into(), "alice\nbob\n".into()), ("nets".into(), "10.0.0.0/8\n".into())],
        tables: vec![("directory".into(), "user,timezone\nalice,Asia/Kolkata\n".into())],
    };
    if let Ok(rules) = RuleSet::compile(&sources) {
        let _ = vigil_core::ruletest::run_all(&rules, vigil_core::time::Span::from_secs(60));
    }
});
