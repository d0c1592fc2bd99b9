//! The `source:` section: where events come from, read with the field
//! reader (each source type takes its own settings; see
//! `vigil_core::rules::fields`).

use std::path::{Path, PathBuf};

use super::values::{brokers_of, properties_of, secret_of, KafkaClient, Sasl, Secret, Tls};
use crate::rules::fields::{FieldReader, Fields};
use crate::rules::yaml::{Loc, Node, Spanned};
use crate::rules::Sink;

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The bundled demo stream, replayed `speed` times faster than real time.
    Demo {
        speed: f64,
        seed: u64,
    },
    File(PathBuf),
    Stdin,
    Kafka(Box<KafkaSource>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: String,
    /// The `kind` of events on this topic that carry none.
    pub kind: Option<String>,
    /// The event fields producers key this topic's records by (empty:
    /// not declared, every rule is taken to be aligned with the key).
    pub key: Vec<String>,
}

/// Re-keying through internal topics, for rules whose groups do not
/// follow a topic's key (see `kafka::rekey`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rekey {
    pub topic_prefix: String,
    /// Partitions of each internal topic vigil creates.
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSource {
    pub client: KafkaClient,
    pub topics: Vec<Topic>,
    pub group_id: String,
    pub dead_letter_topic: Option<String>,
    pub rekey: Option<Rekey>,
}

pub const DEFAULT_GROUP_ID: &str = "vigil";
pub const DEFAULT_REKEY_PREFIX: &str = "vigil-rekey";
pub const DEFAULT_REKEY_PARTITIONS: i32 = 6;
pub const DEFAULT_DEMO_SPEED: f64 = 300.0;

/// Reads the `source:` map; problems go to `sink`.
pub(super) fn read(source: &Spanned<Fields>, base: &Path, sink: &mut Sink) -> Source {
    let mut r = FieldReader::new(&source.value, Loc::of(source), sink);
    let Some(kind) = r.require::<String>("type", || "missing field `type`".into()) else { return Source::Stdin };
    let read = match kind.value.as_str() {
        "demo" => {
            let speed = r.get::<f64>("speed");
            if let Some(v) = speed.as_ref().filter(|v| !(v.value.is_finite() && v.value > 0.0)) {
                r.sink.error(v, "`speed` must be above zero");
            }
            let speed = speed.map(|v| v.value).filter(|v| v.is_finite() && *v > 0.0);
            Source::Demo { speed: speed.unwrap_or(DEFAULT_DEMO_SPEED), seed: r.get("seed").map_or(1, |s| s.value) }
        }
        "file" => match r.get::<String>("path") {
            Some(path) if path.value == "-" => Source::Stdin,
            Some(path) => Source::File(base.join(&path.value)),
            None => {
                r.sink.error(source, "a `file` source needs a `path` (or `-` for stdin)");
                Source::Stdin
            }
        },
        "stdin" => Source::Stdin,
        "kafka" => Source::Kafka(Box::new(kafka_source(&mut r, base))),
        other => {
            r.sink.error(&kind, format!("unknown source type `{other}` (demo, file, stdin, kafka)"));
            return Source::Stdin;
        }
    };
    // What the Kafka source reads, for a Kafka setting given to another type.
    let mut scratch = Sink::new(1);
    let mut kafka = FieldReader::new(&source.value, Loc::of(source), &mut scratch);
    kafka_source(&mut kafka, base);
    let kafka_settings = kafka.asked().to_vec();
    let kind = kind.value;
    r.finish(|name| match kafka_settings.contains(&name) {
        true => format!("`{name}` applies to kafka sources only"),
        false => format!("`{name}` is not a setting of `{kind}` sources"),
    });
    read
}

fn kafka_source(r: &mut FieldReader<'_>, base: &Path) -> KafkaSource {
    let at = r.at();
    let brokers = brokers_of(r).unwrap_or_else(|| {
        if r.given("brokers").is_none() {
            r.sink.error_at(at, "a `kafka` source needs `brokers`");
        }
        String::new()
    });
    let topics = topics(r);
    let rekey = r.get::<Fields>("rekey").map(|spec| {
        let mut fields = FieldReader::new(&spec.value, Loc::of(&spec), r.sink);
        let rekey = read_rekey(&mut fields, &topics);
        fields.finish(|name| format!("`{name}` is not a setting of `rekey`"));
        rekey
    });
    let tls = r.get::<Fields>("tls").map(|spec| {
        let mut t = FieldReader::new(&spec.value, Loc::of(&spec), r.sink);
        let mut path = |name| t.get::<String>(name).map(|p| base.join(p.value));
        let (ca, cert, key) = (path("ca"), path("cert"), path("key"));
        let tls = Tls {
            ca,
            cert,
            key,
            key_password: secret_of(&mut t, ["key_password_env", "key_password_file", "key_password"], base),
        };
        t.finish(|name| format!("`{name}` is not a setting of `tls`"));
        tls
    });
    let sasl = r.get::<Fields>("sasl").and_then(|spec| {
        let mut s = FieldReader::new(&spec.value, Loc::of(&spec), r.sink);
        let sasl = read_sasl(&mut s, &spec, base);
        s.finish(|name| format!("`{name}` is not a setting of `sasl`"));
        sasl
    });
    let properties = properties_of(r);
    KafkaSource {
        client: KafkaClient { brokers, tls, sasl, properties },
        topics,
        group_id: r.get::<String>("group_id").map_or(DEFAULT_GROUP_ID.to_owned(), |g| g.value),
        dead_letter_topic: r.get::<String>("dead_letter_topic").map(|t| t.value),
        rekey,
    }
}

/// `topics`: each a name, or a map with the name and its options.
fn topics(r: &mut FieldReader<'_>) -> Vec<Topic> {
    let at = r.at();
    let Some(list) = r.get::<Vec<Spanned<Node>>>("topics") else {
        if r.given("topics").is_none() {
            r.sink.error_at(at, "a `kafka` source needs `topics`");
        }
        return Vec::new();
    };
    if list.value.is_empty() {
        r.sink.error(&list, "`topics` must name at least one topic");
    }
    let mut topics = Vec::new();
    for item in &list.value {
        let topic = match &item.value {
            Node::Map(entries) => {
                let fields = Fields(entries.clone());
                let mut t = FieldReader::new(&fields, Loc::of(item), r.sink);
                let name = t.require::<String>("name", || "missing field `name`".into());
                let kind = t.get::<String>("kind").map(|k| k.value);
                let key = t.get::<Vec<String>>("key").map(|k| k.value).unwrap_or_default();
                t.finish(|name| format!("`{name}` is not a setting of a topic (name, kind, key)"));
                match name {
                    Some(name) => Topic { name: name.value, kind, key },
                    None => continue,
                }
            }
            _ => match crate::rules::fields::FromNode::from_node(item) {
                Ok(name) => Topic { name, kind: None, key: Vec::new() },
                Err(_) => {
                    r.sink.error(item, "expected a topic name or {name, kind, key}");
                    continue;
                }
            },
        };
        if !is_topic_name(&topic.name) {
            r.sink.error(&list, format!("`{}` is not a Kafka topic name ([a-zA-Z0-9._-], 1-249)", topic.name));
        }
        if topic.key.iter().any(String::is_empty) {
            r.sink.error(&list, format!("topic `{}`: a `key` field name is empty", topic.name));
        }
        topics.push(topic);
    }
    topics
}

fn read_rekey(r: &mut FieldReader<'_>, topics: &[Topic]) -> Rekey {
    if !topics.iter().any(|t| !t.key.is_empty()) {
        r.sink.error_at(r.at(), "`rekey` needs a topic with a `key` (the fields its producers key records by)");
    }
    let prefix = r.get::<String>("topic_prefix");
    if let Some(prefix) = &prefix {
        if !is_topic_name(&prefix.value) || prefix.value.len() > 200 {
            r.sink.error(prefix, "`topic_prefix` must be a Kafka topic name ([a-zA-Z0-9._-], 1-200)");
        }
    }
    let partitions = r.get::<i32>("partitions");
    if let Some(p) = partitions.as_ref().filter(|p| !(1..=10_000).contains(&p.value)) {
        r.sink.error(p, "`partitions` must be from 1 to 10000");
    }
    let replication_factor = r.get::<i32>("replication_factor");
    if let Some(f) = replication_factor.as_ref().filter(|f| f.value == 0 || f.value < -1) {
        r.sink.error(f, "`replication_factor` must be at least 1 (or -1 for the broker's default)");
    }
    Rekey {
        topic_prefix: prefix.map_or(DEFAULT_REKEY_PREFIX.to_owned(), |p| p.value),
        partitions: partitions.map_or(DEFAULT_REKEY_PARTITIONS, |p| p.value),
        replication_factor: replication_factor.map_or(-1, |f| f.value),
    }
}

fn read_sasl(r: &mut FieldReader<'_>, spec: &Spanned<Fields>, base: &Path) -> Option<Sasl> {
    let mechanism = r.require::<String>("mechanism", || "missing field `mechanism`".into());
    if let Some(m) =
        mechanism.as_ref().filter(|m| !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.value.as_str()))
    {
        r.sink.error(m, "unknown SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)");
    }
    let username = match (r.get::<String>("username"), r.get::<String>("username_env")) {
        (Some(name), _) => Some(Secret::Value(name.value)),
        (None, Some(var)) => Some(Secret::Env(var.value)),
        (None, None) => None,
    };
    let password = secret_of(r, ["password_env", "password_file", "password"], base);
    match (username, password) {
        (Some(username), Some(password)) => Some(Sasl { mechanism: mechanism?.value, username, password }),
        _ => {
            r.sink.error(spec, "`sasl` needs `username` (or `username_env`) and `password_env` or `password_file`");
            None
        }
    }
}

fn is_topic_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 249 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
