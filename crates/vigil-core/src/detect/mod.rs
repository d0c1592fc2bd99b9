//! Detectors: per-group state machines over event time.
//!
//! One file per detector type, each holding its parameters (read from the
//! rule's `detect:` map), its per-group state and its logic, and
//! implementing [`Kind`]. The `detectors!` list below is the one place
//! that names them all: it declares the module and makes the closed enums
//! ([`Params`], [`Detector`], the checkpoint forms) the engine dispatches
//! on with a `match`, so the hot path has no virtual calls. Detectors do no
//! IO and read no clock; time is the event's `ts` and the engine's
//! watermark.

pub mod bounded;
pub mod evidence;
pub mod groups;
pub mod params;
pub mod window;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::EventRef;
use crate::time::{Span, Timestamp};
pub use params::ParamReader;

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

/// A detector type: what its file provides to the rest of vigil.
pub trait Kind: Sized + fmt::Debug {
    /// The type as rules name it (`detect.type`).
    const NAME: &'static str;
    /// Whether an event behind the watermark still counts: true for a type
    /// that judges each event alone, false for one that judges windows.
    const TAKES_LATE_EVENTS: bool = false;
    /// Whether an alert without a count from the detector counts its
    /// evidence as the events that fired: false for a type that fires on
    /// silence or judges intervals of reports.
    const COUNTS_EVENTS: bool = true;

    /// The compiled parameters; cheap to clone, no state.
    type Params: Clone + fmt::Debug;
    /// The per-group state, borrowed for a checkpoint.
    type Saved<'a>: Serialize
    where
        Self: 'a;
    /// The per-group state read back from a checkpoint.
    type Restored: DeserializeOwned;

    /// Reads the parameters; problems go to the reader and yield `None`.
    fn compile(reader: &mut ParamReader<'_>) -> Option<Self::Params>;
    fn new(params: &Self::Params, limits: &Limits) -> Self;
    /// Shows a matching event to the detector. `watermark` is the event
    /// time before which no further event will be accepted.
    fn observe(&mut self, event: &EventRef<'_>, key: &str, watermark: Timestamp, limits: &Limits) -> Outcome;
    /// Lets event time advance to `watermark` with no event, for a type
    /// whose [`Kind::tick_every`] is some; fires for groups whose silence
    /// is now long enough.
    fn tick(&mut self, _watermark: Timestamp, _limits: &Limits, _out: &mut Vec<(String, Firing)>) -> u64 {
        0
    }
    fn groups(&self) -> usize;
    /// Bytes of evidence the groups hold (see [`evidence`]).
    fn evidence_bytes(&self) -> usize;
    /// Groups and remembered values dropped to stay within the limits.
    fn evictions(&self) -> u64;
    fn save(&self) -> Self::Saved<'_>;
    /// Replaces the state with a checkpointed one; false (and nothing
    /// changed) if it does not fit this detector.
    fn restore(&mut self, saved: Self::Restored) -> bool;

    /// The window the alert text calls `{{window}}`, if the type has one.
    fn window(_params: &Self::Params) -> Option<Span> {
        None
    }
    fn threshold(_params: &Self::Params) -> Option<f64> {
        None
    }
    /// The realert period a rule gets when it sets none: one window, so a
    /// burst that keeps going is one alert per window, not one per event.
    fn default_realert(params: &Self::Params) -> Span {
        Self::window(params).unwrap_or(Span::ZERO)
    }
    /// How long a group must be quiet before the incident its alert
    /// opened is over: the window the condition is judged over, or realert
    /// if longer, since until then the detector would not page again
    /// anyway. `None` for a type whose alerts stand alone.
    fn incident_hold(params: &Self::Params, realert: Span) -> Option<Span> {
        let hold = Self::window(params).unwrap_or(Span::ZERO).max(realert);
        (hold > Span::ZERO).then_some(hold)
    }
    /// How often event time must be shown to the detector with no event
    /// ([`Kind::tick`]); `None` for a type that only reacts to events.
    fn tick_every(_params: &Self::Params) -> Option<Span> {
        None
    }
}

/// The parts of [`Kind`] shared by every detector whose state is one
/// `groups: GroupTable<State>`: its checkpoint forms and its counts.
/// `extra_evictions` adds values a detector drops inside its groups;
/// `after_restore` rebuilds what it derives from them.
macro_rules! state_in_one_table {
    ($state:ty) => {
        state_in_one_table!($state, |_: &Self| 0, |_: &mut Self| ());
    };
    ($state:ty, $extra_evictions:expr, $after_restore:expr) => {
        type Saved<'a> = &'a GroupTable<$state>;
        type Restored = GroupTable<$state>;

        fn groups(&self) -> usize {
            self.groups.len()
        }

        fn evidence_bytes(&self) -> usize {
            self.groups.evidence_bytes()
        }

        fn evictions(&self) -> u64 {
            self.groups.evictions() + ($extra_evictions)(self)
        }

        fn save(&self) -> &GroupTable<$state> {
            &self.groups
        }

        fn restore(&mut self, saved: GroupTable<$state>) -> bool {
            self.groups.adopt(saved);
            ($after_restore)(self);
            true
        }
    };
}

/// Declares the detector modules and the closed enums over them.
macro_rules! detectors {
    ($($variant:ident => $module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// A detector type with its compiled parameters.
        #[derive(Debug, Clone)]
        pub enum Params {
            $($variant(<$module::Detector as Kind>::Params)),*
        }

        /// Every detector type, as rules name them.
        pub const TYPES: &[&str] = &[$(<$module::Detector as Kind>::NAME),*];

        impl Params {
            /// Reads the parameters of detector type `kind`; problems go to
            /// the reader and yield `None`.
            pub fn compile(kind: &str, reader: &mut ParamReader<'_>) -> Option<Params> {
                $(if kind == <$module::Detector as Kind>::NAME {
                    return <$module::Detector as Kind>::compile(reader).map(Params::$variant);
                })*
                None
            }

            /// The detector type as rules name it (`detect.type`).
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Params::$variant(_) => <$module::Detector as Kind>::NAME),*
                }
            }

            /// See [`Kind::default_realert`].
            pub fn default_realert(&self) -> Span {
                match self {
                    $(Params::$variant(p) => <$module::Detector as Kind>::default_realert(p)),*
                }
            }

            /// See [`Kind::incident_hold`].
            pub fn incident_hold(&self, realert: Span) -> Option<Span> {
                match self {
                    $(Params::$variant(p) => <$module::Detector as Kind>::incident_hold(p, realert)),*
                }
            }

            /// See [`Kind::window`].
            pub fn window(&self) -> Option<Span> {
                match self {
                    $(Params::$variant(p) => <$module::Detector as Kind>::window(p)),*
                }
            }

            pub fn threshold(&self) -> Option<f64> {
                match self {
                    $(Params::$variant(p) => <$module::Detector as Kind>::threshold(p)),*
                }
            }

            /// See [`Kind::tick_every`].
            pub fn tick_every(&self) -> Option<Span> {
                match self {
                    $(Params::$variant(p) => <$module::Detector as Kind>::tick_every(p)),*
                }
            }

            /// See [`Kind::COUNTS_EVENTS`].
            pub fn counts_events(&self) -> bool {
                match self {
                    $(Params::$variant(_) => <$module::Detector as Kind>::COUNTS_EVENTS),*
                }
            }
        }

        /// A detector with its state for every group.
        #[derive(Debug)]
        pub enum Detector {
            $($variant($module::Detector)),*
        }

        /// A detector's per-group state, borrowed for a checkpoint. The
        /// binary encoding records the variant's position in this list.
        #[derive(Serialize)]
        pub enum SavedRef<'a> {
            $($variant(<$module::Detector as Kind>::Saved<'a>)),*
        }

        /// A detector's per-group state read from a checkpoint.
        #[derive(Deserialize)]
        pub enum Saved {
            $($variant(<$module::Detector as Kind>::Restored)),*
        }

        impl Detector {
            pub fn new(params: &Params, limits: &Limits) -> Detector {
                match params {
                    $(Params::$variant(p) => Detector::$variant(<$module::Detector as Kind>::new(p, limits))),*
                }
            }

            /// See [`Kind::observe`].
            pub fn observe(&mut self, event: &EventRef<'_>, key: &str, watermark: Timestamp, limits: &Limits) -> Outcome {
                match self {
                    $(Detector::$variant(d) => Kind::observe(d, event, key, watermark, limits)),*
                }
            }

            /// See [`Kind::TAKES_LATE_EVENTS`].
            pub fn takes_late_events(&self) -> bool {
                match self {
                    $(Detector::$variant(_) => <$module::Detector as Kind>::TAKES_LATE_EVENTS),*
                }
            }

            /// See [`Kind::tick`].
            pub fn tick(&mut self, watermark: Timestamp, limits: &Limits, out: &mut Vec<(String, Firing)>) -> u64 {
                match self {
                    $(Detector::$variant(d) => Kind::tick(d, watermark, limits, out)),*
                }
            }

            pub fn groups(&self) -> usize {
                match self {
                    $(Detector::$variant(d) => Kind::groups(d)),*
                }
            }

            /// See [`Kind::evidence_bytes`].
            pub fn evidence_bytes(&self) -> usize {
                match self {
                    $(Detector::$variant(d) => Kind::evidence_bytes(d)),*
                }
            }

            /// See [`Kind::evictions`].
            pub fn evictions(&self) -> u64 {
                match self {
                    $(Detector::$variant(d) => Kind::evictions(d)),*
                }
            }

            /// The state to checkpoint.
            pub fn save(&self) -> SavedRef<'_> {
                match self {
                    $(Detector::$variant(d) => SavedRef::$variant(Kind::save(d))),*
                }
            }

            /// Replaces the state with a checkpointed one; false (and
            /// nothing changed) if the saved state belongs to another
            /// detector type.
            pub fn restore(&mut self, saved: Saved) -> bool {
                match (self, saved) {
                    $((Detector::$variant(d), Saved::$variant(s)) => Kind::restore(d, s),)*
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }
        }
    };
}

// The detector types. Adding one: its file, implementing `Kind`, and a line
// here (at the end: checkpoints record a type by its position).
detectors! {
    Match => match_event,
    Threshold => threshold,
    Distinct => distinct,
    Ratio => ratio,
    Spike => spike,
    NewValue => new_value,
    OffHours => off_hours,
    Sequence => sequence,
    Flatline => flatline,
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
