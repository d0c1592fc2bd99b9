//! One notifier's delivery loop: read the alert log from where the last
//! confirmed delivery ended, keep the alerts routed here, send them in
//! order (one by one, held together by a route's rate limit, or as a
//! digest), retry with backoff and jitter, and persist the new position only
//! after the receiver accepted.
//!
//! Each notifier has its own loop and position, so one that is down falls
//! behind alone: detection and the other notifiers go on. Delivery is at
//! least once; the position is saved right after each accepted message, so
//! only a crash between the two sends a message again, with the same
//! webhook id or PagerDuty dedup key for the receiver to drop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::message::{Kind, Message, RuleCount, LISTED};
use super::redact::Redactor;
use super::route::{Bucket, RouteId, Router};
use super::sink::Failure;
use super::sink::Sink;
use crate::alert::Alert;
use crate::config::DeliveryPolicy;
use crate::state::alert_log::{LogReader, Lost, Outbox, Position};
use crate::state::cursor::{Cursor, CursorError, CursorFile};
use crate::telemetry::metrics::Metrics;
use crate::time::Timestamp;

/// What the loop is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    /// The input ended: deliver what is in the log (a digest goes out
    /// early), then end.
    Drain,
    /// Shutting down: deliver what is in the log, but a digest keeps its
    /// alerts for its due time after the restart.
    Finish,
    /// End after the message in flight.
    Stop,
}

/// Alerts kept in memory ahead of delivery; past this they are counted and
/// read again from the log when their turn comes.
const STORED: usize = 1000;
/// Lines read from the log in one go, so that a long backlog does not hold
/// the task (and its runtime thread) for long.
const FILL_LINES: usize = 10_000;
/// The most alerts one held-back or digest message covers: reading them
/// (about 5 µs each) holds the task, so a larger storm takes a few messages.
const MAX_BATCH: u64 = 100_000;
/// The most alerts a record sink (file, Kafka) takes in one send.
const RECORDS: usize = 512;

struct Pending {
    alert: Alert,
    /// The log position after this alert.
    end: Position,
    route: RouteId,
}

/// Why a saved position cannot be one in `outbox`'s log, if it cannot:
/// the log was wiped and started again (another id), or restored from an
/// older copy (the position is past its end).
fn stale(cursor: &Cursor, outbox: &Outbox) -> Option<&'static str> {
    if cursor.log.as_deref().is_some_and(|id| id != outbox.id()) {
        return Some("The alert log was replaced");
    }
    (cursor.delivered > outbox.end()).then_some("The alert log is shorter than this notifier had read")
}

/// Open incidents a notifier remembers; past this the one due first is
/// resolved early.
const MAX_OPEN_INCIDENTS: usize = 10_000;

pub struct Worker {
    name: String,
    sink: Sink,
    digest: Option<Duration>,
    router: Arc<Router>,
    redactor: Redactor,
    policy: DeliveryPolicy,
    outbox: Arc<Outbox>,
    reader: LogReader,
    cursor: Cursor,
    saved: Cursor,
    cursor_file: CursorFile,
    pending: VecDeque<Pending>,
    /// Where reading must resume once `pending` drains, when alerts past
    /// the cap were only counted (`unstored` of them).
    rewind: Option<Position>,
    unstored: u64,
    buckets: HashMap<RouteId, Bucket>,
    /// The message being delivered: its alert count and oldest alert time.
    in_flight: Option<(u64, Timestamp)>,
    metrics: Arc<Metrics>,
    rng: rand_chacha::ChaCha8Rng,
    line: Vec<u8>,
}

pub struct WorkerSetup {
    pub name: String,
    pub sink: Sink,
    pub digest: Option<Duration>,
    pub router: Arc<Router>,
    pub redactor: Redactor,
    pub policy: DeliveryPolicy,
    pub outbox: Arc<Outbox>,
    pub cursor_dir: PathBuf,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Reads the saved position; a notifier without one starts at the end
    /// of the log (a new notifier is not sent the history).
    pub fn new(setup: WorkerSetup) -> std::io::Result<Worker> {
        let file = CursorFile::new(&setup.cursor_dir, &setup.name)?;
        let saved = match file.read() {
            Ok(saved) => saved,
            Err(CursorError::Io(err)) => return Err(err),
            Err(CursorError::Unreadable(err)) => {
                warn!(notifier = %setup.name, %err, path = %file.path().display(),
                    "Unreadable delivery position; starting at the end of the alert log");
                None
            }
        };
        let fresh = saved.is_none();
        let mut cursor = saved.unwrap_or(Cursor {
            delivered: setup.outbox.end(),
            log: None,
            next_digest: None,
            resolves: BTreeMap::new(),
        });
        if let Some(why) = stale(&cursor, &setup.outbox) {
            let start = setup.outbox.start();
            warn!(notifier = %setup.name, saved = ?cursor.delivered, from = ?start, "{why}: the delivery position \
                saved does not belong to this alert log; delivering from the start of the log (a receiver may \
                get some alerts again, with the same ids)");
            cursor.delivered = start;
        }
        let moved = cursor.log.as_deref() != Some(setup.outbox.id());
        cursor.log = Some(setup.outbox.id().to_owned());
        if let (Some(every), None) = (setup.digest, cursor.next_digest) {
            cursor.next_digest = Some(chrono::Utc::now().timestamp() + every.as_secs().max(1) as i64);
        }
        let seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        let mut worker = Worker {
            reader: LogReader::new(setup.outbox.clone(), cursor.delivered),
            name: setup.name,
            sink: setup.sink,
            digest: setup.digest,
            router: setup.router,
            redactor: setup.redactor,
            policy: setup.policy,
            outbox: setup.outbox,
            cursor,
            saved: Cursor::default(),
            cursor_file: file,
            pending: VecDeque::new(),
            rewind: None,
            unstored: 0,
            buckets: HashMap::new(),
            in_flight: None,
            metrics: setup.metrics,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            line: Vec::new(),
        };
        if fresh || moved {
            worker.save();
        } else {
            worker.saved = worker.cursor.clone();
        }
        // Every series of this notifier exists from the start, at zero, so
        // a dashboard or an alert on failures has something to show.
        let m = &worker.metrics.notify;
        let name = [worker.name.as_str()];
        for result in ["sent", "retried", "failed"] {
            m.notifications.with_label_values(&[&worker.name, result]);
        }
        m.alerts_delivered.with_label_values(&name);
        m.alerts_held_back.with_label_values(&name);
        m.outbox_dropped.with_label_values(&name);
        m.outbox_pending.with_label_values(&name);
        m.outbox_oldest_seconds.with_label_values(&name);
        m.latency_seconds.with_label_values(&name);
        Ok(worker)
    }

    pub async fn run(mut self, mut mode: watch::Receiver<Mode>) {
        let mut end = self.outbox.watch_end();
        loop {
            let more = self.fill();
            if self.pending.is_empty() && self.rewind.is_some() {
                self.rewind_reader();
                continue;
            }
            self.report();
            let current = *mode.borrow_and_update();
            if current == Mode::Stop || (current == Mode::Finish && self.digest.is_some() && !self.digest_due()) {
                break;
            }
            if let Some(fingerprint) = self.due_resolve() {
                let message = Message::resolve(&fingerprint);
                match self.deliver(&message, &mut mode).await {
                    Outcome::Sent | Outcome::Refused => {
                        self.cursor.resolves.remove(&fingerprint);
                        self.save();
                    }
                    Outcome::Stopped => break,
                }
                continue;
            }
            if self.pending.is_empty() {
                self.save();
                if more {
                    tokio::task::yield_now().await;
                    continue;
                }
                if current != Mode::Run {
                    break;
                }
                tokio::select! {
                    _ = end.changed() => {}
                    _ = mode.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let Some((message, delivered, held)) = self.next_message(&mut mode).await else { continue };
            let oldest = message.alerts.iter().map(|a| a.raised_at.unwrap_or(a.ts)).min();
            self.in_flight = Some((message.total(), oldest.unwrap_or_default()));
            let outcome = self.deliver(&message, &mut mode).await;
            self.in_flight = None;
            match outcome {
                Outcome::Sent | Outcome::Refused => {
                    if held > 0 {
                        self.metrics.notify.alerts_held_back.with_label_values(&[&self.name]).inc_by(held);
                    }
                    self.cursor.delivered = delivered;
                    if let (Some(every), Kind::Digest { .. }) = (self.digest, message.kind) {
                        self.schedule_digest(every);
                    }
                    if let (Some(after), Kind::Single) = (self.sink.resolves_after(), message.kind) {
                        self.open_incident(&message, after);
                    }
                    self.save();
                }
                Outcome::Stopped => break,
            }
        }
        self.save();
        self.report();
    }

    /// Reads what the log holds past the reader into `pending` (or, past
    /// its cap, counts it), [`FILL_LINES`] lines at most; true if it
    /// stopped there with more to read.
    fn fill(&mut self) -> bool {
        let mut read = 0;
        while read < FILL_LINES {
            let before = self.reader.position();
            match self.reader.next_line(&mut self.line) {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => {
                    warn!(notifier = %self.name, %err, "Reading the alert log failed; retrying");
                    break;
                }
            }
            read += 1;
            let end = self.reader.position();
            let routed = match serde_json::from_slice::<Alert>(&self.line) {
                Ok(alert) => self.router.route_for(&alert, &self.name).map(|route| (alert, route)),
                Err(err) => {
                    warn!(notifier = %self.name, %err, "Skipping an unreadable alert log line");
                    None
                }
            };
            match routed {
                None if self.pending.is_empty() && self.rewind.is_none() => self.cursor.delivered = end,
                None => {}
                Some((alert, route)) if self.pending.len() < STORED && self.rewind.is_none() => {
                    self.pending.push_back(Pending { alert, end, route });
                }
                Some(_) => {
                    self.rewind.get_or_insert(before);
                    self.unstored += 1;
                }
            }
        }
        self.report_lost();
        read == FILL_LINES
    }

    /// Reports alerts the log's size limit deleted before this notifier
    /// read them.
    fn report_lost(&mut self) {
        let lost = self.reader.take_lost();
        if lost == Lost::default() {
            return;
        }
        self.metrics.notify.outbox_dropped.with_label_values(&[&self.name]).inc_by(lost.alerts);
        error!(notifier = %self.name, lost = lost.alerts, uncounted_segments = lost.uncounted_segments,
            "The alert log reached its size limit (state.alert_log.max_bytes): alerts this notifier had not \
             delivered were deleted; they are not sent");
    }

    fn rewind_reader(&mut self) {
        if let Some(at) = self.rewind.take() {
            self.reader = LogReader::new(self.outbox.clone(), at);
            self.unstored = 0;
        }
    }

    /// The next message, its end position and how many alerts a rate
    /// limit held back in it; `None` to look again (time passed, mode
    /// changed).
    async fn next_message(&mut self, mode: &mut watch::Receiver<Mode>) -> Option<(Message, Position, u64)> {
        if let Some(every) = self.digest {
            if !self.digest_due() && *mode.borrow() == Mode::Run {
                let due = self.cursor.next_digest.unwrap_or_default();
                let wait = Duration::from_secs((due - chrono::Utc::now().timestamp()).max(0) as u64);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = mode.changed() => {}
                }
                return None;
            }
            let (batch, end) = self.gather(None);
            return Some((batch.into_message(Kind::Digest { every }, String::new()), end, 0));
        }
        let route = self.pending.front()?.route;
        let limit = if self.sink.batches() { self.router.limit(route) } else { None };
        let over_limit = limit.and_then(|limit| {
            let bucket = self.buckets.entry(route).or_insert_with(|| Bucket::new(limit, Instant::now()));
            bucket.take(Instant::now()).err()
        });
        let Some(wait) = over_limit else {
            if !self.sink.batches() {
                return self.records(route).map(|(message, end)| (message, end, 0));
            }
            let pending = self.pending.pop_front()?;
            let mut alert = pending.alert;
            self.redactor.apply(&mut alert);
            return Some((Message::single(alert), pending.end, 0));
        };
        // Everything of this route that arrives meanwhile goes out together
        // when the limit allows the next message.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = mode.wait_for(|m| *m == Mode::Stop) => return None,
        }
        if let Some(bucket) = self.buckets.get_mut(&route) {
            let _ = bucket.take(Instant::now());
        }
        let (batch, end) = self.gather(Some(route));
        let count = batch.count;
        Some((batch.into_message(Kind::Held, self.router.describe(route)), end, count))
    }

    /// Up to [`RECORDS`] pending alerts of `route` from the front, for a
    /// sink that stores each on its own: one write and one saved position
    /// for all of them.
    fn records(&mut self, route: RouteId) -> Option<(Message, Position)> {
        let mut alerts = Vec::new();
        let mut end = None;
        while alerts.len() < RECORDS && self.pending.front().is_some_and(|p| p.route == route) {
            let pending = self.pending.pop_front().expect("a front");
            let mut alert = pending.alert;
            self.redactor.apply(&mut alert);
            alerts.push(alert);
            end = Some(pending.end);
        }
        Some((Message::records(alerts), end?))
    }

    /// Takes the pending alerts of `route` (all routes: `None`) from the
    /// front, then reads on through the log for more, listing the first
    /// [`LISTED`] and counting the rest by rule. Stops at an alert of
    /// another route, which becomes the next pending one.
    fn gather(&mut self, route: Option<RouteId>) -> (Gathered, Position) {
        let mut batch = Gathered::default();
        let mut end = self.cursor.delivered;
        while let Some(front) = self.pending.front() {
            if route.is_some_and(|r| r != front.route) {
                return (batch, end);
            }
            let pending = self.pending.pop_front().expect("a front");
            end = pending.end;
            batch.add(pending.alert, &self.redactor);
        }
        self.rewind_reader();
        while batch.count < MAX_BATCH {
            match self.reader.next_line(&mut self.line) {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
            let at = self.reader.position();
            let Ok(alert) = serde_json::from_slice::<Alert>(&self.line) else {
                end = at;
                continue;
            };
            match self.router.route_for(&alert, &self.name) {
                None => end = at,
                Some(r) if route.is_none_or(|want| want == r) => {
                    end = at;
                    batch.add(alert, &self.redactor);
                }
                Some(other) => {
                    self.pending.push_back(Pending { alert, end: at, route: other });
                    break;
                }
            }
        }
        self.report_lost();
        (batch, end)
    }

    fn digest_due(&self) -> bool {
        self.cursor.next_digest.is_none_or(|due| chrono::Utc::now().timestamp() >= due)
    }

    /// An incident that has seen no alert for `resolve_after` and is due.
    fn due_resolve(&self) -> Option<String> {
        let now = chrono::Utc::now().timestamp();
        self.cursor.resolves.iter().find(|(_, due)| **due <= now).map(|(f, _)| f.clone())
    }

    /// Notes (or pushes back) the resolution of the alert's incident; an
    /// alert whose incident ended resolved it already.
    fn open_incident(&mut self, message: &Message, after: Duration) {
        let Some(alert) = message.alerts.first() else { return };
        if alert.status == crate::alert::Status::Resolved {
            self.cursor.resolves.remove(&alert.fingerprint);
            return;
        }
        let due = chrono::Utc::now().timestamp() + after.as_secs().max(1) as i64;
        self.cursor.resolves.insert(alert.fingerprint.clone(), due);
        if self.cursor.resolves.len() > MAX_OPEN_INCIDENTS {
            if let Some(first) = self.cursor.resolves.iter().min_by_key(|(_, due)| **due).map(|(f, _)| f.clone()) {
                self.cursor.resolves.insert(first, 0);
            }
        }
    }

    fn schedule_digest(&mut self, every: Duration) {
        let now = chrono::Utc::now().timestamp();
        let every = every.as_secs().max(1) as i64;
        let mut due = self.cursor.next_digest.unwrap_or(now);
        while due <= now {
            due += every;
        }
        self.cursor.next_digest = Some(due);
    }

    async fn deliver(&mut self, message: &Message, mode: &mut watch::Receiver<Mode>) -> Outcome {
        let mut backoff = self.policy.initial_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let timeout = self.policy.timeout;
            let result =
                match tokio::time::timeout(timeout + Duration::from_secs(1), self.sink.send(message, timeout)).await {
                    Ok(result) => result,
                    Err(_) => Err(Failure::Retry(format!("no answer within {}", humantime::format_duration(timeout)))),
                };
            let results = &self.metrics.notify.notifications;
            match result {
                Ok(()) => {
                    results.with_label_values(&[&self.name, "sent"]).inc();
                    self.delivered(message);
                    if attempt > 1 {
                        info!(notifier = %self.name, id = %message.id, attempt, "Delivered after retrying");
                    }
                    return Outcome::Sent;
                }
                Err(Failure::Permanent(reason)) => {
                    results.with_label_values(&[&self.name, "failed"]).inc();
                    error!(notifier = %self.name, id = %message.id, alerts = message.total(), %reason,
                        "The receiver refused the notification; it is not retried (the alerts stay in the alert log)");
                    return Outcome::Refused;
                }
                Err(Failure::Retry(reason)) => {
                    results.with_label_values(&[&self.name, "retried"]).inc();
                    let wait = self.jitter(backoff);
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        warn!(notifier = %self.name, id = %message.id, attempt, %reason,
                            retry_in = %humantime::format_duration(wait), "Delivery failed; retrying");
                    } else {
                        debug!(notifier = %self.name, id = %message.id, attempt, %reason, "Delivery failed; retrying");
                    }
                    if *mode.borrow() == Mode::Stop {
                        return Outcome::Stopped;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = mode.wait_for(|m| *m == Mode::Stop) => return Outcome::Stopped,
                    }
                    self.fill();
                    self.report();
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                }
            }
        }
    }

    fn jitter(&mut self, backoff: Duration) -> Duration {
        jittered(backoff, self.rng.random::<f64>())
    }

    fn delivered(&self, message: &Message) {
        let m = &self.metrics.notify;
        m.alerts_delivered.with_label_values(&[&self.name]).inc_by(message.total());
        let now = chrono::Utc::now().timestamp_micros();
        let latency = m.latency_seconds.with_label_values(&[&self.name]);
        for alert in &message.alerts {
            if let Some(raised) = alert.raised_at {
                latency.observe(((now - raised.0) as f64 / 1e6).max(0.0));
            }
        }
    }

    /// Undelivered alerts (in flight, pending, counted past the cap) and
    /// the age of the oldest.
    fn report(&self) {
        let m = &self.metrics.notify;
        let in_flight = self.in_flight.map_or(0, |(count, _)| count);
        let pending = in_flight + self.pending.len() as u64 + self.unstored;
        m.outbox_pending.with_label_values(&[&self.name]).set(pending as i64);
        let oldest = self
            .in_flight
            .map(|(_, oldest)| oldest)
            .or_else(|| self.pending.front().map(|p| p.alert.raised_at.unwrap_or(p.alert.ts)));
        let age = oldest.map_or(0.0, |since| ((chrono::Utc::now().timestamp_micros() - since.0) as f64 / 1e6).max(0.0));
        m.outbox_oldest_seconds.with_label_values(&[&self.name]).set(age);
    }

    /// Persists the position (write, fsync, rename) if it moved.
    fn save(&mut self) {
        if self.cursor == self.saved {
            return;
        }
        let result = self.cursor_file.write(&self.cursor);
        match result {
            Ok(()) => self.saved = self.cursor.clone(),
            Err(err) => {
                warn!(notifier = %self.name, %err, path = %self.cursor_file.path().display(),
                    "Could not save the delivery position; a restart may send some alerts again");
            }
        }
    }
}

/// Between half the backoff and all of it (`unit` in [0, 1)), so that
/// notifiers failing together do not retry in step.
fn jittered(backoff: Duration, unit: f64) -> Duration {
    let half = backoff / 2;
    half + Duration::from_secs_f64(unit.clamp(0.0, 1.0) * half.as_secs_f64())
}

/// The alerts of one batched message: the first [`LISTED`] in full, the
/// rest counted by rule.
#[derive(Default)]
struct Gathered {
    listed: Vec<Alert>,
    unlisted: BTreeMap<Arc<str>, RuleCount>,
    count: u64,
}

impl Gathered {
    fn into_message(self, kind: Kind, route: String) -> Message {
        Message::batch(kind, route, self.listed, self.unlisted.into_values().collect())
    }

    fn add(&mut self, mut alert: Alert, redactor: &Redactor) {
        self.count += 1;
        if self.listed.len() < LISTED {
            redactor.apply(&mut alert);
            self.listed.push(alert);
            return;
        }
        let entry = self.unlisted.entry(alert.rule.clone()).or_insert_with(|| RuleCount {
            rule: alert.rule.clone(),
            title: alert.title.clone(),
            severity: alert.severity,
            count: 0,
        });
        entry.count += 1;
        entry.severity = entry.severity.max(alert.severity);
    }
}

enum Outcome {
    Sent,
    Refused,
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_of_another_log_or_past_its_end_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = crate::state::alert_log::AlertLog::open(dir.path(), Default::default()).unwrap();
        log.append(&crate::notify::message::tests::alert("a1", crate::rules::Severity::Critical, "alice"));
        log.sync().unwrap();
        let outbox = log.outbox();
        let at = |delivered, log: Option<&str>| Cursor { delivered, log: log.map(str::to_owned), ..Cursor::default() };
        let id = Some(outbox.id());
        assert_eq!(stale(&at(outbox.end(), id), &outbox), None);
        assert_eq!(stale(&at(outbox.start(), None), &outbox), None, "a position saved before logs had ids");
        assert!(stale(&at(outbox.end(), Some("another")), &outbox).is_some());
        let past = Position { segment: outbox.end().segment, offset: outbox.end().offset + 1 };
        assert!(stale(&at(past, id), &outbox).is_some());
        assert!(stale(&at(Position { segment: 9, offset: 0 }, id), &outbox).is_some());
    }

    #[test]
    fn backoff_is_jittered_within_its_upper_half() {
        let backoff = Duration::from_secs(8);
        assert_eq!(jittered(backoff, 0.0), Duration::from_secs(4));
        assert_eq!(jittered(backoff, 0.5), Duration::from_secs(6));
        assert!(jittered(backoff, 0.999) < backoff);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let waits: Vec<Duration> = (0..100).map(|_| jittered(backoff, rng.random::<f64>())).collect();
        assert!(waits.iter().all(|w| *w >= backoff / 2 && *w <= backoff));
        assert!(waits.iter().collect::<std::collections::HashSet<_>>().len() > 90, "spread, not in step");
    }
}
