//! Re-keying: rules whose groups do not follow a topic's key.
//!
//! Kafka keeps the records of one key in one partition, and each partition
//! has its own pipeline, so a rule sees all of a group's events only if
//! the group fields include every field the topic is keyed by. A topic
//! keyed by `user` serves `group_by: [user]` and `[user, device]`, but
//! password spraying (`group_by: [src_ip]`) would see each address's
//! failures split over the partitions of many users.
//!
//! With `rekey` configured, such rules leave the source topics' pipelines.
//! vigil produces the events they may match, unchanged, to an internal
//! topic keyed by their group fields (`<prefix>.<fields>`, one per distinct
//! `group_by`), consumes those topics in the same group, and runs the rules
//! there, as Kafka Streams does with its repartition topics.
//!
//! Delivery: a source offset is committed only after its re-keyed copies
//! are acknowledged (idempotent producer, `acks=all`). Each copy carries
//! its source topic, partition and offset; a re-keyed partition remembers
//! the last source offset it took from each source partition (in its
//! checkpoint), so copies produced again after a crash are dropped rather
//! than counted twice.
//!
//! Order: events of one group reach the internal partition from several
//! source partitions, in whatever order their consumers get to them. Each
//! copy carries its event's time and its source partition's frontier, and
//! every source partition reports its frontier to every internal partition
//! in control records when it has nothing to copy (`report`); the internal
//! partition merges the copies back into event-time order (`kafka::merge`).
//! Source partitions that run ahead of the slowest are paused meanwhile
//! (`consumer`), so a catch-up after downtime loses nothing to lateness.
//!
//! A copy that fails delivery after librdkafka's retries
//! (`message.timeout.ms`) is counted, not retried, and its event is missing
//! for the re-keyed rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use prometheus::IntCounter;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::Message;
use tracing::{info, warn};

use crate::alert::KEY_SEPARATOR;
use crate::config::{KafkaSource, Rekey};
use crate::event::{Decoder, FieldId};
use crate::kafka::producer::Producer;
use crate::ruleset::{Rule, RuleSet};
use crate::state::checkpoint::SourceMark;

/// Headers naming where a re-keyed copy (or a dead letter) came from.
pub const SOURCE_TOPIC: &str = "vigil-source-topic";
pub const SOURCE_PARTITION: &str = "vigil-source-partition";
pub const SOURCE_OFFSET: &str = "vigil-source-offset";
/// Header with the source topic's default kind, for events without one.
pub const KIND: &str = "vigil-kind";
/// The key of copies for rules without `group_by`: all in one partition.
const GLOBAL_KEY: &str = "_all";
/// Header with the copied event's time (microseconds since the epoch).
pub const TS: &str = "vigil-ts";
/// Header with the source partition's frontier (microseconds), on copies
/// and on control records.
pub const FRONTIER: &str = "vigil-frontier";
/// Header of a control record whose source partition has nothing to read.
pub const IDLE: &str = "vigil-idle";

/// What a consumed topic feeds, and with which rules.
#[derive(Debug, Clone)]
pub struct Stream {
    pub name: String,
    /// The `kind` of events on this topic that carry none.
    pub kind: Option<String>,
    pub rules: RuleSet,
    /// An internal topic of re-keyed copies.
    pub rekeyed: bool,
}

/// An internal topic and the events copied to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub topic: String,
    /// Its partition count, read from the broker once it exists.
    pub partitions: i32,
    group_by: Vec<FieldId>,
    /// Kinds its rules can match (lower case); `None`: any.
    kinds: Option<Vec<String>>,
}

/// The routing of rules to topics.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Source topics first, in the configured order, then internal ones.
    pub streams: Vec<Stream>,
    pub targets: Vec<Target>,
    /// Rules that see only part of their groups' events (no `rekey`).
    pub misaligned: Vec<Arc<str>>,
    /// Topics that declare no `key:` while stateful rules read them: vigil
    /// cannot tell whether a group's events share a partition.
    pub unkeyed: Vec<String>,
}

impl Plan {
    pub fn new(rules: &RuleSet, source: &KafkaSource) -> Plan {
        let stateful = rules.rules.iter().any(|r| r.detector.type_name() != "match");
        let unkeyed: Vec<String> =
            source.topics.iter().filter(|t| stateful && t.key.is_empty()).map(|t| t.name.clone()).collect();
        let mut plan = Plan::keyed(rules, source);
        plan.unkeyed = unkeyed;
        plan
    }

    fn keyed(rules: &RuleSet, source: &KafkaSource) -> Plan {
        // A topic declared with a `kind` carries that kind: a rule that
        // cannot match it needs no alignment with that topic's key. A rule
        // whose kinds no declared topic carries may see them anywhere.
        let carries = |rule: &Rule, topic: &crate::config::Topic| match (&topic.kind, rule.filter.required_kinds()) {
            (Some(kind), Some(kinds)) => kinds.iter().any(|k| k.eq_ignore_ascii_case(kind)),
            _ => true,
        };
        let misaligned = |rule: &Rule| {
            let keyed_apart =
                |t: &crate::config::Topic| !t.key.iter().all(|k| rule.group_by.iter().any(|(name, _)| **name == **k));
            if source.topics.iter().any(|t| carries(rule, t)) {
                source.topics.iter().filter(|t| carries(rule, t)).any(keyed_apart)
            } else {
                source.topics.iter().any(keyed_apart)
            }
        };
        let Some(rekey) = &source.rekey else {
            return Plan {
                streams: source.topics.iter().map(|t| stream(t.name.clone(), t.kind.clone(), rules.clone())).collect(),
                targets: Vec::new(),
                misaligned: rules.rules.iter().filter(|r| misaligned(r)).map(|r| r.id.clone()).collect(),
                unkeyed: Vec::new(),
            };
        };
        let aligned = rules.subset(|r| !misaligned(r));
        let mut streams: Vec<Stream> =
            source.topics.iter().map(|t| stream(t.name.clone(), t.kind.clone(), aligned.clone())).collect();
        // One internal topic per distinct group_by, in rule order.
        let mut by_fields: BTreeMap<Vec<String>, Vec<Arc<Rule>>> = BTreeMap::new();
        for rule in rules.rules.iter().filter(|r| misaligned(r)) {
            let fields = rule.group_by.iter().map(|(name, _)| name.to_string()).collect();
            by_fields.entry(fields).or_default().push(rule.clone());
        }
        let mut targets = Vec::new();
        for (fields, members) in by_fields {
            let topic = internal_topic(rekey, &fields);
            let kinds = members
                .iter()
                .map(|r| r.filter.required_kinds())
                .collect::<Option<Vec<Vec<String>>>>()
                .map(|k| k.concat().into_iter().map(|k| k.to_ascii_lowercase()).collect());
            targets.push(Target {
                topic: topic.clone(),
                partitions: rekey.partitions,
                group_by: members[0].group_by.iter().map(|g| g.1).collect(),
                kinds,
            });
            let mut stream = stream(topic, None, rules.subset(|r| members.iter().any(|m| Arc::ptr_eq(m, r))));
            stream.rekeyed = true;
            streams.push(stream);
        }
        Plan { streams, targets, misaligned: Vec::new(), unkeyed: Vec::new() }
    }
}

fn stream(name: String, kind: Option<String>, rules: RuleSet) -> Stream {
    Stream { name, kind, rules, rekeyed: false }
}

/// `<prefix>.<field>__<field>`, or `<prefix>._all` for rules without
/// groups; characters a topic name cannot hold become `_`.
fn internal_topic(rekey: &Rekey, fields: &[String]) -> String {
    let suffix = if fields.is_empty() { "_all".to_owned() } else { fields.join("__") };
    let suffix: String =
        suffix.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let mut name = format!("{}.{suffix}", rekey.topic_prefix);
    name.truncate(249);
    name
}

/// Creates the internal topics that do not exist yet.
pub fn create_topics(source: &KafkaSource, rekey: &Rekey, topics: &[&str]) -> Result<()> {
    let config = crate::kafka::client_config(&source.client)?;
    let admin: AdminClient<DefaultClientContext> = config.create().context("creating a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, rekey.partitions, TopicReplication::Fixed(rekey.replication_factor)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results =
        runtime.block_on(admin.create_topics(&new, &options)).context("creating the internal topics for re-keying")?;
    for result in results {
        match result {
            Ok(topic) => info!(%topic, partitions = rekey.partitions, "Created an internal topic for re-keying"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating the internal topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Copies source events to the internal topics.
pub struct Rekeyer {
    pub producer: Producer,
    decoder: Decoder,
    targets: Vec<Target>,
    sent: Vec<IntCounter>,
    key: String,
    /// The source partition and offset as text, header values.
    origin: String,
    /// The event's time and the source's frontier as text.
    times: String,
}

impl Rekeyer {
    pub fn new(producer: Producer, rules: &RuleSet, targets: Vec<Target>, sent: Vec<IntCounter>, max: usize) -> Self {
        Rekeyer {
            producer,
            decoder: Decoder::with_max_bytes(rules.schema.clone(), max),
            targets,
            sent,
            key: String::new(),
            origin: String::new(),
            times: String::new(),
        }
    }

    /// Takes the rules of a reload whose plan has the same internal topics.
    pub fn retarget(&mut self, rules: &RuleSet, targets: Vec<Target>) {
        self.decoder = Decoder::with_max_bytes(rules.schema.clone(), self.decoder.max_bytes());
        let partitions: Vec<(String, i32)> = self.targets.iter().map(|t| (t.topic.clone(), t.partitions)).collect();
        self.targets = targets;
        for target in &mut self.targets {
            if let Some((_, n)) = partitions.iter().find(|(topic, _)| *topic == target.topic) {
                target.partitions = *n;
            }
        }
    }

    /// Reads the internal topics' partition counts from the broker (they
    /// may have been created with another count than configured).
    pub fn learn_partitions(&mut self) {
        for target in &mut self.targets {
            match self.producer.partitions(&target.topic) {
                Ok(n) if n > 0 => target.partitions = n,
                Ok(_) => {}
                Err(err) => warn!(%err, topic = %target.topic, "Could not read an internal topic's partition count"),
            }
        }
    }

    /// Tells every internal partition how far `partition` of `topic` has
    /// got (its frontier), and whether it has nothing to read.
    pub fn report(&mut self, topic: &str, partition: i32, frontier: crate::time::Timestamp, idle: bool) {
        self.origin.clear();
        let _ = write!(self.origin, "{partition}");
        self.times.clear();
        let _ = write!(self.times, "{}", frontier.0);
        for target in &self.targets {
            for p in 0..target.partitions {
                let mut headers = OwnedHeaders::new_with_capacity(4)
                    .insert(Header { key: SOURCE_TOPIC, value: Some(topic) })
                    .insert(Header { key: SOURCE_PARTITION, value: Some(self.origin.as_str()) })
                    .insert(Header { key: FRONTIER, value: Some(self.times.as_str()) });
                if idle {
                    headers = headers.insert(Header { key: IDLE, value: Some("1") });
                }
                if let Err(err) = self.producer.send_to(&target.topic, p, headers) {
                    warn!(%err, topic = %target.topic, "Could not queue a frontier report");
                }
            }
        }
    }

    /// Copies a source message to every internal topic whose rules may
    /// match it. A message that does not decode was already rejected by
    /// the source's pipeline and is not copied.
    pub fn copy(
        &mut self,
        message: &BorrowedMessage<'_>,
        default_kind: Option<&str>,
        frontier: crate::time::Timestamp,
    ) {
        let payload = message.payload().unwrap_or_default();
        let Ok(event) = self.decoder.decode_bytes_or_kind(payload, default_kind) else { return };
        self.origin.clear();
        let _ = write!(self.origin, "{}", message.partition());
        let split = self.origin.len();
        let _ = write!(self.origin, "{}", message.offset());
        let (partition, offset) = self.origin.split_at(split);
        self.times.clear();
        let _ = write!(self.times, "{}", event.ts.0);
        let split = self.times.len();
        let _ = write!(self.times, "{}", frontier.0);
        let (ts, frontier) = self.times.split_at(split);
        for (target, sent) in self.targets.iter().zip(&self.sent) {
            if let Some(kinds) = &target.kinds {
                if !kinds.iter().any(|k| k.eq_ignore_ascii_case(event.kind)) {
                    continue;
                }
            }
            self.key.clear();
            let grouped = target.group_by.iter().enumerate().all(|(i, field)| {
                if i > 0 {
                    self.key.push(KEY_SEPARATOR);
                }
                event.get(*field).write_text(&mut self.key)
            });
            if !grouped {
                continue; // no rule of this topic could group it
            }
            if target.group_by.is_empty() {
                // librdkafka spreads empty keys at random: one group, one key.
                self.key.push_str(GLOBAL_KEY);
            }
            let mut headers = OwnedHeaders::new_with_capacity(6)
                .insert(Header { key: SOURCE_TOPIC, value: Some(message.topic()) })
                .insert(Header { key: SOURCE_PARTITION, value: Some(partition) })
                .insert(Header { key: SOURCE_OFFSET, value: Some(offset) })
                .insert(Header { key: TS, value: Some(ts) })
                .insert(Header { key: FRONTIER, value: Some(frontier) });
            if let Some(kind) = default_kind {
                headers = headers.insert(Header { key: KIND, value: Some(kind) });
            }
            match self.producer.send(&target.topic, self.key.as_bytes(), payload, Some(headers)) {
                Ok(()) => sent.inc(),
                Err(err) => warn!(%err, topic = %target.topic, "Could not queue a re-keyed event"),
            }
        }
    }
}

/// Where a re-keyed copy (or a control record) came from, from its headers.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// `None` for a control record, which reports a frontier only.
    pub offset: Option<i64>,
    pub kind: Option<&'a str>,
    pub ts: Option<crate::time::Timestamp>,
    pub frontier: crate::time::Timestamp,
    pub idle: bool,
}

impl<'a> Origin<'a> {
    pub fn of(message: &'a BorrowedMessage<'_>) -> Option<Origin<'a>> {
        use crate::time::Timestamp;
        let headers = message.headers()?;
        let (mut topic, mut partition, mut offset, mut kind) = (None, None, None, None);
        let (mut ts, mut frontier, mut idle) = (None, None, false);
        for header in headers.iter() {
            let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
            match header.key {
                SOURCE_TOPIC => topic = value,
                SOURCE_PARTITION => partition = value.and_then(|v| v.parse().ok()),
                SOURCE_OFFSET => offset = value.and_then(|v| v.parse().ok()),
                KIND => kind = value,
                TS => ts = value.and_then(|v| v.parse().ok()).map(Timestamp),
                FRONTIER => frontier = value.and_then(|v| v.parse().ok()).map(Timestamp),
                IDLE => idle = true,
                _ => {}
            }
        }
        let frontier = frontier.or(ts).unwrap_or(Timestamp::MIN);
        Some(Origin { topic: topic?, partition: partition?, offset, kind, ts, frontier, idle })
    }

    /// True if the copy at `offset` is newer than what `marks` took.
    pub fn is_new(&self, offset: i64, marks: &[SourceMark]) -> bool {
        marks.iter().find(|m| m.partition == self.partition && m.topic == self.topic).is_none_or(|m| offset > m.offset)
    }
}

/// Records that the copy from `topic`/`partition` at `offset` was taken.
pub fn take_mark(topic: &str, partition: i32, offset: i64, marks: &mut Vec<SourceMark>) {
    match marks.iter_mut().find(|m| m.partition == partition && m.topic == topic) {
        Some(mark) => mark.offset = mark.offset.max(offset),
        None => marks.push(SourceMark { topic: topic.to_owned(), partition, offset }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KafkaClient, Topic};
    use crate::ruleset::RuleSources;

    fn rule(id: &str, group_by: &str, filter: &str) -> String {
        format!(
            "id: {id}\ntitle: t\nseverity: warning\nfilter: {filter}\n\
             detect: {{type: threshold, group_by: {group_by}, window: 5m, threshold: 3}}\nalert: {{summary: s}}\n"
        )
    }

    fn rules() -> RuleSet {
        let text = [
            rule("by_user", "[user]", "{kind: login}"),
            rule("by_user_device", "[user, device]", "{kind: login}"),
            rule("by_ip", "[src_ip]", "{kind: login}"),
            rule("by_ip_any", "[src_ip]", "{outcome: failure}"),
            rule("by_token", "[token]", "{kind: api_call}"),
            rule("global", "[]", "{kind: message_volume}"),
        ]
        .join("---\n");
        RuleSet::compile(&RuleSources { files: vec![("r.yml".into(), text)], ..RuleSources::default() }).unwrap()
    }

    fn source(rekey: Option<Rekey>) -> KafkaSource {
        KafkaSource {
            client: KafkaClient::default(),
            topics: vec![Topic { name: "logins".into(), kind: Some("login".into()), key: vec!["user".into()] }],
            group_id: "vigil".into(),
            dead_letter_topic: None,
            rekey,
        }
    }

    fn ids(rules: &RuleSet) -> Vec<&str> {
        rules.rules.iter().map(|r| &*r.id).collect()
    }

    #[test]
    fn rules_grouped_by_the_key_stay_and_the_others_are_rekeyed_by_their_fields() {
        let rekey = Rekey { topic_prefix: "vigil-rekey".into(), partitions: 3, replication_factor: -1 };
        let plan = Plan::new(&rules(), &source(Some(rekey)));
        let names: Vec<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["logins", "vigil-rekey._all", "vigil-rekey.src_ip", "vigil-rekey.token"]);
        assert_eq!(ids(&plan.streams[0].rules), ["by_user", "by_user_device"]);
        assert!(!plan.streams[0].rekeyed && plan.streams[1..].iter().all(|s| s.rekeyed));
        assert_eq!(ids(&plan.streams[2].rules), ["by_ip", "by_ip_any"]);
        // by_ip_any matches any kind, so every kind is copied for src_ip.
        let kinds: Vec<_> = plan.targets.iter().map(|t| t.kinds.clone()).collect();
        assert_eq!(kinds, [Some(vec!["message_volume".to_owned()]), None, Some(vec!["api_call".to_owned()])]);
        assert!(plan.misaligned.is_empty());
    }

    #[test]
    fn without_rekey_every_rule_runs_on_the_topic_and_the_misaligned_are_named() {
        let plan = Plan::new(&rules(), &source(None));
        assert_eq!(plan.streams.len(), 1);
        assert_eq!(plan.streams[0].rules.rules.len(), 6);
        assert_eq!(
            plan.misaligned.iter().map(|r| &**r).collect::<Vec<_>>(),
            ["by_ip", "by_ip_any", "by_token", "global"]
        );
    }

    #[test]
    fn a_rule_is_aligned_only_with_the_topics_that_carry_its_kinds() {
        let rekey = Rekey { topic_prefix: "vigil-rekey".into(), partitions: 3, replication_factor: -1 };
        let mut source = source(Some(rekey));
        source.topics.push(Topic { name: "api".into(), kind: Some("api_call".into()), key: vec!["token".into()] });
        let plan = Plan::new(&rules(), &source);
        let names: Vec<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["logins", "api", "vigil-rekey._all", "vigil-rekey.src_ip"], "no vigil-rekey.user or .token");
        assert_eq!(ids(&plan.streams[0].rules), ["by_user", "by_user_device", "by_token"]);
        assert_eq!(ids(&plan.streams[3].rules), ["by_ip", "by_ip_any"], "by_ip_any matches any kind");
    }

    #[test]
    fn a_copy_produced_again_is_recognised() {
        let mut marks = Vec::new();
        let origin = |partition| Origin {
            topic: "logins",
            partition,
            offset: None,
            kind: None,
            ts: None,
            frontier: crate::time::Timestamp::MIN,
            idle: false,
        };
        for offset in [5, 6] {
            assert!(origin(2).is_new(offset, &marks));
            take_mark("logins", 2, offset, &mut marks);
        }
        assert!(!origin(2).is_new(6, &marks), "the same copy again");
        assert!(!origin(2).is_new(3, &marks), "an older copy, produced again after a crash");
        assert!(origin(1).is_new(3, &marks));
        take_mark("logins", 1, 3, &mut marks);
        assert_eq!(marks.len(), 2);
    }
}
