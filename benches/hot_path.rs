//! Criterion benches of what the daemon adds to the hot path: the metrics
//! export and rule timing against the batch of demo events they follow.
//! (Decoding, filters and windows are the core's: `cargo bench -p
//! vigil-core --bench hot_path`.)
//! `cargo bench --bench hot_path`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil::pipeline::Pipeline;
use vigil::ruleset::RuleSet;
use vigil::telemetry::activity::Activity;
use vigil::telemetry::metrics::{Exported, Exporter, Metrics};
use vigil::time::Span;

fn shipped() -> RuleSet {
    RuleSet::compile(&vigil::shipped::demo_rules()).expect("shipped rules compile")
}

/// What metrics cost the daemon: one export per batch of (up to) 1,024
/// events, against the same batch through the pipeline. Both in one run,
/// so their ratio holds on a noisy machine.
fn metrics(c: &mut Criterion) {
    let rules = shipped();
    let stream = vigil::source::demo::generate(&vigil::source::demo::DemoSpec::benchmark(1));
    let batch: Vec<&str> = stream.events.iter().take(1024).map(|(_, line)| line.as_str()).collect();
    let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20).watched(Activity::default());
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

criterion_group!(benches, metrics);
criterion_main!(benches);
