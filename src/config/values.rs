//! The values every component's settings share: where a secret is read
//! from, how to reach Kafka, durations, output formats, and the readers
//! for them. Each component reads its own section (a notifier's in its
//! folder under `notify/`, a source's in `config/source.rs`) with these.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::rules::fields::{FieldReader, Fields};
use crate::rules::yaml::{Node, Spanned};
use crate::rules::Sink;
use crate::time::Span;

/// Where a credential is read from when vigil starts: an environment
/// variable or a file; only a value that is not secret (a user name) may be
/// written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// Reads the credential (a file's trailing newline dropped).
    pub fn read(&self) -> anyhow::Result<String> {
        use anyhow::Context;
        match self {
            Secret::Value(value) => Ok(value.clone()),
            Secret::Env(var) => std::env::var(var).with_context(|| format!("reading the environment variable {var}")),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                .with_context(|| format!("reading the secret file {}", path.display())),
        }
    }
}

/// How to reach a Kafka cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KafkaClient {
    pub brokers: String,
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
    /// librdkafka properties passed through as they are.
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub key_password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sasl {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: String,
    pub username: Secret,
    pub password: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    Text,
    Json,
}

/// A duration above zero (`30s`, `5m`); a problem goes to `sink`.
pub fn duration(value: &Spanned<String>, sink: &mut Sink) -> Option<Duration> {
    match Span::parse(&value.value) {
        Ok(span) if span.0 > 0 => Some(Duration::from_micros(span.0 as u64)),
        Ok(_) => {
            sink.error(value, "must be above zero");
            None
        }
        Err(message) => {
            sink.error(value, message);
            None
        }
    }
}

/// A secret named by `<what>_env` or `<what>_file`; `<what>` itself, the
/// secret written inline, is refused.
pub fn secret_of(r: &mut FieldReader<'_>, [env, file, inline]: [&'static str; 3], base: &Path) -> Option<Secret> {
    if let Some(value) = r.get::<String>(inline) {
        r.sink.error(&value, format!("secrets are never read from the config: use `{env}` or `{file}`"));
    }
    let env = r.get::<String>(env);
    let file = r.get::<String>(file);
    match (env, file) {
        (Some(var), _) => Some(Secret::Env(var.value)),
        (None, Some(path)) => Some(Secret::File(base.join(path.value))),
        (None, None) => None,
    }
}

/// `brokers`: a list of host:port, or one string of them separated by commas.
pub fn brokers_of(r: &mut FieldReader<'_>) -> Option<String> {
    let node = r.node("brokers")?;
    let list: Vec<String> = match &node.value {
        Node::Seq(_) => r.get::<Vec<String>>("brokers")?.value,
        _ => r.get::<String>("brokers")?.value.split(',').map(|b| b.trim().to_owned()).collect(),
    };
    if list.is_empty() || list.iter().any(|b| b.is_empty() || b.contains(char::is_whitespace)) {
        r.sink.error(node, "`brokers` must list host:port addresses");
    }
    Some(list.join(","))
}

/// Properties vigil sets itself, or that would put a secret in the config.
fn property_problem(key: &str) -> Option<&'static str> {
    const MANAGED: &[&str] =
        &["bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof"];
    if MANAGED.contains(&key) {
        return Some("is set by vigil (it commits offsets itself, after the alert log)");
    }
    let lower = key.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("secret") || lower.contains("jaas") || lower.ends_with(".pem") {
        return Some("would put a secret in the config: use `sasl`/`tls` with `*_env` or `*_file`");
    }
    None
}

/// `properties`: librdkafka properties, passed through as written.
pub fn properties_of(r: &mut FieldReader<'_>) -> Vec<(String, String)> {
    let Some(properties) = r.get::<Fields>("properties") else { return Vec::new() };
    let mut out = Vec::new();
    for (key, value) in &properties.value.0 {
        let key = &key.value.0;
        if let Some(problem) = property_problem(key) {
            r.sink.error(value, format!("property `{key}` {problem}"));
            continue;
        }
        match crate::rules::fields::FromNode::from_node(value) {
            Ok(text) => out.push((key.clone(), text)),
            Err(mismatch) => r.sink.error_at(mismatch.loc, mismatch.message),
        }
    }
    out
}
