//! Every Prometheus metric vigil exports, defined here and nowhere else.
//!
//! Names follow `vigil_<name>_<unit>[_total]`; labels are bounded (rule id,
//! severity, kind from a fixed list, reason) and never carry a user, an IP
//! or a token. The engine keeps plain counters; an [`Exporter`] owned by the
//! engine thread copies their increase into these metrics once per batch,
//! so the hot path touches no registry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::activity::{Activity, LOGIN_OUTCOMES, STATUS_CLASSES};
use crate::engine::Sampling;
use crate::pipeline::Pipeline;
use crate::ruleset::RuleSet;
use crate::time::Timestamp;

pub struct Metrics {
    registry: Registry,
    pub events: IntCounterVec,
    pub rejected: IntCounterVec,
    pub late: IntCounter,
    pub alerts: IntCounterVec,
    pub suppressed: IntCounterVec,
    pub updates: IntCounterVec,
    pub rule_late: IntCounterVec,
    pub source_lag: GaugeVec,
    pub groups: IntGaugeVec,
    pub evidence_bytes: IntGaugeVec,
    pub evictions: IntCounterVec,
    pub rules_loaded: IntGauge,
    pub build_info: IntGaugeVec,
    pub batch_seconds: Histogram,
    pub event_lag_seconds: Histogram,
    pub alerts_replayed: IntCounter,
    pub rule_info: IntGaugeVec,
    pub rule_inert: IntGaugeVec,
    pub rule_sampled: IntCounterVec,
    pub rule_sampled_seconds: CounterVec,
    pub reloads: IntCounterVec,
    pub last_reload_successful: IntGauge,
    pub last_reload_success_seconds: Gauge,
    pub logins: IntCounterVec,
    pub api_calls: IntCounterVec,
    pub messages: IntCounter,
    pub notify: NotifyMetrics,
    pub kafka: KafkaMetrics,
}

/// Delivery: labels are notifier names from the config.
pub struct NotifyMetrics {
    /// Delivery attempts by result: `sent`, `retried` (failed, will be
    /// tried again), `failed` (refused for good, not retried).
    pub notifications: IntCounterVec,
    /// Alerts delivered (a batched notification carries several).
    pub alerts_delivered: IntCounterVec,
    /// Alerts sent together because a route's rate limit held them back.
    pub alerts_held_back: IntCounterVec,
    pub outbox_pending: IntGaugeVec,
    pub outbox_oldest_seconds: GaugeVec,
    pub outbox_dropped: IntCounterVec,
    pub latency_seconds: HistogramVec,
}

impl NotifyMetrics {
    fn new(registry: &Registry) -> NotifyMetrics {
        let latency_seconds = histogram_vec(
            registry,
            "vigil_notification_latency_seconds",
            "From an alert being raised to its notification being accepted by the receiver.",
            vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0],
            &["notifier"],
        );
        let outbox_oldest_seconds = float_gauge_vec(
            registry,
            "vigil_outbox_oldest_age_seconds",
            "Age of the oldest alert a notifier has yet to deliver (0: none).",
            &["notifier"],
        );
        NotifyMetrics {
            notifications: counter_vec(
                registry,
                "vigil_notifications_total",
                "Notification attempts by notifier and result (sent, retried, failed: refused and not retried).",
                &["notifier", "result"],
            ),
            alerts_delivered: counter_vec(
                registry,
                "vigil_notification_alerts_total",
                "Alerts delivered by each notifier (a batched notification carries several).",
                &["notifier"],
            ),
            alerts_held_back: counter_vec(
                registry,
                "vigil_notification_alerts_held_back_total",
                "Alerts held back by a route's rate limit and sent together in one notification.",
                &["notifier"],
            ),
            outbox_pending: gauge_vec(
                registry,
                "vigil_outbox_pending_alerts",
                "Alerts in the alert log routed to a notifier and not yet delivered.",
                &["notifier"],
            ),
            outbox_oldest_seconds,
            outbox_dropped: counter_vec(
                registry,
                "vigil_outbox_dropped_alerts_total",
                "Undelivered alerts lost because the alert log reached its size limit (state.alert_log.max_bytes).",
                &["notifier"],
            ),
            latency_seconds,
        }
    }
}

/// The Kafka source's metrics; labels are topics and partition numbers,
/// bounded by the topics configured.
pub struct KafkaMetrics {
    pub messages: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub dead_letter_failures: IntCounter,
    pub consumer_lag: IntGaugeVec,
    pub commit_seconds: Histogram,
    pub rebalances: IntCounterVec,
    pub assigned_partitions: IntGauge,
    pub connected: IntGauge,
    pub client_errors: IntCounterVec,
    pub checkpoint_seconds: Histogram,
    pub checkpoint_bytes: IntGauge,
    pub checkpoint_restores: IntCounterVec,
    pub rekeyed: IntCounterVec,
    pub rekey_duplicates: IntCounter,
    pub rekey_failures: IntCounter,
}

/// Registers a metric built from a definition in this file; both can fail
/// only on a programming error (an invalid name, a name used twice).
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("metric definitions are valid");
    registry.register(Box::new(metric.clone())).expect("each metric is registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help))
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

/// A counter of fractional amounts (seconds).
fn float_counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    register(registry, CounterVec::new(Opts::new(name, help), labels))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

/// A gauge of fractional values (seconds, timestamps).
fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    register(registry, Gauge::new(name, help))
}

fn float_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(registry, GaugeVec::new(Opts::new(name, help), labels))
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(registry, Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)))
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]) -> HistogramVec {
    register(registry, HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels))
}

impl KafkaMetrics {
    fn new(registry: &Registry) -> KafkaMetrics {
        let seconds = prometheus::exponential_buckets(0.0005, 4.0, 9).expect("valid buckets");
        KafkaMetrics {
            messages: counter_vec(registry, "vigil_kafka_messages_total", "Messages consumed, by topic.", &["topic"]),
            dead_lettered: counter_vec(
                registry,
                "vigil_kafka_dead_lettered_total",
                "Malformed messages produced to the dead-letter topic, by reason.",
                &["reason"],
            ),
            dead_letter_failures: counter(
                registry,
                "vigil_kafka_dead_letter_failures_total",
                "Dead letters the broker did not accept (the message is then only counted).",
            ),
            rekeyed: counter_vec(
                registry,
                "vigil_kafka_rekeyed_total",
                "Events copied to an internal re-keying topic, by topic.",
                &["topic"],
            ),
            rekey_duplicates: counter(
                registry,
                "vigil_kafka_rekey_duplicates_total",
                "Re-keyed copies dropped because their source offset was already taken (copied again after a crash).",
            ),
            rekey_failures: counter(
                registry,
                "vigil_kafka_rekey_failures_total",
                "Re-keyed copies the broker did not accept after librdkafka's retries.",
            ),
            consumer_lag: gauge_vec(
                registry,
                "vigil_kafka_consumer_lag_messages",
                "Messages between the consumer's position and the end of the partition.",
                &["topic", "partition"],
            ),
            commit_seconds: histogram(
                registry,
                "vigil_kafka_commit_seconds",
                "Time from an offset commit request to the broker's answer.",
                seconds.clone(),
            ),
            rebalances: counter_vec(
                registry,
                "vigil_kafka_rebalances_total",
                "Consumer group rebalances, by event (assign, revoke, error).",
                &["event"],
            ),
            assigned_partitions: gauge(registry, "vigil_kafka_assigned_partitions", "Partitions assigned to vigil."),
            connected: gauge(
                registry,
                "vigil_kafka_connected",
                "1 while vigil hears from a broker (a hung broker counts as down after 15 s of silence), else 0.",
            ),
            client_errors: counter_vec(
                registry,
                "vigil_kafka_client_errors_total",
                "Errors the Kafka client reported, by kind (all_brokers_down, transport, auth, other).",
                &["kind"],
            ),
            checkpoint_seconds: histogram(
                registry,
                "vigil_checkpoint_seconds",
                "Time to write the checkpoints of all assigned partitions.",
                seconds,
            ),
            checkpoint_bytes: gauge(
                registry,
                "vigil_checkpoint_bytes",
                "Size of the last checkpoints written, summed.",
            ),
            checkpoint_restores: counter_vec(
                registry,
                "vigil_checkpoint_restores_total",
                "Partitions assigned, by how their state started (restored, stale, missing, failed).",
                &["outcome"],
            ),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let events = counter_vec(&registry, "vigil_events_total", "Events decoded and processed, by kind.", &["kind"]);
        let rejected = counter_vec(
            &registry,
            "vigil_events_rejected_total",
            "Events rejected as malformed, by reason.",
            &["reason"],
        );
        let late = counter(
            &registry,
            "vigil_events_late_total",
            "Events more than the lateness behind their source (seen by match rules only).",
        );
        let alerts = counter_vec(
            &registry,
            "vigil_alerts_total",
            "Alerts raised, by rule, severity and detector type.",
            &["rule", "severity", "detector"],
        );
        let suppressed =
            counter_vec(&registry, "vigil_alerts_suppressed_total", "Alerts held back by realert, by rule.", &["rule"]);
        let updates = counter_vec(
            &registry,
            "vigil_alert_updates_total",
            "Later notices of alerts whose incident went on or ended, by rule.",
            &["rule"],
        );
        let source_lag = float_gauge_vec(
            &registry,
            "vigil_source_lag_seconds",
            "Wall clock minus the newest event time each source delivered (its frontier), by source.",
            &["source"],
        );
        let rule_late = counter_vec(
            &registry,
            "vigil_rule_late_events_total",
            "Late events a rule's filter matched and its windows no longer took, by rule.",
            &["rule"],
        );
        let groups = gauge_vec(&registry, "vigil_detector_groups", "Groups tracked per rule.", &["rule"]);
        let evidence_bytes = gauge_vec(
            &registry,
            "vigil_evidence_bytes",
            "Bytes of evidence events a rule holds for its groups and open incidents (bounded by limits.evidence_bytes).",
            &["rule"],
        );
        let evictions = counter_vec(
            &registry,
            "vigil_detector_evictions_total",
            "Groups or values evicted to stay within the rule's limits.",
            &["rule"],
        );
        let rules_loaded = gauge(&registry, "vigil_rules_loaded", "Rules loaded and active.");
        let build_info =
            gauge_vec(&registry, "vigil_build_info", "Always 1; labels name the build.", &["version", "commit"]);
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), env!("VIGIL_GIT_COMMIT")]).set(1);
        let batch_seconds = histogram(
            &registry,
            "vigil_batch_processing_seconds",
            "Time to process one batch of events.",
            prometheus::exponential_buckets(0.00001, 4.0, 10).expect("valid buckets"),
        );
        let event_lag_seconds = histogram(
            &registry,
            "vigil_event_lag_seconds",
            "Wall clock minus the newest event time, after each batch.",
            vec![0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 3600.0, 86_400.0],
        );
        let alerts_replayed = counter(
            &registry,
            "vigil_alerts_replayed_total",
            "Alerts raised again by events read again after a restart, dropped because the alert log holds them.",
        );
        let rule_info = gauge_vec(
            &registry,
            "vigil_rule_info",
            "Always 1 for each rule loaded; labels name its severity and detector type.",
            &["rule", "severity", "detector"],
        );
        let rule_inert = gauge_vec(
            &registry,
            "vigil_rule_inert",
            "Always 1 for each valid rule that does not run until its site data (a list it requires) is filled in.",
            &["rule"],
        );
        let rule_sampled = counter_vec(
            &registry,
            "vigil_rule_evaluations_sampled_total",
            "Rule evaluations timed (one event in 64), by rule.",
            &["rule"],
        );
        let rule_sampled_seconds = float_counter_vec(
            &registry,
            "vigil_rule_evaluation_sampled_seconds_total",
            "Time spent in the timed rule evaluations (filter, group key, detector), by rule.",
            &["rule"],
        );
        let reloads = counter_vec(
            &registry,
            "vigil_rules_reloads_total",
            "Rule reloads (SIGHUP or a changed rule file), by result (success, failure).",
            &["result"],
        );
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let last_reload_successful = gauge(
            &registry,
            "vigil_rules_last_reload_successful",
            "1 if the last rule reload succeeded (or none was tried), 0 if the running rules are older than the files.",
        );
        last_reload_successful.set(1);
        let last_reload_success_seconds = float_gauge(
            &registry,
            "vigil_rules_last_reload_success_timestamp_seconds",
            "Unix time the running rules were loaded.",
        );
        let logins = counter_vec(
            &registry,
            "vigil_logins_total",
            "Login events by outcome (success, failure, other).",
            &["outcome"],
        );
        let api_calls = counter_vec(
            &registry,
            "vigil_api_calls_total",
            "API call events by status class (1xx to 5xx, other).",
            &["status_class"],
        );
        let messages = counter(
            &registry,
            "vigil_messages_total",
            "Messages sent, summed from the `count` of message_volume events.",
        );
        let notify = NotifyMetrics::new(&registry);
        let kafka = KafkaMetrics::new(&registry);
        Arc::new(Metrics {
            registry,
            events,
            rejected,
            late,
            alerts,
            suppressed,
            updates,
            rule_late,
            source_lag,
            groups,
            evidence_bytes,
            evictions,
            rules_loaded,
            build_info,
            batch_seconds,
            event_lag_seconds,
            alerts_replayed,
            rule_info,
            rule_inert,
            rule_sampled,
            rule_sampled_seconds,
            reloads,
            last_reload_successful,
            last_reload_success_seconds,
            logins,
            api_calls,
            messages,
            notify,
            kafka,
        })
    }

    /// Publishes the rule set now running: `vigil_rules_loaded`, one
    /// `vigil_rule_info` series per rule, one `vigil_rule_inert` series (and
    /// a warning) per rule waiting for site data, and the load time.
    pub fn rules_running(&self, rules: &RuleSet) {
        self.rules_loaded.set(rules.rules.len() as i64);
        self.rule_info.reset();
        for rule in &rules.rules {
            self.rule_info.with_label_values(&[&rule.id, rule.severity.as_str(), rule.detector.type_name()]).set(1);
        }
        self.rule_inert.reset();
        for inert in &rules.inert {
            self.rule_inert.with_label_values(&[&inert.rule.id]).set(1);
            tracing::warn!(rule = %inert.rule.id, "Rule is inert: {}", inert.reason());
        }
        self.last_reload_success_seconds.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// How far behind the wall clock `source`'s newest event time is
    /// (nothing yet: no series).
    pub fn source_lag(&self, source: &str, frontier: Timestamp, now: Timestamp) {
        if frontier > Timestamp::MIN {
            self.source_lag.with_label_values(&[source]).set(now.since(frontier).as_secs_f64().max(0.0));
        }
    }

    /// A source no longer read here (a released partition) loses its series.
    pub fn forget_source(&self, source: &str) {
        let _ = self.source_lag.remove_label_values(&[source]);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// What an [`Exporter`] last copied from one pipeline.
#[derive(Debug, Default)]
pub struct Exported {
    by_kind: Vec<u64>,
    rejected: Vec<u64>,
    late: u64,
    logins: [u64; LOGIN_OUTCOMES.len()],
    api_calls: [u64; STATUS_CLASSES.len()],
    messages: u64,
    /// Per rule, in the pipeline's rule order: its id and the counters
    /// [`RuleCounters`] names.
    rules: Vec<(Arc<str>, RuleCounters)>,
}

/// Alerts, suppressed, evictions, timed evaluations, their nanoseconds,
/// late events, updates.
type RuleCounters = [u64; 7];

impl Exported {
    /// The counters last exported for each rule of `pipeline`, in its
    /// order; after a reload they are matched by rule id, so a rule's
    /// counters go on and a new rule starts from zero.
    fn rules_of(&mut self, pipeline: &Pipeline<Activity>) -> &mut [(Arc<str>, RuleCounters)] {
        let engine = pipeline.engine();
        let same = self.rules.len() == engine.rule_count()
            && engine.rule_stats().zip(&self.rules).all(|((rule, ..), (id, _))| *rule.id == **id);
        if !same {
            let mut previous: HashMap<Arc<str>, RuleCounters> = self.rules.drain(..).collect();
            self.rules = engine
                .rule_stats()
                .map(|(rule, ..)| (rule.id.clone(), previous.remove(&rule.id).unwrap_or_default()))
                .collect();
        }
        &mut self.rules
    }
}

/// Copies the increase of the pipelines' counters into the metrics, once
/// per batch, so that the hot path touches no registry. Several pipelines
/// (one per Kafka partition) add up.
pub struct Exporter {
    metrics: Arc<Metrics>,
    /// Tracked groups and evidence bytes per rule, summed over the
    /// pipelines of the last export.
    groups: HashMap<Arc<str>, (i64, i64)>,
}

fn advance(last: &mut u64, now: u64) -> u64 {
    let increase = now.saturating_sub(*last);
    *last = now;
    increase
}

fn slot<T: Default + Clone>(list: &mut Vec<T>, index: usize) -> &mut T {
    if list.len() <= index {
        list.resize(index + 1, T::default());
    }
    &mut list[index]
}

/// One event in this many has its rule evaluations timed.
pub const SAMPLE_EVERY: u32 = 64;

/// Nanoseconds on a monotonic clock: what the engine's sampling reads.
pub fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The engine's rule timing as the daemon sets it.
pub fn sampling() -> Sampling {
    Sampling { clock: monotonic_nanos, every: SAMPLE_EVERY }
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>) -> Exporter {
        Exporter { metrics, groups: HashMap::new() }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Exports every pipeline's increase since the last export; the groups
    /// gauge is the sum over the pipelines given, and a rule no pipeline
    /// runs any more (after a reload) loses its series.
    pub fn export<'a>(&mut self, pipelines: impl IntoIterator<Item = (&'a Pipeline<Activity>, &'a mut Exported)>) {
        let m = &self.metrics;
        let mut groups: HashMap<Arc<str>, (i64, i64)> = HashMap::with_capacity(self.groups.len());
        for (pipeline, last) in pipelines {
            for (i, (kind, count)) in pipeline.by_kind().enumerate() {
                m.events.with_label_values(&[kind]).inc_by(advance(slot(&mut last.by_kind, i), count));
            }
            for (i, (reason, count)) in pipeline.rejected().enumerate() {
                m.rejected.with_label_values(&[reason.as_str()]).inc_by(advance(slot(&mut last.rejected, i), count));
            }
            m.late.inc_by(advance(&mut last.late, pipeline.engine().stats().late));
            let activity = pipeline.watch();
            for (i, outcome) in LOGIN_OUTCOMES.iter().enumerate() {
                m.logins.with_label_values(&[outcome]).inc_by(advance(&mut last.logins[i], activity.logins[i]));
            }
            for (i, class) in STATUS_CLASSES.iter().enumerate() {
                m.api_calls.with_label_values(&[class]).inc_by(advance(&mut last.api_calls[i], activity.api_calls[i]));
            }
            m.messages.inc_by(advance(&mut last.messages, activity.messages));
            let counters = last.rules_of(pipeline);
            let evidence = pipeline.engine().evidence_bytes();
            for (((rule, stats, tracked, evictions), (_, last)), (_, held)) in
                pipeline.engine().rule_stats().zip(counters).zip(evidence)
            {
                let id = &*rule.id;
                let [alerts, suppressed, evicted, sampled, nanos, late, updates] = last;
                m.updates.with_label_values(&[id]).inc_by(advance(updates, stats.updates));
                m.rule_late.with_label_values(&[id]).inc_by(advance(late, stats.late));
                m.alerts
                    .with_label_values(&[id, rule.severity.as_str(), rule.detector.type_name()])
                    .inc_by(advance(alerts, stats.alerts));
                m.suppressed.with_label_values(&[id]).inc_by(advance(suppressed, stats.suppressed));
                m.evictions.with_label_values(&[id]).inc_by(advance(evicted, evictions));
                m.rule_sampled.with_label_values(&[id]).inc_by(advance(sampled, stats.sampled));
                let spent = advance(nanos, stats.sampled_nanos);
                m.rule_sampled_seconds.with_label_values(&[id]).inc_by(spent as f64 / 1e9);
                let sums = groups.entry(rule.id.clone()).or_default();
                sums.0 += tracked as i64;
                sums.1 += held as i64;
            }
        }
        for gone in self.groups.keys().filter(|id| !groups.contains_key(*id)) {
            let _ = m.groups.remove_label_values(&[gone]);
            let _ = m.evidence_bytes.remove_label_values(&[gone]);
        }
        for (id, (tracked, held)) in &groups {
            m.groups.with_label_values(&[id]).set(*tracked);
            m.evidence_bytes.with_label_values(&[id]).set(*held);
        }
        self.groups = groups;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::ruleset::RuleSet;
    use crate::telemetry::activity::Activity;
    use crate::time::Span;

    /// No event value becomes a label: events whose every field holds a
    /// value found nowhere else go through the shipped rules (some fire,
    /// some are rejected), and none of those values is in what is exported.
    #[test]
    fn no_event_value_becomes_a_metric_label() {
        const MARK: &str = "zq7mark";
        let rules = RuleSet::compile(&crate::shipped::demo_rules()).expect("the shipped rules compile");
        let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20).watched(Activity::default());
        let kinds =
            ["login", "api_call", "message_volume", "setting_change", "data_access", "user_admin", "zq7mark-kind"];
        for i in 0..3_000u32 {
            let kind = kinds[i as usize % kinds.len()];
            let line = format!(
                r#"{{"ts":"2026-11-23T10:{:02}:{:02}Z","kind":"{kind}","user":"{MARK}-user-{}","src_ip":"10.9.{}.{}","outcome":"{}","status":{},"device_id":"{MARK}-dev-{i}","country":"{MARK}","token_id":"{MARK}-tok-{}","account":"{MARK}-acct-{}","count":{i},"action":"{MARK}-action","endpoint":"/{MARK}","role":"{MARK}-role","setting":"{MARK}-setting","user_agent":"{MARK}-ua"}}"#,
                i / 60 % 60,
                i % 60,
                i % 7,
                i / 256 % 256,
                i % 256,
                ["failure", "success", "zq7mark-outcome"][i as usize % 3],
                [200, 401, 403, 500, 999][i as usize % 5],
                i % 5,
                i % 3,
            );
            let _ = pipeline.feed(line.as_bytes());
        }
        let _ = pipeline.feed(format!("{{\"{MARK}\": not json").as_bytes());
        assert!(pipeline.engine().rule_stats().any(|(_, stats, _, _)| stats.alerts > 0), "some rule fired");
        let metrics = Metrics::new();
        let mut exporter = Exporter::new(metrics.clone());
        let mut exported = Exported::default();
        exporter.export([(&pipeline, &mut exported)]);
        let text = metrics.render();
        assert!(text.contains("vigil_events_total{kind=\"other\"}"), "the export was read:\n{text}");
        let leaked: Vec<&str> = text.lines().filter(|l| l.contains(MARK)).collect();
        assert!(leaked.is_empty(), "event values became labels:\n{}", leaked.join("\n"));
    }
}
