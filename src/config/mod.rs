//! The daemon's configuration file: spec (serde, unknown fields denied) and
//! validated settings. No secret is ever read from this file: a password is
//! named by the environment variable or the file that holds it
//! (`password_env`, `password_file`), and read when vigil starts.
//!
//! ```yaml
//! rules: rules            # directory, relative to this file
//! lateness: 1m            # how far behind its source an event may be
//! max_future: 5m          # live: how far ahead of the wall clock
//! idle_advance: 1m        # live: a source quiet this long moves with the wall clock
//! source: {type: file, path: events.jsonl}   # or stdin, demo, kafka (below)
//! output: {format: auto}  # auto | text | json; optional path
//! metrics: {listen: 127.0.0.1:9464}          # or enabled: false
//! log: {format: text, level: info}
//! limits: {max_event_bytes: 1048576}
//! state: {dir: vigil-state, checkpoint_interval: 30s}  # checkpoint_dir: shared
//! notifiers:
//!   siem: {type: kafka, topic: vigil-alerts}
//! ```
//!
//! A Kafka source:
//!
//! ```yaml
//! source:
//!   type: kafka
//!   brokers: [kafka-0:9092, kafka-1:9092]
//!   topics: [events, {name: logins, kind: login, key: [user]}]
//!                         # kind: for events without one; key: the fields
//!                         # producers key the topic's records by
//!   rekey: {topic_prefix: vigil-rekey, partitions: 6}  # for rules grouped otherwise
//!   group_id: vigil
//!   dead_letter_topic: vigil-dead-letters
//!   tls: {ca: /etc/kafka/ca.pem, cert: /etc/kafka/client.pem, key: /etc/kafka/client.key}
//!   sasl: {mechanism: SCRAM-SHA-512, username: vigil, password_env: KAFKA_PASSWORD}
//!   properties: {fetch.wait.max.ms: 50}             # passed to librdkafka
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod load;
mod notify;
mod source;
pub mod values;

use notify::RouteSpec;
pub use notify::{
    DeliveryPolicy, Email, Notifier, NotifierKind, RateLimit, Redaction, Route, RouteMatch, SmtpTls, Webhook,
    WebhookFormat,
};
pub use source::{
    KafkaSource, Rekey, Source, Topic, DEFAULT_DEMO_SPEED, DEFAULT_GROUP_ID, DEFAULT_REKEY_PARTITIONS,
    DEFAULT_REKEY_PREFIX,
};
pub use values::{KafkaClient, OutputFormat, Sasl, Secret, Tls};

use crate::event::decode::DEFAULT_MAX_EVENT_BYTES;
use crate::rules::fields::Fields;
use crate::rules::yaml::{self, Document, Loc, Spanned};
use crate::rules::{Diagnostic, Diagnostics, Sink};
use crate::state::alert_log::LogLimits;
use crate::time::watermark::{TimePolicy, DEFAULT_IDLE_ADVANCE, DEFAULT_MAX_FUTURE};
use crate::time::Span;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    pub rules: Option<Spanned<String>>,
    pub reload: Option<ReloadSpec>,
    pub lateness: Option<Spanned<String>>,
    pub max_future: Option<Spanned<String>>,
    pub idle_advance: Option<Spanned<String>>,
    pub source: Option<Spanned<Fields>>,
    pub output: Option<OutputSpec>,
    pub metrics: Option<MetricsSpec>,
    pub log: Option<LogSpec>,
    pub limits: Option<LimitsSpec>,
    pub state: Option<StateSpec>,
    pub notifiers: Option<BTreeMap<String, Spanned<Fields>>>,
    pub routes: Option<Spanned<Vec<RouteSpec>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    pub dir: Option<String>,
    pub alert_log: Option<AlertLogSpec>,
    pub checkpoint_dir: Option<String>,
    pub checkpoint_interval: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertLogSpec {
    pub segment_bytes: Option<Spanned<u64>>,
    pub max_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub format: Option<Spanned<String>>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    pub enabled: Option<bool>,
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSpec {
    /// How often the rule files are compared with the running rules:
    /// a duration, or `off` to reload on SIGHUP only.
    pub watch: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    pub format: Option<Spanned<String>>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_event_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub rules_dir: Option<PathBuf>,
    /// How often rule files are checked for changes; `None`: on SIGHUP only.
    pub rules_watch: Option<std::time::Duration>,
    pub lateness: Span,
    /// Live: events further ahead of the wall clock are refused.
    pub max_future: Span,
    /// Live: a source quiet this long moves with the wall clock.
    pub idle_advance: Span,
    pub source: Source,
    pub output: OutputFormat,
    pub output_path: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_event_bytes: usize,
    /// The alert log and, unless `checkpoint_dir` is set, checkpoints.
    pub state_dir: PathBuf,
    /// Checkpoints, if not under `state_dir`: a directory every replica
    /// sees lets state follow partitions (the alert log stays per replica).
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_interval: Span,
    /// Limits of the alert log, which is also the notifiers' outbox.
    pub alert_log: LogLimits,
    pub notifiers: Vec<Notifier>,
    /// Empty: every alert to every notifier.
    pub routes: Vec<Route>,
}

pub const DEFAULT_CHECKPOINT_INTERVAL: Span = Span(30_000_000);
pub const DEFAULT_STATE_DIR: &str = "vigil-state";

impl Settings {
    /// The alert log's segments (see `alert_log`).
    pub fn alert_log_dir(&self) -> PathBuf {
        self.state_dir.join("alerts")
    }

    /// Each notifier's delivery position in the alert log.
    pub fn outbox_dir(&self) -> PathBuf {
        self.state_dir.join("outbox")
    }

    /// The event-time settings every pipeline runs with.
    pub fn time(&self) -> TimePolicy {
        TimePolicy { lateness: self.lateness, max_future: self.max_future, idle_advance: self.idle_advance }
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir.clone().unwrap_or_else(|| self.state_dir.join("checkpoints"))
    }
}

pub const DEFAULT_RULES_WATCH: std::time::Duration = std::time::Duration::from_secs(5);
pub const DEFAULT_LATENESS: Span = Span(60_000_000);
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

impl Default for Settings {
    /// The embedded default: the demo stream, text alerts, metrics on
    /// loopback.
    fn default() -> Settings {
        Settings {
            rules_dir: None,
            rules_watch: Some(DEFAULT_RULES_WATCH),
            lateness: DEFAULT_LATENESS,
            max_future: DEFAULT_MAX_FUTURE,
            idle_advance: DEFAULT_IDLE_ADVANCE,
            source: Source::Demo { speed: DEFAULT_DEMO_SPEED, seed: 1 },
            output: OutputFormat::Auto,
            output_path: None,
            metrics_listen: DEFAULT_METRICS_LISTEN.parse().ok(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            checkpoint_dir: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            alert_log: LogLimits::default(),
            notifiers: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// Parses and validates a config file's text; relative paths are resolved
/// against `base` (the file's directory).
pub fn parse(file: &Path, text: &str, base: &Path) -> Result<Settings, Diagnostics> {
    let doc = Document { text, first_line: 1 };
    let content = text.lines().map(str::trim).any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
    if !content {
        // Read as defaults it would run the demo stream: a config file
        // emptied by mistake (a failed template, a ConfigMap key missing)
        // must not quietly turn production into a demo.
        return Err(Diagnostics(vec![Diagnostic {
            file: file.to_owned(),
            loc: Loc { line: 1, column: 1 },
            rule: None,
            message: "the config is empty; to run the demo stream, run vigil without --config or set \
                      `source: {type: demo}`"
                .into(),
        }]));
    }
    let spec: ConfigSpec = yaml::parse_document_all(&doc).map_err(|unparsed: yaml::Unparsed<ConfigSpec>| {
        let mut problems: Vec<(Loc, String)> = unparsed.errors.into_iter().map(|e| (e.loc, e.message)).collect();
        // serde does not look into the source's and the notifiers' maps:
        // what they say is checked on what parsed.
        if let Some(rest) = unparsed.rest {
            let mut sink = Sink::new(1);
            let source = rest.source.as_ref().map_or(Source::Stdin, |s| source::read(s, base, &mut sink));
            notify::validate(rest.notifiers.as_ref(), None, &source, base, &mut sink);
            problems.extend(sink.problems.into_iter().map(|p| (p.loc, p.message)));
        }
        Diagnostics(
            problems
                .into_iter()
                .map(|(loc, message)| Diagnostic { file: file.to_owned(), loc, rule: None, message })
                .collect(),
        )
    })?;
    let mut sink = Sink::with_text(1, text);
    let settings = validate(&spec, base, &mut sink);
    if !sink.is_empty() {
        return Err(Diagnostics(
            sink.problems
                .into_iter()
                .map(|p| Diagnostic { file: file.to_owned(), loc: p.loc, rule: None, message: p.message })
                .collect(),
        ));
    }
    Ok(settings)
}

fn validate(spec: &ConfigSpec, base: &Path, sink: &mut Sink) -> Settings {
    let mut settings = Settings { state_dir: base.join(DEFAULT_STATE_DIR), ..Settings::default() };
    if let Some(rules) = &spec.rules {
        settings.rules_dir = Some(base.join(&rules.value));
    }
    if let Some(watch) = spec.reload.as_ref().and_then(|r| r.watch.as_ref()) {
        settings.rules_watch = match watch.value.as_str() {
            "off" => None,
            _ => values::duration(watch, sink),
        };
    }
    if let Some(lateness) = &spec.lateness {
        match Span::parse(&lateness.value) {
            Ok(span) => settings.lateness = span,
            Err(message) => sink.error(lateness, message),
        }
    }
    if let Some(max_future) = &spec.max_future {
        settings.max_future = values::duration(max_future, sink).map_or(DEFAULT_MAX_FUTURE, Span::from_duration);
    }
    if let Some(idle) = &spec.idle_advance {
        settings.idle_advance = values::duration(idle, sink).map_or(DEFAULT_IDLE_ADVANCE, Span::from_duration);
    }
    if let Some(source) = &spec.source {
        settings.source = source::read(source, base, sink);
    }
    if let Some(state) = &spec.state {
        if let Some(dir) = &state.dir {
            settings.state_dir = base.join(dir);
        }
        if let Some(dir) = &state.checkpoint_dir {
            settings.checkpoint_dir = Some(base.join(dir));
        }
        if let Some(limits) = &state.alert_log {
            if let Some(bytes) = &limits.segment_bytes {
                if bytes.value < 4096 {
                    sink.error(bytes, "`segment_bytes` must be at least 4096");
                }
                settings.alert_log.segment_bytes = bytes.value;
            }
            if let Some(bytes) = &limits.max_bytes {
                settings.alert_log.max_bytes = bytes.value;
            }
            if settings.alert_log.max_bytes < settings.alert_log.segment_bytes.saturating_mul(2) {
                let at = limits.max_bytes.as_ref().or(limits.segment_bytes.as_ref());
                if let Some(at) = at {
                    sink.error(at, "`max_bytes` must be at least twice `segment_bytes`");
                }
            }
        }
        if let Some(interval) = &state.checkpoint_interval {
            match Span::parse(&interval.value) {
                Ok(span) if span >= Span::from_secs(1) => settings.checkpoint_interval = span,
                Ok(_) => sink.error(interval, "`checkpoint_interval` must be at least 1s"),
                Err(message) => sink.error(interval, message),
            }
        }
    }
    (settings.notifiers, settings.routes) =
        notify::validate(spec.notifiers.as_ref(), spec.routes.as_ref(), &settings.source, base, sink);
    if let Some(output) = &spec.output {
        if let Some(format) = &output.format {
            settings.output = match format.value.as_str() {
                "auto" => OutputFormat::Auto,
                "text" => OutputFormat::Text,
                "json" => OutputFormat::Json,
                other => {
                    sink.error(format, format!("unknown output format `{other}` (auto, text, json)"));
                    OutputFormat::Auto
                }
            };
        }
        settings.output_path = output.path.as_ref().map(|p| base.join(p));
    }
    if let Some(metrics) = &spec.metrics {
        if metrics.enabled == Some(false) {
            settings.metrics_listen = None;
        } else if let Some(listen) = &metrics.listen {
            match listen.value.parse::<SocketAddr>() {
                Ok(addr) => settings.metrics_listen = Some(addr),
                Err(_) => sink.error(listen, format!("`{}` is not an address like 127.0.0.1:9464", listen.value)),
            }
        }
    }
    if let Some(log) = &spec.log {
        if let Some(format) = &log.format {
            settings.log_format = match format.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    sink.error(format, format!("unknown log format `{other}` (text, json)"));
                    LogFormat::Text
                }
            };
        }
        if let Some(level) = &log.level {
            settings.log_level = level.clone();
        }
    }
    if let Some(max) = spec.limits.as_ref().and_then(|l| l.max_event_bytes.as_ref()) {
        if max.value < 64 {
            sink.error(max, "`max_event_bytes` must be at least 64");
        }
        settings.max_event_bytes = usize::try_from(max.value).unwrap_or(usize::MAX);
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_settings_have_defaults_and_refuse_nonsense() {
        let s = parse(Path::new("c.yml"), "max_future: 10m\nidle_advance: 30s\n", Path::new(".")).unwrap();
        assert_eq!((s.max_future, s.idle_advance), (Span::from_secs(600), Span::from_secs(30)));
        assert_eq!(s.time().lateness, DEFAULT_LATENESS);
        let defaults = Settings::default().time();
        assert_eq!((defaults.max_future, defaults.idle_advance), (DEFAULT_MAX_FUTURE, DEFAULT_IDLE_ADVANCE));
        let err = parse(Path::new("c.yml"), "max_future: 0s\nidle_advance: soon\n", Path::new(".")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("c.yml:1:") && text.contains("must be above zero"), "{text}");
        assert!(text.contains("c.yml:2:") && text.contains("invalid duration"), "{text}");
    }

    #[test]
    fn an_empty_config_is_refused_and_a_map_of_defaults_is_the_default() {
        for empty in ["", "\n# only a comment\n", "---\n"] {
            let err = parse(Path::new("c.yml"), empty, Path::new(".")).unwrap_err().to_string();
            assert!(err.contains("c.yml:1:1: the config is empty"), "{err}");
        }
        let expected = Settings { state_dir: Path::new(".").join(DEFAULT_STATE_DIR), ..Settings::default() };
        assert_eq!(parse(Path::new("c.yml"), "{}\n", Path::new(".")).unwrap(), expected);
    }

    #[test]
    fn reads_and_resolves_paths() {
        let text = "rules: r\nlateness: 5m\nsource: {type: file, path: ev.jsonl}\nmetrics: {enabled: false}\n";
        let s = parse(Path::new("/etc/vigil/c.yml"), text, Path::new("/etc/vigil")).unwrap();
        assert_eq!(s.rules_dir, Some(PathBuf::from("/etc/vigil/r")));
        assert_eq!(s.lateness, Span::from_secs(300));
        assert_eq!(s.source, Source::File(PathBuf::from("/etc/vigil/ev.jsonl")));
        assert_eq!(s.metrics_listen, None);
    }

    #[test]
    fn reload_watch_is_a_duration_or_off() {
        let watch = |text: &str| parse(Path::new("c.yml"), text, Path::new(".")).map(|s| s.rules_watch);
        assert_eq!(watch("{}"), Ok(Some(DEFAULT_RULES_WATCH)));
        assert_eq!(watch("reload: {watch: 30s}\n"), Ok(Some(std::time::Duration::from_secs(30))));
        assert_eq!(watch("reload: {watch: \"off\"}\n"), Ok(None));
        assert_eq!(watch("reload: {watch: off}\n"), Ok(None));
        for (text, problem) in [
            ("reload: {watch: 0s}\n", "c.yml:1:17: must be above zero"),
            ("reload: {watch: soon}\n", "c.yml:1:17: invalid duration"),
            ("reload: {watch: 5s, every: 1s}\n", "c.yml:1:"),
        ] {
            let err = watch(text).unwrap_err();
            assert!(err.0[0].to_string().starts_with(problem), "{text}: {}", err.0[0]);
        }
    }

    #[test]
    fn reports_every_error_with_position() {
        let text = "lateness: soon\nsource: {type: kafkaesque}\nmetrics: {listen: everywhere}\n";
        let err = parse(Path::new("c.yml"), text, Path::new(".")).unwrap_err();
        let lines: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("c.yml:1:11: invalid duration"), "{lines:?}");
        assert!(lines[1].starts_with("c.yml:2:16: unknown source type `kafkaesque`"), "{lines:?}");
        let err = parse(Path::new("c.yml"), "sauce: {}\n", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("c.yml:1:1"), "{err}");
        assert!(err.to_string().contains("sauce"), "{err}");
    }

    #[test]
    fn reads_a_kafka_source_and_refuses_secrets_in_the_file() {
        let text =
            "source:\n  type: kafka\n  brokers: [a:9092, b:9092]\n  topics: [events, {name: logins, kind: login}]\n  \
            sasl: {mechanism: SCRAM-SHA-512, username: vigil, password_env: KAFKA_PASSWORD}\n  \
            properties: {fetch.wait.max.ms: 20}\nstate: {dir: st, checkpoint_dir: /shared/ck}\nnotifiers:\n  \
            siem: {type: kafka, topic: alerts}\n";
        let s = parse(Path::new("c.yml"), text, Path::new("/etc/vigil")).unwrap();
        let Source::Kafka(kafka) = &s.source else { panic!("{:?}", s.source) };
        assert_eq!(kafka.client.brokers, "a:9092,b:9092");
        assert_eq!(kafka.topics[1], Topic { name: "logins".into(), kind: Some("login".into()), key: Vec::new() });
        assert_eq!(kafka.group_id, DEFAULT_GROUP_ID);
        assert_eq!(kafka.client.sasl.as_ref().unwrap().password, Secret::Env("KAFKA_PASSWORD".into()));
        assert_eq!(kafka.client.properties, vec![("fetch.wait.max.ms".to_owned(), "20".to_owned())]);
        assert_eq!(s.state_dir, PathBuf::from("/etc/vigil/st"));
        assert_eq!(s.checkpoint_dir(), PathBuf::from("/shared/ck"));
        assert_eq!(Settings::default().checkpoint_dir(), Path::new(DEFAULT_STATE_DIR).join("checkpoints"));
        assert_eq!(s.notifiers.len(), 1);

        let bad = "source:\n  type: kafka\n  brokers: a:9092\n  topics: [bad/topic]\n  \
            sasl: {mechanism: PLAIN, username: u, password: hunter2}\n  \
            properties: {enable.auto.commit: true, sasl.password: x}\n";
        let err = parse(Path::new("c.yml"), bad, Path::new(".")).unwrap_err().to_string();
        for needle in [
            "c.yml:4:11: `bad/topic` is not a Kafka topic name",
            "c.yml:5:51: secrets are never read",
            "enable.auto.commit",
            "would put a secret in the config",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let err =
            parse(Path::new("c.yml"), "source: {type: file, path: x, brokers: a:1}\n", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("`brokers` applies to kafka sources only"), "{err}");
    }

    #[test]
    fn reports_every_misspelt_or_mistyped_setting_at_once() {
        let text = "source:\n  type: kafka\n  brokers: a:9092\n  topics: [events]\n  grup_id: vigil\n\
            metrics:\n  listen: 127.0.0.1:9090\nlimits:\n  max_event_bytes: lots\n";
        let err = parse(Path::new("c.yml"), text, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("c.yml:5:3: unknown field `grup_id`: did you mean `group_id`?"), "{err}");
        assert!(err.contains("c.yml:9:20: expected a whole number"), "{err}");
    }

    #[test]
    fn reads_rekeying_and_refuses_it_without_a_keyed_topic() {
        let text = "source:\n  type: kafka\n  brokers: a:9092\n  topics: [{name: logins, key: [user]}, events]\n  \
            rekey: {partitions: 12}\n";
        let s = parse(Path::new("c.yml"), text, Path::new(".")).unwrap();
        let Source::Kafka(kafka) = &s.source else { panic!("{:?}", s.source) };
        assert_eq!(kafka.topics[0].key, ["user"]);
        let expected = Rekey { topic_prefix: DEFAULT_REKEY_PREFIX.into(), partitions: 12, replication_factor: -1 };
        assert_eq!(kafka.rekey, Some(expected));

        let typo = "source: {type: kafka, brokers: a:9092, topics: [{name: logins, keys: [user]}]}\n";
        let err = parse(Path::new("c.yml"), typo, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("unknown field `keys`"), "{err}");

        let bad = "source:\n  type: kafka\n  brokers: a:9092\n  topics: [events]\n  \
            rekey: {topic_prefix: a/b, partitions: 0, replication_factor: 0}\n";
        let err = parse(Path::new("c.yml"), bad, Path::new(".")).unwrap_err().to_string();
        for needle in [
            "c.yml:5:10: `rekey` needs a topic with a `key`",
            "c.yml:5:25: `topic_prefix` must be a Kafka topic name",
            "c.yml:5:42: `partitions` must be from 1 to 10000",
            "c.yml:5:65: `replication_factor` must be at least 1",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}
