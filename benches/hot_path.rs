//! Criterion benches of the hot path, per event: decoding, filter
//! evaluation, a window update, and the whole engine on one event; and the
//! metrics export against the batch it follows.
//! `cargo bench --bench hot_path`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil::config::load;
use vigil::event::{Decoder, Schema};
use vigil::pipeline::Pipeline;
use vigil::ruleset::{RuleSet, RuleSources};
use vigil::telemetry::metrics::{Exported, Exporter, Metrics};
use vigil::time::Span;

const LOGIN: &str = r#"{"country":"DE","device_id":"dev-alice-1","kind":"login","mfa":true,"outcome":"failure","role":"agent","src_ip":"203.0.113.10","ts":"2026-11-09T08:01:00Z","user":"alice@acme.example","user_agent":"Mozilla/5.0"}"#;
const API: &str = r#"{"action":"messages.send","endpoint":"/v1/messages","kind":"api_call","latency_ms":120,"method":"POST","role":"agent","src_ip":"198.51.100.40","status":200,"token_id":"tok-alice","token_issued_at":"2026-10-05T00:00:00Z","ts":"2026-11-09T08:01:00Z","user":"alice@acme.example"}"#;

fn shipped() -> RuleSet {
    RuleSet::compile(&load::embedded_demo_rules()).expect("shipped rules compile")
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

/// What metrics cost the daemon: one export per batch of (up to) 1,024
/// events, against the same batch through the pipeline. Both in one run,
/// so their ratio holds on a noisy machine.
fn metrics(c: &mut Criterion) {
    let rules = shipped();
    let stream = vigil::source::demo::generate(&vigil::source::demo::DemoSpec::benchmark(1));
    let batch: Vec<&str> = stream.events.iter().take(1024).map(|(_, line)| line.as_str()).collect();
    let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
    for (_, line) in stream.events.iter().take(20_000) {
        let _ = pipeline.feed(line.as_bytes());
        pipeline.alerts_mut().clear();
    }
    let metrics = Metrics::new();
    let mut exporter = Exporter::new(metrics.clone());
    let mut exported = Exported::default();
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("a batch of 1,024 demo events through the pipeline", |b| {
        b.iter(|| {
            for line in &batch {
                let _ = pipeline.feed(black_box(line.as_bytes()));
            }
            pipeline.alerts_mut().clear();
        })
    });
    let mut sampled = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
    sampled.engine_mut().sample_rule_time(vigil::telemetry::metrics::sampling());
    for (_, line) in stream.events.iter().take(20_000) {
        let _ = sampled.feed(line.as_bytes());
        sampled.alerts_mut().clear();
    }
    group.bench_function("the same batch with rule timing sampled (1 event in 64)", |b| {
        b.iter(|| {
            for line in &batch {
                let _ = sampled.feed(black_box(line.as_bytes()));
            }
            sampled.alerts_mut().clear();
        })
    });
    group.bench_function("one read of the clock rule timing uses", |b| {
        b.iter(vigil::telemetry::metrics::monotonic_nanos)
    });
    group.bench_function("the metrics export after a batch (18 rules)", |b| {
        b.iter(|| {
            metrics.batch_seconds.observe(black_box(0.001));
            exporter.export([(&pipeline, &mut exported)]);
        })
    });
    group.finish();
}

criterion_group!(benches, decode, filters, windows, metrics);
criterion_main!(benches);
