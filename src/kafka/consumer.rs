//! The Kafka loop: consume, detect, log, checkpoint, commit, on one thread.
//!
//! ```text
//! poll ─▶ partition's pipeline ─▶ alert log (fsync) ─▶ outputs, alerts topic
//!   │            └─ malformed ─▶ dead-letter topic
//!   └─ every checkpoint_interval: checkpoint each partition, then commit
//! ```
//!
//! Each assigned partition has its own pipeline (decoder, engine, event-time
//! clock), so a partition's state can be checkpointed, handed over and
//! restored on its own. Producers that key events by the entity a rule
//! groups by (user, account, token) put all of a group's events in one
//! partition, and the per-partition engines then see exactly what one
//! engine would.
//!
//! At-least-once: an offset is committed only together with the checkpoint
//! of the state that covers it, and only after every alert raised by the
//! events before it is fsynced to the alert log and every dead letter is
//! confirmed by the broker. After a crash vigil restores the checkpoint and
//! reads the events after it again; the alerts they raise again carry the
//! same ids and the alert log drops them.
//!
//! Rebalance: librdkafka calls back on this thread from inside `poll`. On
//! revoke, the partitions' work is flushed, checkpointed and committed
//! before they are released. On assign, a partition's checkpoint is
//! restored if it is at or beyond the group's committed offset (the
//! checkpoint directory may be shared by replicas); an older one belongs to
//! a run that another replica has since overtaken and is set aside, and
//! the partition starts with empty state from the committed offset.
//! Messages fetched before a rebalance are dropped unprocessed: librdkafka
//! delivers them again from the assigned offsets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use prometheus::IntCounter;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::alert::Alert;
use crate::app::reload::Reload;
use crate::app::stage::Stage;
use crate::config::{KafkaSource, Settings};
use crate::engine::ReloadReport;
use crate::event::DecodeError;
use crate::kafka::commit::{Committer, Offsets, Ticket};
use crate::kafka::merge::{self, Merge, Pushed};
use crate::kafka::producer::{Deliveries, Producer};
use crate::kafka::rekey::{self, Origin, Plan, Rekeyer, Stream};
use crate::pipeline::Pipeline;
use crate::ruleset::RuleSet;
use crate::state::alert_log::AlertLog;
use crate::state::checkpoint::{SourceMark, Store};
use crate::telemetry::activity::Activity;
use crate::telemetry::logging::{Lateness, Rejections};
use crate::telemetry::metrics::{self, Exported, Exporter, Metrics};
use crate::time::{Span, Timestamp};

/// Messages taken from librdkafka before they are processed under one lock.
const BATCH: usize = 1024;
const POLL: Duration = Duration::from_millis(100);
const EXPORT_EVERY: Duration = Duration::from_millis(250);
/// How long a commit or a dead-letter flush may wait on the broker.
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// One assigned partition and its detection state.
struct Partition {
    topic: usize,
    partition: i32,
    pipeline: Pipeline<Activity>,
    exported: Exported,
    /// The next offset to process; `None` until a message is processed.
    next: Option<i64>,
    /// The offset the last checkpoint and commit cover.
    saved: Option<i64>,
    /// For a re-keyed topic: the last offset taken from each source partition.
    marks: Vec<SourceMark>,
    /// For a re-keyed topic: copies waiting for their turn in event time.
    merge: Option<Merge>,
    /// For a source topic: when a message last came, and whether the
    /// partition is paused for running ahead of the slowest.
    last_message: Instant,
    paused: bool,
    /// `topic/partition`: the source label and the late-event warning's name.
    name: String,
}

/// Watermark alignment is backpressure: source partitions ahead of the
/// slowest (by more than `ALIGN_DRIFT` of event time) are paused once the
/// merges hold `ALIGN_HIGH` bytes of copies waiting, and resumed below
/// `ALIGN_LOW`. Pausing costs a re-fetch (librdkafka drops what it had
/// prefetched), so a backlog the merges can hold is never paused.
const ALIGN_DRIFT: Span = Span(60_000_000);
const ALIGN_HIGH: usize = 16 << 20;
const ALIGN_LOW: usize = 4 << 20;
/// A source partition that delivered nothing for this long is at the end
/// of its log (or stuck): it no longer holds the others back.
const SOURCE_IDLE: Duration = Duration::from_secs(2);
/// How often source partitions report their frontiers to the internal ones.
const REPORT_EVERY: Duration = Duration::from_millis(200);
/// How long an internal partition waits for a source partition it does not
/// hear from before leaving it out of the merge.
const MERGE_IDLE_TIMEOUT: Span = Span(10_000_000);

struct DeadLetters {
    topic: String,
    producer: Producer,
}

/// Everything the loop and the rebalance callback share.
struct Worker {
    settings: Settings,
    /// Every rule running, before the plan splits them among the streams.
    rules: RuleSet,
    /// The consumed topics (source, then internal re-keyed ones) and their rules.
    streams: Vec<Stream>,
    rekeyer: Option<Rekeyer>,
    partitions: Vec<Partition>,
    store: Store,
    /// The alert log, and the alerts in it not yet synced.
    stage: Stage,
    /// Dropped at shutdown: the output task ends when it is gone, even if
    /// a commit thread stuck on an unreachable broker still holds the
    /// consumer (and through its context, this worker).
    out: Option<mpsc::Sender<Alert>>,
    dead_letters: Option<DeadLetters>,
    exporter: Exporter,
    consumed: Vec<IntCounter>,
    rejected: Rejections,
    /// The newest event time processed in the current batch.
    newest: Timestamp,
    last_checkpoint: Instant,
    last_export: Instant,
    log_ok: bool,
    /// Set once the consumer exists, before it subscribes.
    committer: Option<Committer>,
    /// Every partition of the source topics: what an internal partition's
    /// merge waits for.
    source_partitions: Vec<(String, i32)>,
    last_report: Instant,
    lateness: Lateness,
}

/// How released partitions are handed to their next owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// Checkpointed and committed first, so the next owner starts where
    /// this one stopped.
    Commit,
    /// The assignment is already lost (or the rebalance failed): the alert
    /// log is synced, nothing is committed; the checkpoints cover the
    /// offsets.
    Lost,
}

struct Shared {
    worker: Mutex<Worker>,
    /// Bumped on every rebalance: messages fetched under an older
    /// generation are dropped.
    generation: AtomicU64,
    ready: Arc<AtomicBool>,
    connected: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn worker(&self) -> MutexGuard<'_, Worker> {
        // A panic while holding the lock ends the process anyway (the
        // thread is gone); the state it left is still the best we have.
        self.worker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records whether a broker is reachable; the loop turns it into
    /// readiness after each batch.
    fn set_connected(&self, connected: bool) {
        if !connected {
            // At once, not at the loop's next turn: the loop may be waiting
            // on the very broker that stopped answering.
            self.ready.store(false, Ordering::Relaxed);
        }
        if self.connected.swap(connected, Ordering::Relaxed) != connected {
            if connected {
                info!("Connected to Kafka");
            } else {
                warn!("No Kafka broker is reachable; vigil keeps running and reports not ready");
            }
            self.metrics.kafka.connected.set(i64::from(connected));
        }
    }
}

struct Context {
    shared: Arc<Shared>,
}

/// How long vigil may hear nothing from a broker before it counts as down.
const RX_SILENCE_MICROS: i64 = 15_000_000;

impl ClientContext for Context {
    fn stats(&self, stats: Statistics) {
        // A broker counts only while vigil hears from it: a broker process
        // that hangs keeps its connections (and its state "UP") until
        // `socket.timeout.ms`, a minute, while nothing arrives. Fetch
        // responses come every `fetch.wait.max.ms` and heartbeats every
        // few seconds, so silence this long is an outage.
        let heard = |b: &rdkafka::statistics::Broker| (0..RX_SILENCE_MICROS).contains(&b.rxidle);
        let up = stats.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP" && heard(b));
        self.shared.set_connected(up);
        let lag = &self.shared.metrics.kafka.consumer_lag;
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || !p.desired {
                    continue;
                }
                // Before the first message there is no position: the lag
                // is then what the partition holds.
                let behind = if p.consumer_lag >= 0 {
                    p.consumer_lag
                } else if p.hi_offset >= 0 && p.committed_offset < 0 {
                    p.hi_offset - p.lo_offset.max(0)
                } else {
                    continue;
                };
                lag.with_label_values(&[topic.as_str(), &partition.to_string()]).set(behind);
            }
        }
    }

    /// Connection trouble is one WARN when it starts and one INFO when it
    /// ends (`set_connected`), counted in `vigil_kafka_client_errors_total`;
    /// librdkafka repeats it every few seconds, which goes to DEBUG.
    fn error(&self, error: KafkaError, reason: &str) {
        let kind = super::error_kind(error.rdkafka_error_code());
        self.shared.metrics.kafka.client_errors.with_label_values(&[kind]).inc();
        match kind {
            "all_brokers_down" => {
                self.shared.set_connected(false);
                debug!(%error, reason, "Kafka client error");
            }
            "transport" => debug!(%error, reason, "Kafka client error"),
            _ => warn!(%error, reason, "Kafka client error"),
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        super::log(level, fac, message);
    }
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let rebalances = &self.shared.metrics.kafka.rebalances;
        let mut worker = self.shared.worker();
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                rebalances.with_label_values(&["assign"]).inc();
                worker.adopt(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                rebalances.with_label_values(&["revoke"]).inc();
                let handover = if consumer.assignment_lost() { Handover::Lost } else { Handover::Commit };
                worker.release(tpl, handover);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                rebalances.with_label_values(&["error"]).inc();
                warn!(error = ?other, "Rebalance error; releasing every partition");
                let all = consumer.assignment().unwrap_or_default();
                worker.release(&all, Handover::Lost);
                consumer.unassign()
            }
        };
        if let Err(err) = result {
            error!(%err, "Applying a partition assignment failed");
        }
        let assigned = worker.partitions.len() as i64;
        self.shared.metrics.kafka.assigned_partitions.set(assigned);
    }
}

impl Worker {
    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        let t = self.streams.iter().position(|t| t.name == topic)?;
        self.partitions.iter().position(|p| p.topic == t && p.partition == partition)
    }

    /// Takes on newly assigned partitions: restores their checkpoints and
    /// sets the offsets to start from in `tpl`.
    fn adopt(&mut self, consumer: &BaseConsumer<Context>, tpl: &mut TopicPartitionList) {
        let committed = consumer.committed_offsets(tpl.clone(), BROKER_WAIT).unwrap_or_else(|err| {
            warn!(%err, "Could not read the committed offsets; starting from the checkpoints alone");
            TopicPartitionList::new()
        });
        let restores = &self.exporter.metrics().kafka.checkpoint_restores;
        let assigned: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        for (name, partition) in assigned {
            let Some(topic) = self.streams.iter().position(|t| t.name == name) else { continue };
            if self.find(&name, partition).is_some() {
                continue;
            }
            let committed = committed
                .find_partition(&name, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(-1);
            let stream = &self.streams[topic];
            let mut pipeline = new_pipeline(stream, &self.settings);
            let mut start = None;
            let mut marks = Vec::new();
            match self.store.load(&name, partition, pipeline.engine_mut()) {
                Ok(Some(resumed)) if resumed.offset >= committed => {
                    info!(
                        topic = %name, partition, offset = resumed.offset, rules = resumed.report.rules,
                        changed_rules = resumed.report.dropped, "Restored the partition's state from its checkpoint"
                    );
                    restores.with_label_values(&["restored"]).inc();
                    start = Some(resumed.offset);
                    marks = resumed.marks;
                }
                Ok(Some(resumed)) => {
                    warn!(
                        topic = %name, partition, checkpoint = resumed.offset, committed,
                        "The checkpoint is older than the group's committed offset (another replica went on \
                         without sharing it); the partition starts with empty state"
                    );
                    restores.with_label_values(&["stale"]).inc();
                    pipeline = new_pipeline(stream, &self.settings);
                }
                Ok(None) => {
                    restores.with_label_values(&["missing"]).inc();
                }
                Err(err) => {
                    error!(%err, "Could not restore a checkpoint; the partition starts with empty state");
                    restores.with_label_values(&["failed"]).inc();
                }
            }
            if let Some(offset) = start {
                if let Err(err) = tpl.set_partition_offset(&name, partition, Offset::Offset(offset)) {
                    warn!(%err, "Could not set the start offset");
                }
            }
            info!(topic = %name, partition, "Partition assigned");
            let merge = stream.rekeyed.then(|| {
                let now = wall_now();
                let mut merge = Merge::new(MERGE_IDLE_TIMEOUT, merge::DEFAULT_MAX_BYTES);
                for (topic, p) in &self.source_partitions {
                    merge.expect(topic, *p, now);
                }
                merge
            });
            self.partitions.push(Partition {
                topic,
                partition,
                pipeline,
                exported: Exported::default(),
                next: start,
                saved: start,
                marks,
                merge,
                last_message: Instant::now(),
                paused: false,
                name: source_name(&name, partition),
            });
        }
    }

    /// Lets partitions go: their work is flushed, checkpointed and
    /// committed first unless the assignment is already lost.
    fn release(&mut self, tpl: &TopicPartitionList, handover: Handover) {
        if handover == Handover::Commit {
            // The next owner reads the committed offsets when its
            // assignment starts: wait for the commit (bounded, in case the
            // broker is gone; the checkpoints cover the offsets).
            let ticket = self.checkpoint_and_commit();
            if let (Some(ticket), Some(committer)) = (ticket, &self.committer) {
                if !committer.wait(ticket, BROKER_WAIT) {
                    warn!("The commit of released partitions is not confirmed yet");
                }
            }
        } else {
            self.sync_log();
        }
        self.export();
        let topics = &self.streams;
        let (gone, kept): (Vec<Partition>, Vec<Partition>) = std::mem::take(&mut self.partitions)
            .into_iter()
            .partition(|p| tpl.find_partition(&topics[p.topic].name, p.partition).is_some());
        self.partitions = kept;
        // Their counters were exported just above.
        for p in gone {
            self.exporter.metrics().forget_source(&p.name);
            info!(topic = %topics[p.topic].name, partition = p.partition, "Partition released");
        }
    }

    fn process(&mut self, message: &BorrowedMessage<'_>, now: Timestamp) {
        let Some(index) = self.find(message.topic(), message.partition()) else { return };
        let Worker { partitions, streams, rekeyer, stage, consumed, newest, .. } = self;
        let part = &mut partitions[index];
        part.next = Some(message.offset() + 1);
        part.last_message = Instant::now();
        let stream = &streams[part.topic];
        let payload = message.payload().unwrap_or_default();
        if stream.rekeyed {
            if let Some(origin) = Origin::of(message) {
                let Some(merge) = &mut part.merge else { return };
                let Some(offset) = origin.offset else {
                    merge.heard(origin.topic, origin.partition, origin.frontier, origin.idle, now);
                    return;
                };
                consumed[part.topic].inc();
                let ts = origin.ts.unwrap_or(origin.frontier);
                let copy = merge.copy(ts, message.offset(), offset, origin.kind, payload);
                let fresh = origin.is_new(offset, &part.marks)
                    && merge.push(origin.topic, origin.partition, origin.frontier, copy, now) == Pushed::Queued;
                if !fresh {
                    self.exporter.metrics().kafka.rekey_duplicates.inc();
                }
                return;
            }
        }
        consumed[part.topic].inc();
        let default_kind = stream.kind.as_deref();
        let result = part.pipeline.feed_or_kind(payload, default_kind);
        // What the source refused (malformed, or from beyond the wall
        // clock's bound) is dead-lettered once, here, and not copied.
        if let (false, Some(rekeyer), Ok(_)) = (stream.rekeyed, rekeyer, &result) {
            rekeyer.copy(message, default_kind, part.pipeline.engine().newest());
        }
        if result.is_ok() {
            *newest = (*newest).max(part.pipeline.engine().newest());
        }
        stage.take_from(&mut part.pipeline, now);
        if let Err(err) = result {
            self.reject(message, &err);
        }
    }

    /// Hands the re-keyed partitions the copies whose turn has come, in
    /// event-time order.
    fn drain_merges(&mut self, now: Timestamp) {
        let Worker { partitions, stage, .. } = self;
        for part in partitions.iter_mut() {
            let Some(merge) = &mut part.merge else { continue };
            while let Some((topic, partition, copy)) = merge.pop(now) {
                rekey::take_mark(topic, partition, copy.origin_offset, &mut part.marks);
                let _ = part.pipeline.feed_or_kind(&copy.payload, copy.kind());
                stage.take_from(&mut part.pipeline, now);
                merge.recycle(copy);
            }
        }
    }

    /// Tells the internal partitions how far each source partition got,
    /// every [`REPORT_EVERY`].
    fn report_frontiers(&mut self) {
        let Some(rekeyer) = &mut self.rekeyer else { return };
        if self.last_report.elapsed() < REPORT_EVERY {
            return;
        }
        self.last_report = Instant::now();
        for part in self.partitions.iter().filter(|p| p.merge.is_none()) {
            let idle = !part.paused && part.last_message.elapsed() >= SOURCE_IDLE;
            let topic = &self.streams[part.topic].name;
            rekeyer.report(topic, part.partition, part.pipeline.engine().newest(), idle);
        }
    }

    /// Watermark alignment (see [`ALIGN_HIGH`]): while the merges in front
    /// of the re-keyed partitions fill up, source partitions running ahead
    /// of the slowest one still delivering are paused, so memory stays
    /// bounded and nothing arrives behind what the merges released.
    fn align(&mut self, consumer: &BaseConsumer<Context>) {
        if self.rekeyer.is_none() {
            return;
        }
        let waiting: usize = self.partitions.iter().filter_map(|p| p.merge.as_ref()).map(Merge::waiting_bytes).sum();
        let delivering = |p: &Partition| p.merge.is_none() && !p.paused && p.last_message.elapsed() < SOURCE_IDLE;
        let slowest = self.partitions.iter().filter(|p| delivering(p)).map(|p| p.pipeline.engine().newest()).min();
        for part in self.partitions.iter_mut().filter(|p| p.merge.is_none()) {
            let ahead = slowest.is_some_and(|s| part.pipeline.engine().newest() > s.saturating_add(ALIGN_DRIFT));
            let pause = match part.paused {
                false => ahead && waiting > ALIGN_HIGH,
                true => ahead && waiting >= ALIGN_LOW,
            };
            if pause == part.paused {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.streams[part.topic].name, part.partition);
            let result = if pause { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
            match result {
                Ok(()) => {
                    part.paused = pause;
                    part.last_message = Instant::now();
                    debug!(partition = part.partition, paused = pause, waiting, "Aligning source partitions");
                }
                Err(err) => warn!(%err, "Could not pause or resume a partition"),
            }
        }
    }

    /// Lends every partition the wall clock for the next batch.
    fn set_wall(&mut self, now: Timestamp) {
        for part in &mut self.partitions {
            part.pipeline.engine_mut().set_wall(now);
        }
    }

    /// Lets the wall clock move quiet partitions, so silence fires while it
    /// lasts. A re-keyed partition takes its time from its source
    /// partitions, and from the wall clock only once all of them are idle
    /// and nothing waits in its merge: a catch-up must not make copies late.
    fn advance_quiet(&mut self, now: Timestamp) {
        let Worker { partitions, stage, .. } = self;
        for part in partitions.iter_mut().filter(|p| p.merge.as_ref().is_none_or(|m| m.quiet(now))) {
            part.pipeline.advance_quiet(now);
            stage.take_from(&mut part.pipeline, now);
        }
    }

    fn reject(&mut self, message: &BorrowedMessage<'_>, err: &DecodeError) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let place = format_args!("{topic}/{partition}@{offset}");
        self.rejected.record(&place, err.reason, &err.detail);
        let Some(dead) = &self.dead_letters else { return };
        let partition_text = partition.to_string();
        let offset_text = offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "vigil-error-reason", value: Some(err.reason.as_str()) })
            .insert(Header { key: "vigil-error-detail", value: Some(err.detail.as_str()) })
            .insert(Header { key: rekey::SOURCE_TOPIC, value: Some(topic) })
            .insert(Header { key: rekey::SOURCE_PARTITION, value: Some(partition_text.as_str()) })
            .insert(Header { key: rekey::SOURCE_OFFSET, value: Some(offset_text.as_str()) });
        let key = message.key().unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        let kafka = &self.exporter.metrics().kafka;
        match dead.producer.send(&dead.topic, key, payload, Some(headers)) {
            Ok(()) => kafka.dead_lettered.with_label_values(&[err.reason.as_str()]).inc(),
            Err(err) => {
                kafka.dead_letter_failures.inc();
                warn!(%err, topic, partition, offset, "Could not queue a dead letter");
            }
        }
    }

    /// Writes queued alerts to the alert log, waits for the disk, then
    /// hands them on. While the log cannot be written nothing is handed on
    /// or committed, and vigil reports not ready.
    fn sync_log(&mut self) -> bool {
        let Worker { stage, out, log_ok, .. } = self;
        let released = match stage.sync() {
            Ok(released) => released,
            Err(err) => {
                if *log_ok {
                    error!(%err, "Writing the alert log failed; holding alerts and offsets until it works again");
                }
                *log_ok = false;
                return false;
            }
        };
        *log_ok = true;
        for alert in released {
            let Some(out) = out else { continue };
            if out.blocking_send(alert).is_err() {
                debug!("The output task is gone");
            }
        }
        true
    }

    /// Checkpoints every partition that moved and submits its offset for
    /// commit: the alert log is synced and dead letters confirmed first.
    /// Returns the commit to wait for, if there is one.
    fn checkpoint_and_commit(&mut self) -> Option<Ticket> {
        self.last_checkpoint = Instant::now();
        if !self.sync_log() {
            return None;
        }
        // What the offsets cover must be on the broker before they are.
        let producers = [
            self.dead_letters.as_ref().map(|d| (&d.producer, "Dead letters")),
            self.rekeyer.as_ref().map(|r| (&r.producer, "Re-keyed events")),
        ];
        for (producer, what) in producers.into_iter().flatten() {
            if producer.in_flight() > 0 && !producer.flush(BROKER_WAIT) {
                warn!("{what} are not confirmed yet; offsets are committed later");
                return None;
            }
        }
        let started = Instant::now();
        let mut offsets = Offsets::new();
        let mut bytes = 0;
        for part in &mut self.partitions {
            // A re-keyed partition commits no further than its oldest
            // waiting copy: after a crash it is read again from there.
            let waiting = part.merge.as_ref().and_then(Merge::oldest_offset);
            let next = part.next.map(|n| waiting.map_or(n, |w| w.min(n)));
            let Some(next) = next.filter(|n| Some(*n) != part.saved) else { continue };
            let topic = &self.streams[part.topic].name;
            match self.store.save(topic, part.partition, next, part.pipeline.engine(), &part.marks) {
                Ok(size) => bytes += size,
                Err(err) => {
                    // Committing without the checkpoint would let a restart
                    // resume after events whose state is lost.
                    error!(%err, "Writing a checkpoint failed; the partition's offset is not committed");
                    continue;
                }
            }
            part.saved = Some(next);
            offsets.insert((topic.clone(), part.partition), next);
        }
        if offsets.is_empty() {
            return None;
        }
        debug!(partitions = offsets.len(), bytes, "Checkpointed; committing");
        let kafka = &self.exporter.metrics().kafka;
        kafka.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
        kafka.checkpoint_bytes.set(bytes as i64);
        self.committer.as_ref().map(|committer| committer.submit(offsets))
    }

    /// Commits again what a failed commit held.
    fn recommit_after_failure(&mut self) {
        if self.committer.as_ref().is_some_and(Committer::take_failure) {
            for part in &mut self.partitions {
                part.saved = None;
            }
        }
    }

    /// Swaps in reloaded rules on every stream and partition. Refused when
    /// the rules would need other re-keying topics: those are created and
    /// subscribed at start-up.
    fn reload(&mut self, source: &KafkaSource, rules: RuleSet) -> Result<ReloadReport, String> {
        let plan = Plan::new(&rules, source);
        let now: Vec<&str> = self.streams.iter().map(|s| s.name.as_str()).collect();
        let next: Vec<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
        if now != next {
            return Err(format!(
                "the new rules need other topics ({next:?} instead of {now:?}): their group_by changes re-keying; \
                 restart vigil to apply them"
            ));
        }
        warn_misaligned(&plan);
        if let Some(rekeyer) = &mut self.rekeyer {
            rekeyer.retarget(&rules, plan.targets);
        }
        self.streams = plan.streams;
        for partition in &mut self.partitions {
            partition.pipeline.reload(&self.streams[partition.topic].rules);
        }
        let report = ReloadReport::between(&self.rules, &rules);
        self.rules = rules;
        self.export();
        Ok(report)
    }

    fn export(&mut self) {
        self.last_export = Instant::now();
        self.exporter.export(self.partitions.iter_mut().map(|p| (&p.pipeline, &mut p.exported)));
        let now = wall_now();
        for part in &self.partitions {
            self.exporter.metrics().source_lag(&part.name, part.pipeline.engine().newest(), now);
        }
        self.lateness.observe(self.partitions.iter().map(|p| (p.name.as_str(), p.pipeline.engine().stats().late)));
    }
}

/// Where the loop's alerts go: the alert log first (the notifiers read it),
/// then the console output task.
pub struct AlertOutput {
    pub log: AlertLog,
    pub console: mpsc::Sender<Alert>,
}

/// How the daemon steers the loop: readiness out; the stop flag and
/// reloaded rules in.
pub struct Control<'a> {
    pub ready: Arc<AtomicBool>,
    pub stop: &'a AtomicBool,
    pub reloads: mpsc::Receiver<Reload>,
}

/// A partition as the source label and the late-event warning name it.
fn source_name(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

fn wall_now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}

fn new_pipeline(stream: &Stream, settings: &Settings) -> Pipeline<Activity> {
    let mut pipeline =
        Pipeline::with_time(&stream.rules, settings.time(), settings.max_event_bytes).watched(Activity::default());
    pipeline.engine_mut().sample_rule_time(metrics::sampling());
    if stream.rekeyed {
        pipeline.feeds_on_copies();
    }
    pipeline
}

fn warn_misaligned(plan: &Plan) {
    if !plan.unkeyed.is_empty() {
        warn!(
            topics = ?plan.unkeyed,
            "These topics declare no `key:`: vigil cannot tell whether all events of a group share a partition, \
             and with several partitions a stateful rule sees only part of a group's events. Declare the key the \
             producers use (`topics: [{{name: …, key: [user]}}]`) and, for rules grouped by other fields, \
             configure `rekey` (docs/operations.md, \"Keying\")"
        );
    }
    if !plan.misaligned.is_empty() {
        warn!(
            rules = ?plan.misaligned,
            "These rules group by fields the topics are not keyed by: each partition sees only part of a \
             group's events. Configure `rekey` (docs/operations.md, \"Keying\")"
        );
    }
}

/// Runs the Kafka source until `stop` is set; then checkpoints, commits
/// and leaves the group.
pub fn run(
    settings: &Settings,
    source: &KafkaSource,
    rules: RuleSet,
    metrics: Arc<Metrics>,
    output: AlertOutput,
    control: Control<'_>,
) -> Result<()> {
    let AlertOutput { log, console: out } = output;
    let Control { ready, stop, mut reloads } = control;
    let store = Store::new(settings.checkpoint_dir().join(&source.group_id));
    let dead_letters = match &source.dead_letter_topic {
        Some(topic) => Some(DeadLetters {
            topic: topic.clone(),
            producer: Producer::new(
                &source.client,
                Deliveries { sent: None, failed: metrics.kafka.dead_letter_failures.clone() },
            )?,
        }),
        None => None,
    };
    if dead_letters.is_some() {
        for reason in crate::event::Reason::ALL {
            metrics.kafka.dead_lettered.with_label_values(&[reason.as_str()]);
        }
    }
    let plan = Plan::new(&rules, source);
    warn_misaligned(&plan);
    let mut rekeyer = match &source.rekey {
        Some(rekey) if !plan.targets.is_empty() => {
            let internal: Vec<&str> = plan.targets.iter().map(|t| t.topic.as_str()).collect();
            rekey::create_topics(source, rekey, &internal)?;
            let failed = metrics.kafka.rekey_failures.clone();
            let producer = Producer::new(&source.client, Deliveries { sent: None, failed })?;
            let sent = internal.iter().map(|t| metrics.kafka.rekeyed.with_label_values(&[t])).collect();
            Some(Rekeyer::new(producer, &rules, plan.targets.clone(), sent, settings.max_event_bytes))
        }
        _ => None,
    };
    let mut source_partitions = Vec::new();
    if let Some(rekeyer) = &mut rekeyer {
        rekeyer.learn_partitions();
        for topic in &source.topics {
            match rekeyer.producer.partitions(&topic.name) {
                Ok(n) => source_partitions.extend((0..n).map(|p| (topic.name.clone(), p))),
                Err(err) => warn!(%err, topic = %topic.name, "Could not read a source topic's partition count"),
            }
        }
    }
    let streams = plan.streams;
    let consumed = streams.iter().map(|t| metrics.kafka.messages.with_label_values(&[&t.name])).collect();
    let topics: Vec<String> = streams.iter().map(|t| t.name.clone()).collect();
    let worker = Worker {
        settings: settings.clone(),
        rules,
        streams,
        rekeyer,
        partitions: Vec::new(),
        store,
        stage: Stage::new(log, metrics.alerts_replayed.clone()),
        out: Some(out),
        dead_letters,
        exporter: Exporter::new(metrics.clone()),
        consumed,
        rejected: Rejections::default(),
        newest: Timestamp::MIN,
        last_checkpoint: Instant::now(),
        last_export: Instant::now(),
        log_ok: true,
        committer: None,
        source_partitions,
        last_report: Instant::now(),
        lateness: Lateness::default(),
    };
    let shared = Arc::new(Shared {
        worker: Mutex::new(worker),
        generation: AtomicU64::new(0),
        ready,
        connected: AtomicBool::new(false),
        metrics: metrics.clone(),
    });

    let mut config = crate::kafka::client_config(&source.client)?;
    config.set("group.id", &source.group_id);
    config.set("enable.auto.commit", "false");
    config.set("enable.auto.offset.store", "false");
    // A short fetch wait: the broker answers within 10 ms even when little
    // is new, so an alert does not wait for librdkafka's 500 ms default.
    // A short queue backoff: when vigil falls behind the fetcher (catching
    // up), librdkafka pauses fetching until its local queue drains and
    // then, by default, for another second; vigil would idle that long
    // (measured: 137k instead of 500k events/s, docs/benchmarks.md).
    let defaults = [
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", "5000"),
        ("client.id", "vigil"),
        ("fetch.wait.max.ms", "10"),
        ("fetch.queue.backoff.ms", "10"),
    ];
    for (key, value) in defaults {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    let consumer: Arc<BaseConsumer<Context>> = Arc::new(
        config.create_with_context(Context { shared: shared.clone() }).context("creating the Kafka consumer")?,
    );
    let committer = Committer::start(consumer.clone(), metrics.kafka.commit_seconds.clone())
        .context("starting the offset commit thread")?;
    shared.worker().committer = Some(committer);
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("subscribing to the topics")?;
    info!(brokers = %source.client.brokers, topics = ?topics, group = %source.group_id, "Consuming from Kafka");

    let interval = Duration::from_micros(settings.checkpoint_interval.0.max(0) as u64);
    let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let mut generation = shared.generation.load(Ordering::SeqCst);
        let mut timeout = POLL;
        while batch.len() < BATCH {
            let polled = consumer.poll(timeout);
            timeout = Duration::ZERO;
            let now_generation = shared.generation.load(Ordering::SeqCst);
            if now_generation != generation {
                // Fetched before the rebalance: librdkafka delivers these
                // again from the offsets just assigned.
                batch.clear();
                generation = now_generation;
            }
            match polled {
                Some(Ok(message)) => batch.push(message),
                Some(Err(err)) => {
                    warn!(%err, "Kafka consumer error");
                    break;
                }
                None => break,
            }
        }
        if !batch.is_empty() {
            shared.set_connected(true);
        }
        let mut worker = shared.worker();
        while let Ok(reload) = reloads.try_recv() {
            let _ = reload.done.send(worker.reload(source, reload.rules));
        }
        if !batch.is_empty() {
            let started = Instant::now();
            let now = Timestamp(chrono::Utc::now().timestamp_micros());
            worker.newest = Timestamp::MIN;
            worker.set_wall(now);
            for message in batch.drain(..) {
                worker.process(&message, now);
            }
            worker.drain_merges(now);
            metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
            if worker.newest > Timestamp::MIN {
                metrics.event_lag_seconds.observe(now.0.saturating_sub(worker.newest.0).max(0) as f64 / 1e6);
            }
        }
        let now = wall_now();
        worker.drain_merges(now);
        worker.report_frontiers();
        worker.align(&consumer);
        worker.advance_quiet(now);
        if worker.stage.has_pending() {
            worker.sync_log();
        }
        worker.recommit_after_failure();
        if worker.last_checkpoint.elapsed() >= interval {
            worker.checkpoint_and_commit();
        }
        if worker.last_export.elapsed() >= EXPORT_EVERY {
            worker.export();
        }
        let ready = shared.connected.load(Ordering::Relaxed) && worker.log_ok;
        shared.ready.store(ready, Ordering::Relaxed);
    }

    info!("Stopping the Kafka source: checkpointing and committing");
    {
        let mut worker = shared.worker();
        worker.checkpoint_and_commit();
        worker.export();
        if let Some(committer) = worker.committer.take() {
            committer.stop(BROKER_WAIT);
        }
        worker.out = None;
    }
    consumer.unsubscribe();
    Ok(())
}
