//! Incidents: what an alert is about while it goes on.
//!
//! A detector fires once per `realert`, at the moment its condition first
//! holds: five failed logins when the attack will make 150. So the engine
//! keeps, per rule and group, the incident that first alert opened. Every
//! later matching event of the group adds to its event count, its top
//! values and its evidence; what the detector would have said (the count,
//! sum or distinct values in the window at that moment) raises its peak.
//! The alert is sent again with the same id and the next `update` number
//! when realert ends and there is news, and a last time (`resolved`) once
//! the group has been quiet for the rule's hold: the longer of its window
//! and its realert, after which the detector would page afresh.
//!
//! Memory is bounded: at most the rule's `max_groups` incidents, each with
//! [`TOP_SLOTS`] counters per top field and the rule's evidence ring.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::detect::evidence::{Evidence, EvidenceBudget, Holders, Rings};
use crate::detect::Firing;
use crate::event::{Decoder, EventRef};
use crate::ruleset::Rule;
use crate::time::{Span, Timestamp};

/// Counters kept per top field: exact while a field has at most this many
/// values in the incident; beyond, the heaviest are kept (space-saving)
/// and each is listed with the events it certainly had.
pub const TOP_SLOTS: usize = 10;
/// Values an alert lists per top field.
pub const TOP_LISTED: usize = 5;
/// Bytes kept of one top value.
const MAX_VALUE_BYTES: usize = 200;

/// The most frequent values of one field among an incident's events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopValues {
    /// Value, count, and how much of the count it may owe to the values it
    /// displaced.
    counts: Vec<(String, u64, u64)>,
}

impl TopValues {
    pub fn record(&mut self, value: &str) {
        let value = clip(value);
        if let Some(slot) = self.counts.iter_mut().find(|(v, _, _)| v == value) {
            slot.1 += 1;
        } else if self.counts.len() < TOP_SLOTS {
            self.counts.push((value.to_owned(), 1, 0));
        } else if let Some(slot) = self.counts.iter_mut().min_by_key(|(_, count, _)| *count) {
            slot.0.clear();
            slot.0.push_str(value);
            slot.2 = slot.1;
            slot.1 += 1;
        }
    }

    /// The most frequent values first (ties by value), at most
    /// [`TOP_LISTED`], each with the number of events it certainly had.
    pub fn listed(&self) -> Vec<(String, u64)> {
        let mut sorted: Vec<(String, u64)> = self.counts.iter().map(|(v, n, err)| (v.clone(), n - err)).collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted.truncate(TOP_LISTED);
        sorted
    }
}

fn clip(value: &str) -> &str {
    if value.len() <= MAX_VALUE_BYTES {
        return value;
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The end of an incident's life the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Realert is over and events came since the last notice.
    Update,
    /// The group was quiet for the hold: the incident is over.
    Resolved,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Incident {
    /// The id of the first alert, which every update repeats.
    pub id: String,
    pub first_ts: Timestamp,
    /// The latest event of the incident.
    pub last_ts: Timestamp,
    /// The latest time the rule's condition held.
    last_true: Timestamp,
    /// Event time of the latest notice.
    noticed_at: Timestamp,
    /// Events of the incident: the window's when it opened, and each
    /// later one at which the condition held.
    pub events: u64,
    events_noticed: u64,
    /// Notices sent after the first.
    pub update: u32,
    /// The largest count the detector reported (the window's, at a moment).
    pub count: Option<u64>,
    /// The score of largest magnitude.
    pub score: Option<f64>,
    /// The latest observation, baseline and value.
    pub observed: Option<f64>,
    pub baseline: Option<f64>,
    pub value: Option<String>,
    pub top: Vec<TopValues>,
    evidence: Evidence,
    /// Reused to write a top field's value: no allocation per event.
    #[serde(skip)]
    scratch: String,
}

impl Incident {
    /// The incident of the alert `id` that `firing` raised; its events and
    /// top values start with the window's evidence (decoded again by
    /// `decoder`, so top fields may be joined ones).
    pub fn open(
        rule: &Rule,
        id: String,
        firing: &Firing,
        decoder: &mut Decoder,
        budget: &Arc<EvidenceBudget>,
    ) -> Incident {
        let mut top = vec![TopValues::default(); rule.top.len()];
        let mut evidence = Evidence::new(rule.limits.evidence, budget);
        let mut scratch = String::new();
        for line in &firing.evidence {
            if let Ok(event) = decoder.decode(line) {
                record_top(rule, &mut top, &event, &mut scratch);
                evidence.record(event.ts, line);
            }
        }
        let events = firing.events.unwrap_or(firing.evidence.len() as u64).max(1);
        Incident {
            id,
            first_ts: firing.first_ts,
            last_ts: firing.ts,
            last_true: firing.ts,
            noticed_at: firing.ts,
            events,
            events_noticed: events,
            update: 0,
            count: firing.count,
            score: firing.score,
            observed: firing.observed,
            baseline: firing.baseline,
            value: firing.value.clone(),
            top,
            evidence,
            scratch,
        }
    }

    /// An event of the group at which the condition holds.
    pub fn add(&mut self, rule: &Rule, event: &EventRef<'_>) {
        self.events += 1;
        self.last_ts = self.last_ts.max(event.ts);
        self.first_ts = self.first_ts.min(event.ts);
        record_top(rule, &mut self.top, event, &mut self.scratch);
        self.evidence.record(event.ts, event.line);
    }

    /// What the detector would have said at this event.
    pub fn measure(&mut self, firing: &Firing) {
        self.last_true = self.last_true.max(firing.ts);
        self.count = match (self.count, firing.count) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if firing.score.is_some_and(|s| self.score.is_none_or(|old| s.abs() > old.abs())) {
            self.score = firing.score;
        }
        if firing.observed.is_some() {
            self.observed = firing.observed;
        }
        if firing.baseline.is_some() {
            self.baseline = firing.baseline;
        }
        if firing.value.is_some() {
            self.value.clone_from(&firing.value);
        }
    }

    /// Whether events came since the last notice.
    pub fn has_news(&self) -> bool {
        self.events > self.events_noticed
    }

    /// What is due at `watermark`, if anything.
    pub fn due(&self, watermark: Timestamp, hold: Span, realert: Span) -> Option<Change> {
        if watermark > self.last_true.saturating_add(hold) && watermark > self.last_ts.saturating_add(realert) {
            Some(Change::Resolved)
        } else if self.has_news() && watermark >= self.noticed_at.saturating_add(realert) {
            Some(Change::Update)
        } else {
            None
        }
    }

    /// Records that a notice goes out now; returns its update number.
    pub fn notice(&mut self, at: Timestamp) -> u32 {
        self.update += 1;
        self.noticed_at = at;
        self.events_noticed = self.events;
        self.update
    }

    /// The incident's numbers as a detector's finding, for an alert.
    pub fn firing(&self, status: crate::detect::Status) -> Firing {
        Firing {
            ts: self.last_ts,
            first_ts: self.first_ts,
            count: self.count,
            events: Some(self.events),
            score: self.score,
            observed: self.observed,
            baseline: self.baseline,
            value: self.value.clone(),
            evidence: self.evidence.snapshot(),
            status,
        }
    }
}

fn record_top(rule: &Rule, top: &mut [TopValues], event: &EventRef<'_>, text: &mut String) {
    for (values, (_, field)) in top.iter_mut().zip(&rule.top) {
        text.clear();
        if event.get(*field).write_text(text) {
            values.record(text);
        }
    }
}

/// The open incidents of one rule, by group key. A `BTreeMap`, so that
/// ticks visit them in the same order in every replay.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Incidents {
    open: BTreeMap<String, Incident>,
    /// The evidence bytes the incidents share, as a rule's groups do.
    #[serde(skip)]
    budget: Option<Arc<EvidenceBudget>>,
    #[serde(skip)]
    holders: Holders,
}

impl Rings for BTreeMap<String, Incident> {
    fn ring(&mut self, key: &str) -> Option<&mut Evidence> {
        self.get_mut(key).map(|i| &mut i.evidence)
    }
}

impl Incidents {
    /// The budget new incidents' evidence counts against.
    pub fn budget(&mut self, limit: usize) -> Arc<EvidenceBudget> {
        self.budget.get_or_insert_with(|| EvidenceBudget::new(limit)).clone()
    }

    /// Bytes of evidence the incidents hold.
    pub fn evidence_bytes(&self) -> usize {
        self.budget.as_ref().map_or(0, |b| b.used())
    }

    /// Takes over checkpointed incidents, counting their evidence.
    pub fn adopt(&mut self, saved: Incidents, limit: usize) {
        let budget = self.budget(limit);
        self.open = saved.open;
        for (key, incident) in &mut self.open {
            self.holders.note(key, &mut incident.evidence);
            incident.evidence.link(&budget);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// The incident of `key`, to add an event to; first clears the
    /// evidence of cold incidents while the rule is over its budget.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Incident> {
        if self.open.is_empty() {
            return None;
        }
        if let Some(budget) = self.budget.as_ref().filter(|b| b.over()) {
            self.holders.reclaim(budget, key, &mut self.open);
        }
        if self.holders.untidy(self.open.len()) {
            self.holders.tidy(&mut self.open);
        }
        let incident = self.open.get_mut(key)?;
        self.holders.note(key, &mut incident.evidence);
        Some(incident)
    }

    /// Opens an incident; past `cap` the one quiet the longest is closed
    /// first and returned, so that its last notice can go out.
    pub fn insert(&mut self, key: &str, incident: Incident, cap: usize) -> Option<(String, Incident)> {
        let closed = if self.open.len() >= cap.max(1) && !self.open.contains_key(key) {
            let oldest = self.open.iter().min_by_key(|(_, i)| i.last_ts).map(|(k, _)| k.clone());
            oldest.and_then(|k| self.open.remove_entry(&k))
        } else {
            None
        };
        let mut incident = incident;
        self.holders.note(key, &mut incident.evidence);
        self.open.insert(key.to_owned(), incident);
        closed
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Incident)> {
        self.open.iter_mut()
    }

    pub fn remove(&mut self, key: &str) -> Option<Incident> {
        self.open.remove(key)
    }

    /// Every open incident, in key order, leaving none.
    pub fn drain(&mut self) -> impl Iterator<Item = (String, Incident)> {
        std::mem::take(&mut self.open).into_iter()
    }
}

/// The top values of an incident as an alert carries them.
pub type Top = Vec<(Arc<str>, Vec<(String, u64)>)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_values_are_exact_within_the_slots_and_keep_the_heaviest_beyond() {
        let mut top = TopValues::default();
        for _ in 0..150 {
            top.record("203.0.113.5");
        }
        for i in 0..3 {
            top.record(&format!("198.51.100.{i}"));
        }
        assert_eq!(top.listed()[0], ("203.0.113.5".to_owned(), 150));
        assert_eq!(top.listed()[1], ("198.51.100.0".to_owned(), 1));
        for i in 0..100 {
            top.record(&format!("192.0.2.{i}"));
        }
        let listed = top.listed();
        assert_eq!(listed[0], ("203.0.113.5".to_owned(), 150), "a heavy hitter survives a hundred others");
        assert_eq!(listed.len(), TOP_LISTED);
        assert!(listed[1..].iter().all(|(_, n)| *n <= 1), "no value is credited with others' events: {listed:?}");
    }

    #[test]
    fn long_values_are_clipped_on_a_character_boundary() {
        let mut top = TopValues::default();
        top.record(&"é".repeat(300));
        let (value, _) = &top.listed()[0];
        assert!(value.len() <= MAX_VALUE_BYTES && value.chars().all(|c| c == 'é'));
    }

    #[test]
    fn due_updates_after_realert_with_news_and_resolves_after_the_hold() {
        let t = Timestamp::from_secs;
        let mut incident = Incident {
            id: "x".into(),
            first_ts: t(0),
            last_ts: t(10),
            last_true: t(10),
            noticed_at: t(10),
            events: 5,
            events_noticed: 5,
            update: 0,
            count: Some(5),
            score: None,
            observed: None,
            baseline: None,
            value: None,
            top: Vec::new(),
            evidence: Evidence::unbounded(0),
            scratch: String::new(),
        };
        let (hold, realert) = (Span::from_secs(300), Span::from_secs(120));
        assert_eq!(incident.due(t(200), hold, realert), None, "no news");
        incident.events += 1;
        incident.last_ts = t(100);
        assert_eq!(incident.due(t(129), hold, realert), None, "within realert");
        assert_eq!(incident.due(t(130), hold, realert), Some(Change::Update));
        assert_eq!(incident.notice(t(130)), 1);
        assert_eq!(incident.due(t(310), hold, realert), None, "the hold runs from the last time it held");
        assert_eq!(incident.due(t(311), hold, realert), Some(Change::Resolved));
    }
}
