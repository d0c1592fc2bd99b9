//! Bytes to alerts: the decoder and the engine, with the bookkeeping every
//! front end needs (rejections by reason, events by kind). What else a
//! front end counts per event (the daemon's dashboard activity) it brings
//! as a [`Watch`]. `vigil replay`, `vigil test`, the daemon and the
//! benchmarks all drive this one type.

use crate::alert::Alert;
use crate::engine::{Disposition, Engine, ReloadReport};
use std::collections::HashMap;

use crate::event::{DecodeError, Decoder, EventRef, FieldId, Reason, Schema};
use crate::ruleset::RuleSet;
use crate::time::outliers::{Outliers, Step, Verdict};
use crate::time::watermark::{SourceId, TimePolicy};
use crate::time::{Span, Timestamp};

/// Event kinds counted by name; any other kind is counted as `other`, so
/// the metric's labels stay bounded whatever producers send.
pub const KNOWN_KINDS: &[&str] =
    &["login", "api_call", "message_volume", "setting_change", "data_access", "user_admin"];

/// What a front end counts about each accepted event besides the
/// pipeline's own bookkeeping (the daemon's dashboard activity, for one);
/// `()` counts nothing. Copies of events counted elsewhere are not shown.
pub trait Watch {
    /// The rule set (and so the schema) is new: look the fields up again.
    fn schema(&mut self, schema: &Schema);
    fn event(&mut self, event: &EventRef<'_>);
}

impl Watch for () {
    fn schema(&mut self, _: &Schema) {}
    fn event(&mut self, _: &EventRef<'_>) {}
}

pub struct Pipeline<W: Watch = ()> {
    decoder: Decoder,
    engine: Engine,
    alerts: Vec<Alert>,
    tally: Tally<W>,
    /// Per source, with [`Pipeline::guard_outliers`] (replays): events far
    /// ahead of their stream held until the next one confirms them.
    guards: Option<Vec<Outliers>>,
    /// Lines the guard set aside (source, line number, `ts`), for the
    /// replay's report.
    set_aside: Vec<(SourceId, u64, Timestamp)>,
    /// With [`Pipeline::split_sources_by`]: the field whose values name the
    /// sources of one input.
    split: Option<Split>,
}

/// One input's events split into sources by a field's value (a replay of
/// several recordings concatenated): each value keeps its own clock.
struct Split {
    field: FieldId,
    sources: HashMap<Box<str>, SourceId>,
    /// Per source: the line count when it last delivered.
    last_line: Vec<u64>,
    lines: u64,
    value: String,
}

/// Distinct sources a split keeps; events of further values share one.
const SPLIT_SOURCES: usize = 4096;
/// A split source that delivered nothing for this many lines has ended: it
/// no longer holds event time back (a replay has no wall clock to tell).
const SPLIT_IDLE_LINES: u64 = 10_000;

/// What the pipeline counts about the events themselves.
struct Tally<W> {
    rejected: [u64; Reason::ALL.len()],
    by_kind: [u64; KNOWN_KINDS.len() + 1],
    watch: W,
    /// Fed copies of events another pipeline already counted (re-keyed
    /// topics): they are detected on but not counted again.
    copies: bool,
}

impl<W: Watch> Tally<W> {
    fn reject(&mut self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i] += 1;
        }
    }

    fn accept(&mut self, event: &EventRef<'_>) {
        if self.copies {
            return;
        }
        let kind = KNOWN_KINDS.iter().position(|k| *k == event.kind).unwrap_or(KNOWN_KINDS.len());
        self.by_kind[kind] += 1;
        self.watch.event(event);
    }
}

/// What became of a line fed through the replay's guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    Taken(Result<Disposition, DecodeError>),
    /// Far ahead of its stream: judged when the next line comes.
    Held,
}

impl Split {
    /// The source of `event`: its value of the split field (events without
    /// it, and values beyond [`SPLIT_SOURCES`], share the first source).
    /// Ends the sources that have gone quiet for [`SPLIT_IDLE_LINES`].
    fn source_of(&mut self, event: &EventRef<'_>, engine: &mut Engine, alerts: &mut Vec<Alert>) -> SourceId {
        self.lines += 1;
        if self.lines.is_multiple_of(1024) {
            for (i, last) in self.last_line.iter().enumerate() {
                let source = SourceId(i as u32);
                if self.lines - last > SPLIT_IDLE_LINES && !engine.clocks().ended(source) {
                    engine.end_source(source, alerts);
                }
            }
        }
        self.value.clear();
        let source = if event.get(self.field).write_text(&mut self.value) {
            match self.sources.get(self.value.as_str()) {
                Some(&source) => source,
                None if self.sources.len() < SPLIT_SOURCES => {
                    let source = if self.sources.is_empty() { SourceId::default() } else { engine.add_source() };
                    self.sources.insert(self.value.as_str().into(), source);
                    source
                }
                None => SourceId::default(),
            }
        } else {
            SourceId::default()
        };
        let index = source.0 as usize;
        if self.last_line.len() <= index {
            self.last_line.resize(index + 1, 0);
        }
        self.last_line[index] = self.lines;
        source
    }
}

/// The replay guard of `source`, made on first use with the lateness as
/// its tolerance.
fn guard_of<'a>(guards: &'a mut Vec<Outliers>, source: SourceId, engine: &Engine) -> &'a mut Outliers {
    let index = source.0 as usize;
    if guards.len() <= index {
        let tolerance = engine.clocks().policy().lateness;
        guards.resize_with(index + 1, || Outliers::new(tolerance));
    }
    &mut guards[index]
}

/// Hands a decoded event to the engine; a refused one becomes a rejection.
fn take<W: Watch>(
    engine: &mut Engine,
    tally: &mut Tally<W>,
    source: SourceId,
    event: &EventRef<'_>,
    alerts: &mut Vec<Alert>,
) -> Result<Disposition, DecodeError> {
    match engine.process_from(source, event, alerts) {
        Disposition::Future => Err(future(tally, event)),
        disposition => {
            tally.accept(event);
            Ok(disposition)
        }
    }
}

fn future<W: Watch>(tally: &mut Tally<W>, event: &EventRef<'_>) -> DecodeError {
    tally.reject(Reason::FutureTs);
    DecodeError::new(Reason::FutureTs, format!("`ts` {} is too far ahead of the wall clock", event.ts))
}

impl Pipeline {
    pub fn new(rules: &RuleSet, lateness: Span, max_event_bytes: usize) -> Pipeline {
        Pipeline::with_time(rules, TimePolicy::with_lateness(lateness), max_event_bytes)
    }

    pub fn with_time(rules: &RuleSet, time: TimePolicy, max_event_bytes: usize) -> Pipeline {
        Pipeline {
            decoder: Decoder::with_max_bytes(rules.schema.clone(), max_event_bytes),
            engine: Engine::new(rules, time),
            alerts: Vec::new(),
            tally: Tally {
                rejected: [0; Reason::ALL.len()],
                by_kind: [0; KNOWN_KINDS.len() + 1],
                watch: (),
                copies: false,
            },
            guards: None,
            set_aside: Vec::new(),
            split: None,
        }
    }

    /// The same pipeline, showing each event it counts to `watch`.
    pub fn watched<V: Watch>(self, mut watch: V) -> Pipeline<V> {
        watch.schema(self.decoder.schema());
        let Tally { rejected, by_kind, copies, .. } = self.tally;
        Pipeline {
            decoder: self.decoder,
            engine: self.engine,
            alerts: self.alerts,
            tally: Tally { rejected, by_kind, watch, copies },
            guards: self.guards,
            set_aside: self.set_aside,
            split: self.split,
        }
    }
}

impl<W: Watch> Pipeline<W> {
    /// Splits events into sources by the value of `path` (replays): each
    /// value has its own clock, so recordings of several hosts or series in
    /// one file do not make each other late.
    pub fn split_sources_by(&mut self, path: &str) {
        let mut schema: Schema = (**self.decoder.schema()).clone();
        let field = schema.intern(path);
        self.decoder = Decoder::with_max_bytes(std::sync::Arc::new(schema), self.decoder.max_bytes());
        self.split =
            Some(Split { field, sources: HashMap::new(), last_line: Vec::new(), lines: 0, value: String::new() });
    }

    /// Marks this pipeline as fed copies of events counted elsewhere: its
    /// events leave the by-kind counters and the watch alone.
    pub fn feeds_on_copies(&mut self) {
        self.tally.copies = true;
    }

    /// Holds back events far ahead of their stream (see `time::outliers`):
    /// for replays, which have no wall clock to bound event time by.
    pub fn guard_outliers(&mut self) {
        self.guards = Some(Vec::new());
    }

    /// Swaps in a new rule set (see [`Engine::reload`]); the decoder takes
    /// the new set's fields. Counters go on.
    pub fn reload(&mut self, rules: &RuleSet) -> ReloadReport {
        self.decoder = Decoder::with_max_bytes(rules.schema.clone(), self.decoder.max_bytes());
        self.tally.watch.schema(&rules.schema);
        self.engine.reload(rules)
    }

    /// Decodes and processes one event; its alerts wait for [`Pipeline::drain_alerts`].
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Disposition, DecodeError> {
        self.feed_or_kind(bytes, None)
    }

    /// Like [`Pipeline::feed`], with the `kind` of events that carry none.
    pub fn feed_or_kind(&mut self, bytes: &[u8], default_kind: Option<&str>) -> Result<Disposition, DecodeError> {
        self.feed_from(SourceId::default(), bytes, default_kind)
    }

    /// Like [`Pipeline::feed_or_kind`], for an event of `source`.
    pub fn feed_from(
        &mut self,
        source: SourceId,
        bytes: &[u8],
        default_kind: Option<&str>,
    ) -> Result<Disposition, DecodeError> {
        let Pipeline { decoder, engine, alerts, tally, .. } = self;
        match decoder.decode_bytes_or_kind(bytes, default_kind) {
            Ok(event) => take(engine, tally, source, &event, alerts),
            Err(err) => {
                tally.reject(err.reason);
                Err(err)
            }
        }
    }

    /// Feeds line `number` of `source` through the replay's guard (see
    /// [`Pipeline::guard_outliers`]; without it, like [`Pipeline::feed_from`]).
    pub fn feed_guarded(&mut self, source: SourceId, number: u64, bytes: &[u8]) -> Fed {
        if self.guards.is_none() {
            return Fed::Taken(self.feed_from(source, bytes, None));
        }
        let Pipeline { decoder, engine, alerts, tally, set_aside, split, guards, .. } = self;
        let guards = guards.get_or_insert_with(Vec::new);
        let mut source = source;
        let step = match decoder.decode_bytes(bytes) {
            Ok(event) => {
                if let Some(split) = split {
                    source = split.source_of(&event, engine, alerts);
                }
                let step = guard_of(guards, source, engine).arrive(event.ts);
                if step == (Step { set_aside: 0, take: 0, current: Verdict::Take }) {
                    return Fed::Taken(take(engine, tally, source, &event, alerts));
                }
                (step, event.ts)
            }
            Err(err) => {
                tally.reject(err.reason);
                return Fed::Taken(Err(err));
            }
        };
        let (step, ts) = step;
        let guard = guard_of(guards, source, engine);
        for _ in 0..step.set_aside {
            let Some(held) = guard.pop() else { break };
            if let Ok(event) = decoder.decode_bytes(&held.bytes) {
                engine.process_aside(&event, alerts);
                tally.accept(&event);
            }
            set_aside.push((source, held.number, held.ts));
            guard.recycle(held);
        }
        for _ in 0..step.take {
            let Some(held) = guard.pop() else { break };
            if let Ok(event) = decoder.decode_bytes(&held.bytes) {
                let _ = take(engine, tally, source, &event, alerts);
            }
            guard.recycle(held);
        }
        match step.current {
            Verdict::Hold => {
                guard.hold(ts, number, bytes);
                Fed::Held
            }
            Verdict::Take => Fed::Taken(match decoder.decode_bytes(bytes) {
                Ok(event) => take(engine, tally, source, &event, alerts),
                Err(err) => Err(err),
            }),
        }
    }

    /// The end of `source`'s input: what the guard still holds is taken
    /// without moving the source's frontier, and the source stops holding
    /// event time back.
    pub fn end_source(&mut self, source: SourceId) {
        match &self.split {
            // One input split into sources: its end is the end of each.
            Some(split) => {
                let count = split.last_line.len().max(1) as u32;
                (0..count).for_each(|i| self.end_one(SourceId(i)));
            }
            None => self.end_one(source),
        }
    }

    /// The end of the whole input: each open incident with news gets an
    /// update (see [`Engine::finish`]); alerts wait for
    /// [`Pipeline::drain_alerts`].
    pub fn finish(&mut self) {
        self.engine.finish(&mut self.alerts);
    }

    fn end_one(&mut self, source: SourceId) {
        let Pipeline { decoder, engine, alerts, tally, guards, .. } = self;
        if let Some(guard) = guards.as_mut().and_then(|g| g.get_mut(source.0 as usize)) {
            while let Some(held) = guard.pop() {
                if let Ok(event) = decoder.decode_bytes(&held.bytes) {
                    if engine.process_unmoved(source, &event, alerts) != Disposition::Future {
                        tally.accept(&event);
                    }
                }
                guard.recycle(held);
            }
        }
        engine.end_source(source, alerts);
    }

    /// Lets the wall clock move quiet sources (live daemons, when no batch
    /// comes); alerts of silence wait for [`Pipeline::drain_alerts`].
    pub fn advance_quiet(&mut self, now: Timestamp) {
        self.engine.advance_quiet(now, &mut self.alerts);
    }

    /// Lines the replay's guard set aside since the last call (only `match`
    /// rules saw them): source, line number, `ts`.
    pub fn drain_set_aside(&mut self) -> std::vec::Drain<'_, (SourceId, u64, Timestamp)> {
        self.set_aside.drain(..)
    }

    /// Counts an event the source rejected before decoding (too large).
    pub fn reject(&mut self, reason: Reason) {
        self.tally.reject(reason);
    }

    /// The alerts raised since the last drain, in order.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, Alert> {
        self.alerts.drain(..)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn alerts_mut(&mut self) -> &mut Vec<Alert> {
        &mut self.alerts
    }

    /// Rejected events per reason.
    pub fn rejected(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL.iter().copied().zip(self.tally.rejected.iter().copied())
    }

    /// What the pipeline shows its events to (see [`Pipeline::watched`]).
    pub fn watch(&self) -> &W {
        &self.tally.watch
    }

    /// Accepted events per kind label.
    pub fn by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KNOWN_KINDS.iter().copied().chain(["other"]).zip(self.tally.by_kind.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::engine::Sampling;
    use crate::ruleset::RuleSources;

    const BURST: &str = "id: auth.burst\ntitle: Burst\nseverity: critical\nfilter: {kind: login, outcome: failure}\n\
        detect: {type: threshold, group_by: [user], window: 5m, threshold: 4}\n\
        alert: {summary: burst}\n";
    const API: &str = "id: api.any\ntitle: Any call\nseverity: warning\nfilter: {kind: api_call}\n\
        detect: {type: match}\nalert: {summary: call}\n";

    fn rules(texts: &[&str]) -> RuleSet {
        let files = texts.iter().enumerate().map(|(i, t)| (format!("r{i}.yml").into(), t.to_string())).collect();
        RuleSet::compile(&RuleSources { files, ..RuleSources::default() }).expect("valid rules")
    }

    fn pipeline(rules: &RuleSet) -> Pipeline {
        Pipeline::new(rules, Span::from_secs(60), 1 << 20)
    }

    /// Feeds failed logins of alice at the given minutes; the alerts raised.
    fn failures(pipeline: &mut Pipeline, minutes: std::ops::Range<u32>) -> usize {
        minutes
            .map(|m| {
                let line =
                    format!(r#"{{"ts":"2026-11-23T10:{m:02}:00Z","kind":"login","user":"alice","outcome":"failure"}}"#);
                pipeline.feed(line.as_bytes()).unwrap();
                pipeline.drain_alerts().count()
            })
            .sum()
    }

    #[test]
    fn a_reload_that_only_rewords_a_rule_keeps_its_window() {
        let mut p = pipeline(&rules(&[BURST]));
        assert_eq!(failures(&mut p, 0..3), 0);
        let reworded = BURST
            .replace("title: Burst", "title: Failed login burst\ndescription: Many failures.")
            .replace("severity: critical", "severity: warning")
            .replace("summary: burst", "summary: \"{{count}} failures\"");
        let report = p.reload(&rules(&[&format!("# moved down a line\n{reworded}")]));
        assert_eq!(report, ReloadReport { kept: 1, reset: 0, added: 0, removed: 0 });
        assert_eq!(failures(&mut p, 3..4), 1, "the three failures before the reload count");
        let alert = p.engine().rule_stats().next().unwrap();
        assert_eq!(alert.0.severity.as_str(), "warning", "the new rule text is the one running");
        assert_eq!(alert.1.alerts, 1);
    }

    #[test]
    fn a_reload_that_changes_the_detector_starts_that_rule_afresh_and_keeps_its_counters() {
        let mut p = pipeline(&rules(&[BURST]));
        assert_eq!(failures(&mut p, 0..4), 1);
        let report = p.reload(&rules(&[&BURST.replace("threshold: 4", "threshold: 3"), API]));
        assert_eq!(report, ReloadReport { kept: 0, reset: 1, added: 1, removed: 0 });
        assert_eq!(failures(&mut p, 4..6), 0, "the earlier failures are gone with the old window");
        assert_eq!(failures(&mut p, 6..7), 1);
        let stats: Vec<_> = p.engine().rule_stats().map(|(r, s, ..)| (r.id.to_string(), s.alerts)).collect();
        assert_eq!(stats, [("auth.burst".to_string(), 2), ("api.any".to_string(), 0)]);

        let report = p.reload(&rules(&[API]));
        assert_eq!(report, ReloadReport { kept: 1, reset: 0, added: 0, removed: 1 });
        assert_eq!(p.engine().rule_count(), 1);
        assert_eq!(ReloadReport::between(&rules(&[BURST]), &rules(&[API])).removed, 1);
    }

    #[test]
    fn a_reload_takes_fields_only_the_new_rules_use() {
        let mut p = pipeline(&rules(&[BURST]));
        let by_country = BURST.replace("outcome: failure}", "outcome: failure, geo.country: XX}");
        p.reload(&rules(&[&by_country]));
        let line =
            br#"{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"a","outcome":"failure","geo":{"country":"XX"}}"#;
        for _ in 0..4 {
            p.feed(line).unwrap();
        }
        assert_eq!(p.drain_alerts().count(), 1, "the decoder keeps geo.country after the reload");
    }

    static CLOCK: AtomicU64 = AtomicU64::new(0);

    fn ticking_clock() -> u64 {
        CLOCK.fetch_add(10, Ordering::Relaxed)
    }

    #[test]
    fn one_event_in_every_has_each_candidate_rule_timed() {
        let mut p = pipeline(&rules(&[BURST, API]));
        p.engine_mut().sample_rule_time(Sampling { clock: ticking_clock, every: 4 });
        failures(&mut p, 0..12);
        let timed: Vec<_> = p.engine().rule_stats().map(|(_, s, ..)| (s.sampled, s.sampled_nanos)).collect();
        assert_eq!(timed, [(3, 30), (0, 0)], "12 logins: 3 timed for the login rule, none for the API rule");
        p.reload(&rules(&[BURST, API]));
        failures(&mut p, 12..16);
        assert_eq!(p.engine().rule_stats().next().unwrap().1.sampled, 4, "sampling survives a reload");
    }
}
