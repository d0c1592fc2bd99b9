//! Criterion benches of the core's hot path, per event: decoding, filter
//! evaluation and a window update. They build without librdkafka or any
//! of the daemon's crates. (The engine with metrics export is in the root
//! crate's `benches/hot_path.rs`.)
//! `cargo bench -p vigil-core --bench hot_path`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_core::event::{Decoder, Schema};
use vigil_core::pipeline::Pipeline;
use vigil_core::ruleset::{RuleSet, RuleSources};
use vigil_core::time::Span;

const LOGIN: &str = r#"{"country":"DE","device_id":"dev-alice-1","kind":"login","mfa":true,"outcome":"failure","role":"agent","src_ip":"203.0.113.10","ts":"2026-11-09T08:01:00Z","user":"alice@acme.example","user_agent":"Mozilla/5.0"}"#;
const API: &str = r#"{"action":"messages.send","endpoint":"/v1/messages","kind":"api_call","latency_ms":120,"method":"POST","role":"agent","src_ip":"198.51.100.40","status":200,"token_id":"tok-alice","token_issued_at":"2026-10-05T00:00:00Z","ts":"2026-11-09T08:01:00Z","user":"alice@acme.example"}"#;

fn shipped() -> RuleSet {
    RuleSet::compile(&vigil_core::shipped::demo_rules()).expect("shipped rules compile")
}

fn decode(c: &mut Criterion) {
    let rules = shipped();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    let mut decoder = Decoder::new(rules.schema.clone());
    group.bench_function("login, shipped schema", |b| b.iter(|| decoder.decode(black_box(LOGIN)).map(|e| e.ts).ok()));
    group.bench_function("api_call, shipped schema", |b| b.iter(|| decoder.decode(black_box(API)).map(|e| e.ts).ok()));
    let mut bare = Decoder::new(Arc::new(Schema::new()));
    group.bench_function("api_call, minimal schema", |b| b.iter(|| bare.decode(black_box(API)).map(|e| e.ts).ok()));
    group.bench_function("serde_json::Value (untyped) for comparison", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(API)).ok().map(|v| v.is_object()))
    });
    group.finish();
}

fn filters(c: &mut Criterion) {
    let rules = shipped();
    let mut decoder = Decoder::new(rules.schema.clone());
    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(1));
    for id in ["access.role_permission", "access.outside_allowlist", "auth.failed_login_burst"] {
        let rule = rules.get(id).expect("rule exists").clone();
        let event = decoder.decode(API).expect("decodes");
        group.bench_function(id, |b| b.iter(|| rule.filter.matches(black_box(&event))));
    }
    // A blocklist of 1.2M networks (as threat feeds are): a binary search
    // over merged ranges, the address parsed once.
    let blocklist: String =
        (0..1_200_000u32).map(|i| format!("{}.{}.{}.0/24\n", 1 + i / 65_536 % 200, i / 256 % 256, i % 256)).collect();
    let sources = RuleSources {
        files: vec![(
            PathBuf::from("block.yml"),
            "id: x.block\ntitle: Blocked\nseverity: warning\nfilter: {kind: api_call, src_ip|cidr|in_list: blocked}\n\
             detect: {type: match}\nalert: {summary: blocked}\n"
                .into(),
        )],
        lists: vec![("blocked".into(), blocklist)],
        tables: Vec::new(),
    };
    let blocked = RuleSet::compile(&sources).expect("compiles");
    let rule = blocked.get("x.block").expect("rule exists").clone();
    let mut decoder = Decoder::new(blocked.schema.clone());
    let event = decoder.decode(API).expect("decodes");
    group.bench_function("src_ip|cidr|in_list of 1.2M networks", |b| b.iter(|| rule.filter.matches(black_box(&event))));
    group.finish();
}

fn windows(c: &mut Criterion) {
    let text = r#"id: b.t
title: t
severity: critical
filter: {kind: login}
detect: {type: threshold, group_by: [user], window: 5m, threshold: 1000000}
alert: {summary: x}
"#;
    let rules =
        RuleSet::compile(&RuleSources { files: vec![(PathBuf::from("b.yml"), text.into())], ..RuleSources::default() })
            .expect("compiles");
    let lines: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"ts":"2026-11-09T08:{:02}:{:02}.{:03}Z","kind":"login","user":"u{}"}}"#,
                i / 6000,
                (i / 100) % 60,
                i % 1000,
                i % 100
            )
        })
        .collect();
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("decode + threshold rule, 100 groups", |b| {
        b.iter(|| {
            let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
            for line in &lines {
                let _ = pipeline.feed(line.as_bytes());
            }
            pipeline.engine().stats().events
        })
    });
    group.finish();
}

criterion_group!(benches, decode, filters, windows);
criterion_main!(benches);
