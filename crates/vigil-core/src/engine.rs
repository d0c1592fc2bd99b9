//! The detection engine: events in, alerts out.
//!
//! The engine owns one detector per rule and the event-time clock. For each
//! event it picks the rules that can match its `kind` (an index built from
//! the filters), evaluates their filters, builds the group key into a
//! reused buffer and hands the event to the detector. It does no IO, reads
//! no wall clock and touches no metrics registry: the runtime around it
//! reads [`Engine::stats`] and exports them.
//!
//! Event time is kept by [`Clocks`] (see `time::watermark`): one frontier
//! per source, the watermark the slowest delivering source allows. An event
//! behind its own source's watermark is *late*: it is counted (per rule
//! whose filter it matches) and only stateless `match` rules still see it,
//! so windows are never silently rewritten by stragglers. An event from
//! beyond the wall clock's bound is refused before any rule sees it.
//!
//! Next to each detector the engine keeps its rule's open incidents
//! (`incident.rs`): an event at which the rule's condition holds while its
//! group's alert is open is added to it, and ticks send the updates and
//! last notices that are due.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, PartOf, Trigger, KEY_SEPARATOR};
use crate::detect::{Detector, Firing, Outcome, Saved, SavedRef, Status};
use crate::event::{Decoder, EventRef};
use crate::incident::{Change, Incident, Incidents};
use crate::ruleset::{Rule, RuleSet};
use crate::time::watermark::{Admission, Clocks, SavedClocks, SourceId, SourceStats, TimePolicy};
use crate::time::{Span, Timestamp};

/// Counters of one rule, read by the runtime for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleStats {
    pub matched: u64,
    /// First notices.
    pub alerts: u64,
    pub suppressed: u64,
    /// Later notices of alerts whose incident went on or ended.
    pub updates: u64,
    /// Matching events that lacked a `group_by` field and were skipped.
    pub ungrouped: u64,
    /// Late events the rule's filter matched, which its windows no longer
    /// took (`match` rules see late events and never count them).
    pub late: u64,
    /// Evaluations timed (one event in [`Sampling::every`]) and their
    /// total time in nanoseconds.
    pub sampled: u64,
    pub sampled_nanos: u64,
}

/// A monotonic clock in nanoseconds, lent by the runtime: the engine reads
/// no clock of its own, so replays stay deterministic.
pub type Clock = fn() -> u64;

/// Times each rule's evaluation of one event in `every`, so the cost per
/// rule is known without reading a clock per event.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    pub clock: Clock,
    pub every: u32,
}

/// What a reload did with each rule's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Rules whose state-bearing sections are unchanged: state kept.
    pub kept: usize,
    /// Rules whose filter, detector or limits changed: state started afresh.
    pub reset: usize,
    pub added: usize,
    pub removed: usize,
}

impl ReloadReport {
    /// What a reload from `old` to `new` does to any engine running `old`.
    pub fn between(old: &RuleSet, new: &RuleSet) -> ReloadReport {
        let mut report = ReloadReport::default();
        for rule in &new.rules {
            match old.rules.iter().find(|r| r.id == rule.id) {
                Some(previous) if previous.digest == rule.digest => report.kept += 1,
                Some(_) => report.reset += 1,
                None => report.added += 1,
            }
        }
        report.removed = old.rules.iter().filter(|r| !new.rules.iter().any(|n| n.id == r.id)).count();
        report
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub late: u64,
    /// Refused: further ahead of the wall clock than `max_future`.
    pub future: u64,
    /// A replay's lone outliers far ahead of their stream: like late
    /// events, only `match` rules saw them.
    pub ahead: u64,
}

/// Whether the engine took an event in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Accepted,
    /// Older than the watermark: only `match` rules saw it.
    Late,
    /// From beyond the wall clock's bound: no rule saw it.
    Future,
}

struct Slot {
    rule: Arc<Rule>,
    detector: Detector,
    incidents: Incidents,
    stats: RuleStats,
}

pub struct Engine {
    slots: Vec<Slot>,
    by_kind: HashMap<Box<str>, Box<[u32]>>,
    any_kind: Box<[u32]>,
    ticking: Box<[u32]>,
    clocks: Clocks,
    next_tick: Timestamp,
    tick_every: Span,
    key: String,
    kind_buf: String,
    /// Decodes an alert's evidence again, for the top values of the
    /// incident it opens.
    decoder: Decoder,
    stats: EngineStats,
    sampling: Option<Sampling>,
    /// Events until the next timed one.
    countdown: u32,
}

impl Engine {
    pub fn new(rules: &RuleSet, time: TimePolicy) -> Engine {
        let slots: Vec<Slot> = rules
            .rules
            .iter()
            .map(|rule| Slot {
                detector: Detector::new(&rule.detector, &rule.limits),
                incidents: Incidents::default(),
                rule: rule.clone(),
                stats: RuleStats::default(),
            })
            .collect();
        let mut kinds: HashMap<String, Vec<u32>> = HashMap::new();
        let mut any_kind = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            match slot.rule.filter.required_kinds() {
                Some(list) => list.into_iter().for_each(|k| kinds.entry(k).or_default().push(index as u32)),
                None => any_kind.push(index as u32),
            }
        }
        // Each kind's list includes the kind-agnostic rules, in rule order,
        // so alerts come out in the same order whatever the index.
        let by_kind = kinds
            .into_iter()
            .map(|(kind, mut list)| {
                list.extend(&any_kind);
                list.sort_unstable();
                list.dedup();
                (kind.into_boxed_str(), list.into_boxed_slice())
            })
            .collect();
        let ticking: Vec<u32> =
            (0..slots.len() as u32).filter(|&i| slots[i as usize].rule.detector.tick_every().is_some()).collect();
        let tick_every = slots
            .iter()
            .filter_map(|s| s.rule.detector.tick_every())
            .min()
            .unwrap_or(Span::from_secs(60))
            .max(Span::from_secs(1));
        Engine {
            slots,
            by_kind,
            any_kind: any_kind.into_boxed_slice(),
            ticking: ticking.into_boxed_slice(),
            clocks: Clocks::new(time),
            next_tick: Timestamp::MIN,
            tick_every,
            key: String::new(),
            kind_buf: String::new(),
            decoder: Decoder::new(rules.schema.clone()),
            stats: EngineStats::default(),
            sampling: None,
            countdown: 0,
        }
    }

    /// Times rule evaluation on one event in `sampling.every`.
    pub fn sample_rule_time(&mut self, sampling: Sampling) {
        let every = sampling.every.max(1);
        self.countdown = every;
        self.sampling = Some(Sampling { every, ..sampling });
    }

    /// Swaps in a new rule set. A rule keeps its detector state when its id
    /// is found and its state-bearing sections are unchanged (its
    /// `digest`), and keeps its counters whenever its id is found; the
    /// event-time clock goes on.
    pub fn reload(&mut self, rules: &RuleSet) -> ReloadReport {
        let mut next = Engine::new(rules, self.clocks.policy());
        next.clocks = self.clocks.clone();
        next.next_tick = self.next_tick;
        next.stats = self.stats;
        if let Some(sampling) = self.sampling {
            next.sample_rule_time(sampling);
        }
        let mut old: HashMap<Arc<str>, Slot> = self.slots.drain(..).map(|s| (s.rule.id.clone(), s)).collect();
        let mut report = ReloadReport::default();
        for slot in &mut next.slots {
            match old.remove(&slot.rule.id) {
                Some(previous) => {
                    slot.stats = previous.stats;
                    if previous.rule.digest == slot.rule.digest {
                        slot.detector = previous.detector;
                        slot.incidents = previous.incidents;
                        report.kept += 1;
                    } else {
                        report.reset += 1;
                    }
                }
                None => report.added += 1,
            }
        }
        report.removed = old.len();
        *self = next;
        report
    }

    /// The newest event time seen.
    pub fn newest(&self) -> Timestamp {
        self.clocks.newest()
    }

    /// The event time up to which windows are closed.
    pub fn watermark(&self) -> Timestamp {
        self.clocks.watermark()
    }

    pub fn clocks(&self) -> &Clocks {
        &self.clocks
    }

    /// Declares another source (see [`Clocks::add_source`]).
    pub fn add_source(&mut self) -> SourceId {
        self.clocks.add_source()
    }

    /// Lends the wall clock, once per batch: events are bounded by it.
    pub fn set_wall(&mut self, now: Timestamp) {
        self.clocks.set_wall(now);
    }

    /// Lets the wall clock move quiet sources (see
    /// [`Clocks::advance_quiet`]); silence that is now long enough fires.
    pub fn advance_quiet(&mut self, now: Timestamp, out: &mut Vec<Alert>) {
        if self.clocks.advance_quiet(now) {
            self.tick_if_due(out);
        }
    }

    /// A source has ended: it no longer holds event time back.
    pub fn end_source(&mut self, source: SourceId, out: &mut Vec<Alert>) {
        self.clocks.end(source);
        self.tick_if_due(out);
    }

    /// Per source: late and refused events, and its frontier.
    pub fn source_stats(&self) -> impl Iterator<Item = (SourceId, SourceStats)> + '_ {
        self.clocks.source_stats()
    }

    /// Processes an event of the first (often the only) source.
    pub fn process(&mut self, event: &EventRef<'_>, out: &mut Vec<Alert>) -> Disposition {
        self.process_from(SourceId::default(), event, out)
    }

    /// Processes an event of `source`.
    pub fn process_from(&mut self, source: SourceId, event: &EventRef<'_>, out: &mut Vec<Alert>) -> Disposition {
        let admission = self.clocks.admit(source, event.ts);
        self.evaluate_all(source, admission, event, out)
    }

    /// Processes an event without letting its time move its source's
    /// frontier: what a replay's guard still held at the end of the input.
    pub fn process_unmoved(&mut self, source: SourceId, event: &EventRef<'_>, out: &mut Vec<Alert>) -> Disposition {
        let admission = self.clocks.judge(source, event.ts);
        self.evaluate_all(source, admission, event, out)
    }

    /// Processes a replay's lone outlier (see `time::outliers`): only
    /// `match` rules see it, and its time moves nothing.
    pub fn process_aside(&mut self, event: &EventRef<'_>, out: &mut Vec<Alert>) {
        self.stats.ahead += 1;
        self.stats.events += 1;
        let watermark = self.clocks.watermark();
        self.evaluate_candidates(true, watermark, event, out);
    }

    fn tick_if_due(&mut self, out: &mut Vec<Alert>) {
        let watermark = self.clocks.watermark();
        if watermark >= self.next_tick
            && (!self.ticking.is_empty() || self.slots.iter().any(|s| !s.incidents.is_empty()))
        {
            self.tick(watermark, out);
        }
    }

    /// The end of the input (a replay, a test): every open incident with
    /// events since its last notice gets an update, so the output tells
    /// the whole incident. The incidents stay open.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        for slot in &mut self.slots {
            for (key, incident) in slot.incidents.iter_mut() {
                if incident.has_news() {
                    let at = incident.last_ts;
                    incident.notice(at);
                    slot.stats.updates += 1;
                    out.push(notice(&slot.rule, key, incident, Status::Firing, &mut self.decoder));
                }
            }
        }
    }

    fn evaluate_all(
        &mut self,
        source: SourceId,
        admission: Admission,
        event: &EventRef<'_>,
        out: &mut Vec<Alert>,
    ) -> Disposition {
        let late = match admission {
            Admission::Future => {
                self.stats.future += 1;
                return Disposition::Future;
            }
            Admission::Late => true,
            Admission::OnTime => false,
        };
        self.stats.events += 1;
        if late {
            self.stats.late += 1;
        }
        self.tick_if_due(out);
        // Windows are pruned at the event's own source's watermark when that
        // is behind the engine's (a source that joined late): its groups'
        // windows reach back as far as its events do.
        let watermark = self.clocks.watermark().min(self.clocks.source_watermark(source));
        self.evaluate_candidates(late, watermark, event, out);
        if late {
            Disposition::Late
        } else {
            Disposition::Accepted
        }
    }

    /// Shows the event to the rules its kind can match; `late`: only to
    /// stateless ones.
    fn evaluate_candidates(&mut self, late: bool, watermark: Timestamp, event: &EventRef<'_>, out: &mut Vec<Alert>) {
        let kind = if event.kind.bytes().any(|b| b.is_ascii_uppercase()) {
            self.kind_buf.clear();
            self.kind_buf.extend(event.kind.chars().map(|c| c.to_ascii_lowercase()));
            self.kind_buf.as_str()
        } else {
            event.kind
        };
        let timer = match &mut self.sampling {
            Some(sampling) => {
                self.countdown -= 1;
                if self.countdown == 0 {
                    self.countdown = sampling.every;
                    Some(sampling.clock)
                } else {
                    None
                }
            }
            None => None,
        };
        let candidates = self.by_kind.get(kind).unwrap_or(&self.any_kind);
        for &index in candidates.iter() {
            let slot = &mut self.slots[index as usize];
            if late && !slot.detector.takes_late_events() {
                if slot.rule.filter.matches(event) {
                    slot.stats.late += 1;
                }
                continue;
            }
            match timer {
                None => evaluate(slot, event, &mut self.key, watermark, &mut self.decoder, out),
                Some(clock) => {
                    let started = clock();
                    evaluate(slot, event, &mut self.key, watermark, &mut self.decoder, out);
                    slot.stats.sampled += 1;
                    slot.stats.sampled_nanos += clock().saturating_sub(started);
                }
            }
        }
    }

    fn tick(&mut self, watermark: Timestamp, out: &mut Vec<Alert>) {
        self.next_tick = watermark.saturating_add(self.tick_every);
        for slot in &mut self.slots {
            if let (false, Some(hold)) = (slot.incidents.is_empty(), slot.rule.hold) {
                notify_due(slot, watermark, hold, &mut self.decoder, out);
            }
        }
        let mut fired: Vec<(String, Firing)> = Vec::new();
        for &index in self.ticking.iter() {
            let slot = &mut self.slots[index as usize];
            slot.stats.suppressed += slot.detector.tick(watermark, &slot.rule.limits, &mut fired);
            // Groups come out of the table in recency order; sort by key so
            // replays agree byte for byte.
            fired.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, firing) in fired.drain(..) {
                slot.stats.alerts += 1;
                out.push(Alert::build(&slot.rule, &key, firing, Trigger::Time, PartOf::Alone));
            }
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn rule_count(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of evidence held per rule (its groups and its open incidents).
    pub fn evidence_bytes(&self) -> impl Iterator<Item = (&str, usize)> {
        self.slots.iter().map(|s| (&*s.rule.id, s.detector.evidence_bytes() + s.incidents.evidence_bytes()))
    }

    /// Per rule: the rule, its counters, tracked groups, evictions.
    pub fn rule_stats(&self) -> impl Iterator<Item = (&Rule, RuleStats, usize, u64)> {
        self.slots.iter().map(|s| (&*s.rule, s.stats, s.detector.groups(), s.detector.evictions()))
    }
}

/// The engine's state borrowed for a checkpoint: the event-time clock and
/// every rule's detector state, tagged with the rule's id and digest.
#[derive(Serialize)]
pub struct Snapshot<'a> {
    clocks: SavedClocks,
    next_tick: Timestamp,
    rules: Vec<(&'a str, u64, SavedRef<'a>, &'a Incidents)>,
}

/// The engine's state read back from a checkpoint.
#[derive(Deserialize)]
pub struct Restored {
    clocks: SavedClocks,
    next_tick: Timestamp,
    rules: Vec<(String, u64, Saved, Incidents)>,
}

/// What a restore kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub rules: usize,
    /// Saved rules that are gone or whose state-bearing sections changed (`Rule::digest`): their state is
    /// dropped and they start afresh.
    pub dropped: usize,
}

impl Engine {
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            clocks: self.clocks.save(),
            next_tick: self.next_tick,
            rules: self.slots.iter().map(|s| (&*s.rule.id, s.rule.digest, s.detector.save(), &s.incidents)).collect(),
        }
    }

    /// Takes over a checkpointed state. Rules are matched by id and kept
    /// only if their state-bearing sections are unchanged; new rules start empty.
    pub fn restore(&mut self, restored: Restored) -> RestoreReport {
        self.clocks.restore(restored.clocks);
        self.next_tick = restored.next_tick;
        let mut report = RestoreReport::default();
        for (id, digest, saved, incidents) in restored.rules {
            let slot = self.slots.iter_mut().find(|s| *s.rule.id == *id && s.rule.digest == digest);
            let kept = slot.is_some_and(|slot| {
                let restored = slot.detector.restore(saved);
                if restored {
                    slot.incidents.adopt(incidents, slot.rule.limits.evidence_bytes);
                }
                restored
            });
            if kept {
                report.rules += 1;
            } else {
                report.dropped += 1;
            }
        }
        report
    }
}

/// One rule's look at one event: filter, group key, detector.
fn evaluate(
    slot: &mut Slot,
    event: &EventRef<'_>,
    key: &mut String,
    watermark: Timestamp,
    decoder: &mut Decoder,
    out: &mut Vec<Alert>,
) {
    if !slot.rule.filter.matches(event) {
        return;
    }
    slot.stats.matched += 1;
    key.clear();
    if !build_key(&slot.rule, event, key) {
        slot.stats.ungrouped += 1;
        return;
    }
    let outcome = slot.detector.observe(event, key, watermark, &slot.rule.limits);
    let rule = &slot.rule;
    // An event where the rule's condition holds belongs to the open
    // incident; others of the group (a token's normal calls) do not.
    let held = match &outcome {
        Outcome::Quiet => None,
        Outcome::Suppressed(firing) | Outcome::Fired(firing) => slot.incidents.get_mut(key).map(|i| (i, firing)),
    };
    if let Some((incident, firing)) = held {
        incident.add(rule, event);
        incident.measure(firing);
        if matches!(outcome, Outcome::Suppressed(_)) {
            slot.stats.suppressed += 1;
        } else {
            // Realert is over and the condition holds again: an update.
            slot.stats.updates += 1;
            incident.notice(firing.ts);
            out.push(Alert::build(
                rule,
                key,
                incident.firing(Status::Firing),
                Trigger::Event(event),
                PartOf::Incident(incident),
            ));
        }
        return;
    }
    match outcome {
        Outcome::Quiet => {}
        Outcome::Suppressed(_) => slot.stats.suppressed += 1,
        Outcome::Fired(firing) => {
            slot.stats.alerts += 1;
            if rule.hold.is_none() && rule.top.is_empty() {
                out.push(Alert::build(rule, key, firing, Trigger::Event(event), PartOf::Alone));
                return;
            }
            let budget = slot.incidents.budget(rule.limits.evidence_bytes);
            let incident = Incident::open(rule, Alert::id_of(rule, key, &firing), &firing, decoder, &budget);
            out.push(Alert::build(rule, key, firing, Trigger::Event(event), PartOf::Incident(&incident)));
            if rule.hold.is_some() {
                if let Some((closed_key, mut closed)) = slot.incidents.insert(key, incident, rule.limits.max_groups) {
                    if closed.has_news() {
                        slot.stats.updates += 1;
                        closed.notice(closed.last_ts);
                        out.push(notice(rule, &closed_key, &closed, Status::Resolved, decoder));
                    }
                }
            }
        }
    }
}

/// Sends what the rule's incidents have due at `watermark`: updates after
/// realert, last notices once a group was quiet for the hold.
fn notify_due(slot: &mut Slot, watermark: Timestamp, hold: Span, decoder: &mut Decoder, out: &mut Vec<Alert>) {
    let rule = &slot.rule;
    let mut over = Vec::new();
    for (key, incident) in slot.incidents.iter_mut() {
        let Some(change) = incident.due(watermark, hold, rule.limits.realert) else { continue };
        let status = match change {
            Change::Update => Status::Firing,
            Change::Resolved => {
                over.push(key.clone());
                // Nothing happened since the last notice: nothing to say.
                if !incident.has_news() {
                    continue;
                }
                Status::Resolved
            }
        };
        incident.notice(watermark);
        slot.stats.updates += 1;
        out.push(notice(rule, key, incident, status, decoder));
    }
    for key in over {
        slot.incidents.remove(&key);
    }
}

/// A notice of an incident no event raised (a tick, the end of the input):
/// its summary reads the event fields of the incident's latest event.
fn notice(rule: &Rule, key: &str, incident: &Incident, status: Status, decoder: &mut Decoder) -> Alert {
    let firing = incident.firing(status);
    let latest = firing.evidence.last().cloned().unwrap_or_default();
    let event = decoder.decode(&latest).ok();
    let trigger = event.as_ref().map_or(Trigger::Time, Trigger::Event);
    Alert::build(rule, key, firing, trigger, PartOf::Incident(incident))
}

/// Writes the group key of `event` for `rule`; false if a group field is
/// missing.
fn build_key(rule: &Rule, event: &EventRef<'_>, key: &mut String) -> bool {
    for (i, (_, field)) in rule.group_by.iter().enumerate() {
        if i > 0 {
            key.push(KEY_SEPARATOR);
        }
        if !event.get(*field).write_text(key) {
            return false;
        }
    }
    true
}
