//! Detectors: per-group state machines over event time.
//!
//! One file per detector type, each holding its parameters (read from the
//! rule's `detect:` map), its per-group state and its logic. Detector types
//! are a closed enum: the engine dispatches with a `match`, and adding a
//! type means adding a variant here. Detectors do no IO and read no clock;
//! time is the event's `ts` and the engine's watermark.

pub mod bounded;
pub mod distinct;
pub mod evidence;
pub mod flatline;
pub mod groups;
pub mod match_event;
pub mod new_value;
pub mod off_hours;
pub mod params;
pub mod ratio;
pub mod sequence;
pub mod spike;
pub mod threshold;
pub mod window;

use serde::{Deserialize, Serialize};

use crate::event::EventRef;
use crate::time::{Span, Timestamp};
use groups::GroupTable;
pub use params::ParamReader;
use window::Window;

/// What a detector found: the detector-specific numbers of an alert.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Firing {
    /// Event time the alert is raised at (the triggering event's `ts`).
    pub ts: Timestamp,
    /// Event time of the first event that contributed.
    pub first_ts: Timestamp,
    pub count: Option<u64>,
    /// Matching events in the window that fired, where the detector counts
    /// them (else the alert counts its evidence).
    pub events: Option<u64>,
    pub score: Option<f64>,
    /// The observed quantity: a sum, a ratio's denominator, an interval value.
    pub observed: Option<f64>,
    /// What the observation was compared with (learned baseline, limit).
    pub baseline: Option<f64>,
    /// A value the alert is about (the new device, the off-hours time).
    pub value: Option<String>,
    pub evidence: Vec<String>,
    pub status: Status,
}

/// Whether an alert reports a condition or its end: a silent group that
/// speaks again, or the last notice of an incident that is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Firing,
    Resumed,
    Resolved,
}

impl Status {
    pub fn is_firing(&self) -> bool {
        *self == Status::Firing
    }
}

/// The result of showing an event to a detector.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Quiet,
    Fired(Firing),
    /// It would have fired, but the group alerted within `realert`: what
    /// it would have said, which updates the open incident.
    Suppressed(Firing),
}

/// Per-rule settings every detector shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_groups: usize,
    pub max_values: usize,
    pub evidence: usize,
    /// Evidence bytes the rule's groups share (see [`evidence`]).
    pub evidence_bytes: usize,
    pub realert: Span,
}

/// A detector type with its compiled parameters; cheap to clone, no state.
#[derive(Debug, Clone)]
pub enum Params {
    Match,
    Threshold(threshold::Params),
    Distinct(distinct::Params),
    Ratio(ratio::Params),
    Spike(spike::Params),
    NewValue(new_value::Params),
    OffHours(off_hours::Params),
    Sequence(sequence::Params),
    Flatline(flatline::Params),
}

pub const TYPES: &[&str] =
    &["match", "threshold", "distinct", "ratio", "spike", "new_value", "off_hours", "sequence", "flatline"];

impl Params {
    /// Reads the parameters of detector type `kind`; problems go to the
    /// reader's sink and yield `None`.
    pub fn compile(kind: &str, reader: &mut ParamReader<'_>) -> Option<Params> {
        Some(match kind {
            "match" => Params::Match,
            "threshold" => Params::Threshold(threshold::Params::compile(reader)?),
            "distinct" => Params::Distinct(distinct::Params::compile(reader)?),
            "ratio" => Params::Ratio(ratio::Params::compile(reader)?),
            "spike" => Params::Spike(spike::Params::compile(reader)?),
            "new_value" => Params::NewValue(new_value::Params::compile(reader)?),
            "off_hours" => Params::OffHours(off_hours::Params::compile(reader)?),
            "sequence" => Params::Sequence(sequence::Params::compile(reader)?),
            "flatline" => Params::Flatline(flatline::Params::compile(reader)?),
            _ => return None,
        })
    }

    /// The detector type as rules name it (`detect.type`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Params::Match => "match",
            Params::Threshold(_) => "threshold",
            Params::Distinct(_) => "distinct",
            Params::Ratio(_) => "ratio",
            Params::Spike(_) => "spike",
            Params::NewValue(_) => "new_value",
            Params::OffHours(_) => "off_hours",
            Params::Sequence(_) => "sequence",
            Params::Flatline(_) => "flatline",
        }
    }

    /// The realert period a rule gets when it sets none: one window, so a
    /// burst that keeps going is one alert per window, not one per event.
    pub fn default_realert(&self) -> Span {
        match self {
            Params::Match | Params::NewValue(_) => Span::ZERO,
            Params::Threshold(p) => p.window,
            Params::Distinct(p) => p.window,
            Params::Ratio(p) => p.window,
            Params::Spike(p) => p.interval,
            Params::OffHours(_) => Span::from_secs(3600),
            Params::Sequence(p) => p.window,
            Params::Flatline(p) => p.window,
        }
    }

    /// How long a group must be quiet before the incident its alert
    /// opened is over: the window (or interval) the condition is judged
    /// over, or realert if longer, since until then the detector would not
    /// page again anyway. `None` for a type whose alerts stand alone: a
    /// point event with no realert, or a flatline (its `resumed` alert
    /// ends it).
    pub fn incident_hold(&self, realert: Span) -> Option<Span> {
        let window = match self {
            Params::Flatline(_) => return None,
            Params::Match | Params::NewValue(_) | Params::OffHours(_) => Span::ZERO,
            _ => self.window().unwrap_or(Span::ZERO),
        };
        let hold = window.max(realert);
        (hold > Span::ZERO).then_some(hold)
    }

    /// The window the alert text calls `{{window}}`, if the type has one.
    pub fn window(&self) -> Option<Span> {
        match self {
            Params::Threshold(p) => Some(p.window),
            Params::Distinct(p) => Some(p.window),
            Params::Ratio(p) => Some(p.window),
            Params::Spike(p) => Some(p.interval),
            Params::Sequence(p) => Some(p.window),
            Params::Flatline(p) => Some(p.window),
            Params::Match | Params::NewValue(_) | Params::OffHours(_) => None,
        }
    }

    pub fn threshold(&self) -> Option<f64> {
        match self {
            Params::Threshold(p) => Some(p.threshold),
            Params::Distinct(p) => Some(p.threshold as f64),
            Params::Ratio(p) => Some(p.ratio),
            Params::Spike(p) => Some(p.threshold),
            Params::Flatline(p) => Some(p.threshold as f64),
            _ => None,
        }
    }
}

/// A detector with its state for every group.
#[derive(Debug)]
pub enum Detector {
    Match(match_event::Detector),
    Threshold(threshold::Detector),
    Distinct(distinct::Detector),
    Ratio(ratio::Detector),
    Spike(spike::Detector),
    NewValue(new_value::Detector),
    OffHours(off_hours::Detector),
    Sequence(sequence::Detector),
    Flatline(flatline::Detector),
}

impl Detector {
    pub fn new(params: &Params, limits: &Limits) -> Detector {
        match params {
            Params::Match => Detector::Match(match_event::Detector::new(limits)),
            Params::Threshold(p) => Detector::Threshold(threshold::Detector::new(p.clone(), limits)),
            Params::Distinct(p) => Detector::Distinct(distinct::Detector::new(p.clone(), limits)),
            Params::Ratio(p) => Detector::Ratio(ratio::Detector::new(p.clone(), limits)),
            Params::Spike(p) => Detector::Spike(spike::Detector::new(p.clone(), limits)),
            Params::NewValue(p) => Detector::NewValue(new_value::Detector::new(p.clone(), limits)),
            Params::OffHours(p) => Detector::OffHours(off_hours::Detector::new(p.clone(), limits)),
            Params::Sequence(p) => Detector::Sequence(sequence::Detector::new(p.clone(), limits)),
            Params::Flatline(p) => Detector::Flatline(flatline::Detector::new(p.clone(), limits)),
        }
    }

    /// Shows a matching event to the detector. `watermark` is the event
    /// time before which no further event will be accepted.
    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, watermark: Timestamp, limits: &Limits) -> Outcome {
        match self {
            Detector::Match(d) => d.observe(event, key, limits),
            Detector::Threshold(d) => d.observe(event, key, watermark, limits),
            Detector::Distinct(d) => d.observe(event, key, limits),
            Detector::Ratio(d) => d.observe(event, key, watermark, limits),
            Detector::Spike(d) => d.observe(event, key, limits),
            Detector::NewValue(d) => d.observe(event, key, limits),
            Detector::OffHours(d) => d.observe(event, key, limits),
            Detector::Sequence(d) => d.observe(event, key, limits),
            Detector::Flatline(d) => d.observe(event, key),
        }
    }

    /// Whether [`Detector::tick`] can fire: the detector reacts to time
    /// passing, not only to events.
    pub fn needs_ticks(&self) -> bool {
        matches!(self, Detector::Flatline(_))
    }

    /// Lets event time advance to `watermark` with no event; fires for
    /// groups whose silence is now long enough.
    pub fn tick(&mut self, watermark: Timestamp, limits: &Limits, out: &mut Vec<(String, Firing)>) -> u64 {
        match self {
            Detector::Flatline(d) => d.tick(watermark, limits, out),
            _ => 0,
        }
    }

    pub fn groups(&self) -> usize {
        match self {
            Detector::Match(d) => d.groups.len(),
            Detector::Threshold(d) => d.groups.len(),
            Detector::Distinct(d) => d.groups.len(),
            Detector::Ratio(d) => d.groups.len(),
            Detector::Spike(d) => d.groups.len(),
            Detector::NewValue(d) => d.groups.len(),
            Detector::OffHours(d) => d.groups_len(),
            Detector::Sequence(d) => d.groups.len(),
            Detector::Flatline(d) => d.groups.len(),
        }
    }

    /// Bytes of evidence the groups hold (see [`evidence`]).
    pub fn evidence_bytes(&self) -> usize {
        match self {
            Detector::Match(d) => d.groups.evidence_bytes(),
            Detector::Threshold(d) => d.groups.evidence_bytes(),
            Detector::Distinct(d) => d.groups.evidence_bytes(),
            Detector::Ratio(d) => d.groups.evidence_bytes(),
            Detector::Spike(d) => d.groups.evidence_bytes(),
            Detector::NewValue(d) => d.groups.evidence_bytes(),
            Detector::OffHours(off_hours::Detector::Schedule { groups, .. }) => groups.evidence_bytes(),
            Detector::OffHours(off_hours::Detector::Profile { groups, .. }) => groups.evidence_bytes(),
            Detector::Sequence(d) => d.groups.evidence_bytes(),
            Detector::Flatline(d) => d.groups.evidence_bytes(),
        }
    }

    /// Groups and remembered values dropped to stay within the limits.
    pub fn evictions(&self) -> u64 {
        match self {
            Detector::Match(d) => d.groups.evictions(),
            Detector::Threshold(d) => d.groups.evictions(),
            Detector::Distinct(d) => d.groups.evictions() + d.value_evictions,
            Detector::Ratio(d) => d.groups.evictions(),
            Detector::Spike(d) => d.groups.evictions(),
            Detector::NewValue(d) => d.groups.evictions() + d.value_evictions,
            Detector::OffHours(d) => d.evictions(),
            Detector::Sequence(d) => d.groups.evictions(),
            Detector::Flatline(d) => d.groups.evictions(),
        }
    }
}

/// Declares the checkpoint forms of detector state: [`SavedRef`] borrows
/// the state of a live detector for writing, [`Saved`] owns a state read
/// back. Both list the same variants in the same order, which is what the
/// binary encoding records.
macro_rules! saved_state {
    ($($variant:ident($state:ty)),* $(,)?) => {
        /// A detector's per-group state, borrowed for a checkpoint.
        #[derive(Serialize)]
        pub enum SavedRef<'a> {
            $($variant(&'a GroupTable<$state>)),*
        }

        /// A detector's per-group state read from a checkpoint.
        #[derive(Deserialize)]
        pub enum Saved {
            $($variant(GroupTable<$state>)),*
        }
    };
}

saved_state! {
    Match(()),
    Threshold(Window),
    Distinct(distinct::Values),
    Ratio(Window),
    Spike(spike::Baseline),
    NewValue(new_value::Known),
    Schedule(()),
    Profile(off_hours::Habits),
    Sequence(sequence::Progress),
    Flatline(flatline::Activity),
}

impl Detector {
    /// The state to checkpoint.
    pub fn save(&self) -> SavedRef<'_> {
        match self {
            Detector::Match(d) => SavedRef::Match(&d.groups),
            Detector::Threshold(d) => SavedRef::Threshold(&d.groups),
            Detector::Distinct(d) => SavedRef::Distinct(&d.groups),
            Detector::Ratio(d) => SavedRef::Ratio(&d.groups),
            Detector::Spike(d) => SavedRef::Spike(&d.groups),
            Detector::NewValue(d) => SavedRef::NewValue(&d.groups),
            Detector::OffHours(off_hours::Detector::Schedule { groups, .. }) => SavedRef::Schedule(groups),
            Detector::OffHours(off_hours::Detector::Profile { groups, .. }) => SavedRef::Profile(groups),
            Detector::Sequence(d) => SavedRef::Sequence(&d.groups),
            Detector::Flatline(d) => SavedRef::Flatline(&d.groups),
        }
    }

    /// Replaces the state with a checkpointed one; false (and nothing
    /// changed) if the saved state belongs to another detector type.
    pub fn restore(&mut self, saved: Saved) -> bool {
        match (self, saved) {
            (Detector::Match(d), Saved::Match(g)) => d.groups.adopt(g),
            (Detector::Threshold(d), Saved::Threshold(g)) => d.groups.adopt(g),
            (Detector::Distinct(d), Saved::Distinct(g)) => d.groups.adopt(g),
            (Detector::Ratio(d), Saved::Ratio(g)) => d.groups.adopt(g),
            (Detector::Spike(d), Saved::Spike(g)) => d.groups.adopt(g),
            (Detector::NewValue(d), Saved::NewValue(g)) => {
                d.groups.adopt(g);
                d.recount();
            }
            (Detector::OffHours(off_hours::Detector::Schedule { groups, .. }), Saved::Schedule(g)) => groups.adopt(g),
            (Detector::OffHours(off_hours::Detector::Profile { groups, .. }), Saved::Profile(g)) => groups.adopt(g),
            (Detector::Sequence(d), Saved::Sequence(g)) => d.groups.adopt(g),
            (Detector::Flatline(d), Saved::Flatline(g)) => d.groups.adopt(g),
            _ => return false,
        }
        true
    }
}

/// What an event adds to a count or sum: 1, or the value of the `sum`
/// field; `None` if that field is missing, not a finite number or negative
/// (the event is then left out rather than counted as zero: one negative
/// value must not cancel a real burst).
pub(crate) fn weight(sum: Option<crate::event::FieldId>, event: &EventRef<'_>) -> Option<f64> {
    match sum {
        None => Some(1.0),
        Some(field) => event.get(field).as_f64().filter(|v| v.is_finite() && *v >= 0.0),
    }
}

/// The last step every detector shares: apply realert, attach the
/// evidence of the window that fired (never the group's older events).
pub(crate) fn conclude<S>(group: &mut groups::Group<S>, firing: Option<Firing>, limits: &Limits) -> Outcome {
    match firing {
        None => Outcome::Quiet,
        Some(mut firing) => {
            if group.permit(firing.ts, limits.realert) {
                firing.evidence = group.evidence.since(firing.first_ts);
                Outcome::Fired(firing)
            } else {
                Outcome::Suppressed(firing)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A tiny harness for detector unit tests: events are `(seconds, json
    //! fields)` and the decoder knows every field the test names.
    use std::sync::Arc;

    use super::*;
    use crate::event::{Decoder, Schema};

    pub const BASE: i64 = 1_763_892_000; // 2025-11-23T10:00:00Z, a Sunday

    pub fn limits() -> Limits {
        Limits { max_groups: 100, max_values: 100, evidence: 3, evidence_bytes: 1 << 20, realert: Span::ZERO }
    }

    pub fn line(offset_secs: i64, fields: &str) -> String {
        let ts = Timestamp::from_secs(BASE + offset_secs);
        if fields.is_empty() {
            format!(r#"{{"ts":"{ts}","kind":"test"}}"#)
        } else {
            format!(r#"{{"ts":"{ts}","kind":"test",{fields}}}"#)
        }
    }

    pub fn decoder(schema: Schema) -> Decoder {
        Decoder::new(Arc::new(schema))
    }

    /// Feeds events to `detector` in order; returns, per event, whether it
    /// fired (`F`), was suppressed (`S`) or stayed quiet (`.`).
    pub fn run(detector: &mut Detector, decoder: &mut Decoder, limits: &Limits, events: &[(i64, &str)]) -> String {
        let mut trace = String::new();
        for (offset, fields) in events {
            let text = line(*offset, fields);
            let event = decoder.decode(&text).expect("test event decodes");
            let outcome = detector.observe(&event, "g", event.ts, limits);
            trace.push(match outcome {
                Outcome::Quiet => '.',
                Outcome::Fired(_) => 'F',
                Outcome::Suppressed(_) => 'S',
            });
        }
        trace
    }
}
