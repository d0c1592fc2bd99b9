//! Every Prometheus metric vigil exports, defined here and nowhere else.
//!
//! Names follow `vigil_<name>_<unit>[_total]`; labels are bounded (rule id,
//! severity, kind from a fixed list, reason) and never carry a user, an IP
//! or a token. The engine keeps plain counters; an [`Exporter`] owned by the
//! engine thread copies their increase into these metrics once per batch,
//! so the hot path touches no registry.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::pipeline::Pipeline;

pub struct Metrics {
    registry: Registry,
    pub events: IntCounterVec,
    pub rejected: IntCounterVec,
    pub late: IntCounter,
    pub alerts: IntCounterVec,
    pub suppressed: IntCounterVec,
    pub groups: IntGaugeVec,
    pub evictions: IntCounterVec,
    pub rules_loaded: IntGauge,
    pub build_info: IntGaugeVec,
    pub batch_seconds: Histogram,
    pub event_lag_seconds: Histogram,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definitions are valid");
    registry.register(Box::new(metric.clone())).expect("each metric is registered once");
    metric
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
        let late =
            IntCounter::new("vigil_events_late_total", "Events older than the watermark (seen by match rules only).")
                .expect("valid");
        registry.register(Box::new(late.clone())).expect("registered once");
        let alerts =
            counter_vec(&registry, "vigil_alerts_total", "Alerts raised, by rule and severity.", &["rule", "severity"]);
        let suppressed =
            counter_vec(&registry, "vigil_alerts_suppressed_total", "Alerts held back by realert, by rule.", &["rule"]);
        let groups =
            IntGaugeVec::new(Opts::new("vigil_detector_groups", "Groups tracked per rule."), &["rule"]).expect("valid");
        registry.register(Box::new(groups.clone())).expect("registered once");
        let evictions = counter_vec(
            &registry,
            "vigil_detector_evictions_total",
            "Groups or values evicted to stay within the rule's limits.",
            &["rule"],
        );
        let rules_loaded = IntGauge::new("vigil_rules_loaded", "Rules loaded and active.").expect("valid");
        registry.register(Box::new(rules_loaded.clone())).expect("registered once");
        let build_info =
            IntGaugeVec::new(Opts::new("vigil_build_info", "Always 1; labels name the build."), &["version"])
                .expect("valid");
        registry.register(Box::new(build_info.clone())).expect("registered once");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("vigil_batch_processing_seconds", "Time to process one batch of events.")
                .buckets(prometheus::exponential_buckets(0.00001, 4.0, 10).expect("valid buckets")),
        )
        .expect("valid");
        registry.register(Box::new(batch_seconds.clone())).expect("registered once");
        let event_lag_seconds = Histogram::with_opts(
            HistogramOpts::new("vigil_event_lag_seconds", "Wall clock minus event time of the last event of a batch.")
                .buckets(vec![0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 3600.0, 86_400.0]),
        )
        .expect("valid");
        registry.register(Box::new(event_lag_seconds.clone())).expect("registered once");
        Arc::new(Metrics {
            registry,
            events,
            rejected,
            late,
            alerts,
            suppressed,
            groups,
            evictions,
            rules_loaded,
            build_info,
            batch_seconds,
            event_lag_seconds,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Copies the pipeline's counters into the metrics. A Prometheus counter
/// already holds the last value copied, so the increase is the difference.
pub struct Exporter {
    metrics: Arc<Metrics>,
}

fn catch_up(counter: &IntCounter, now: u64) {
    counter.inc_by(now.saturating_sub(counter.get()));
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>) -> Exporter {
        Exporter { metrics }
    }

    pub fn export(&self, pipeline: &Pipeline) {
        let m = &self.metrics;
        for (kind, count) in pipeline.by_kind() {
            catch_up(&m.events.with_label_values(&[kind]), count);
        }
        for (reason, count) in pipeline.rejected() {
            catch_up(&m.rejected.with_label_values(&[reason.as_str()]), count);
        }
        catch_up(&m.late, pipeline.engine().stats().late);
        for (rule, stats, groups, evictions) in pipeline.engine().rule_stats() {
            let id = &*rule.id;
            catch_up(&m.alerts.with_label_values(&[id, rule.severity.as_str()]), stats.alerts);
            catch_up(&m.suppressed.with_label_values(&[id]), stats.suppressed);
            catch_up(&m.evictions.with_label_values(&[id]), evictions);
            m.groups.with_label_values(&[id]).set(groups as i64);
        }
    }
}
