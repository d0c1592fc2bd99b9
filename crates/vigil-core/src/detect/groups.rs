//! Per-group state with a hard cap.
//!
//! Every stateful detector keeps its state per group key (the `group_by`
//! values) in a [`GroupTable`]: a least-recently-used map capped at the
//! rule's `max_groups`, so memory stays bounded whatever the cardinality of
//! users, IPs or tokens an attacker can invent. Evictions are counted. The
//! table also owns what every detector shares: the realert clock and the
//! evidence ring of the group.
//!
//! Past the cap, an attacker floods distinct keys to push a victim's window
//! out. Eviction therefore weighs what a group holds ([`Heat`]: the events
//! in its window, the values it learned) and takes the lightest of the least
//! recently used groups; and keys evicted lately are remembered in a Bloom
//! filter (`Evicted`), so that a key coming back (the victim's next
//! failure) outweighs the one-off keys of the flood even if the flood
//! evicted its first event.

use std::sync::Arc;

use fastbloom::BloomFilter;
use serde::{Deserialize, Serialize};

use super::bounded::BoundedLru;
use super::evidence::{Evidence, EvidenceBudget, Holders, Rings};
use super::Limits;
use crate::time::{Span, Timestamp};

/// The default cap on groups per rule.
pub const DEFAULT_MAX_GROUPS: usize = 20_000;
/// The default cap on remembered values per group (`distinct`, `new_value`).
pub const DEFAULT_MAX_VALUES: usize = 1_000;

/// How much a group's state is worth keeping: what eviction would lose.
pub trait Heat {
    fn heat(&self) -> usize;
}

impl Heat for () {
    fn heat(&self) -> usize {
        0
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Group<S> {
    pub state: S,
    last_alert: Option<Timestamp>,
    pub evidence: Evidence,
    /// The key was evicted lately and came back: a pursued key, not a
    /// one-off (not checkpointed).
    #[serde(skip)]
    returned: bool,
}

impl<S: Heat> Group<S> {
    fn weight(&self) -> usize {
        self.state.heat().max(self.evidence.len()) + usize::from(self.returned)
    }
}

impl<S> Group<S> {
    /// Whether an alert at `ts` may be sent: not within `realert` of the
    /// previous one. Records the alert if so.
    pub fn permit(&mut self, ts: Timestamp, realert: Span) -> bool {
        if let Some(last) = self.last_alert {
            if ts < last.saturating_add(realert) && realert > Span::ZERO || ts < last {
                return false;
            }
        }
        self.last_alert = Some(ts);
        true
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: Deserialize<'de>"))]
pub struct GroupTable<S> {
    map: BoundedLru<Group<S>>,
    evidence_cap: usize,
    /// A counter for metrics: not part of a checkpoint.
    #[serde(skip)]
    evictions: u64,
    /// The evidence bytes the groups share; a restored table takes the
    /// live one's ([`GroupTable::adopt`]).
    #[serde(skip, default = "unlinked")]
    budget: Arc<EvidenceBudget>,
    #[serde(skip)]
    holders: Holders,
    /// Made at the first eviction.
    #[serde(skip)]
    evicted: Option<Box<Evicted>>,
}

/// The keys of about the last `max_groups` to `2 × max_groups` evicted
/// groups: two Bloom filters (1% false positives, about 10 bits a key),
/// the older cleared and swapped out when the newer is full.
#[derive(Debug)]
struct Evicted {
    newer: BloomFilter,
    older: BloomFilter,
    in_newer: usize,
    per_filter: usize,
}

impl Evicted {
    fn new(per_filter: usize) -> Evicted {
        let filter = || BloomFilter::with_false_pos(0.01).expected_items(per_filter.max(1));
        Evicted { newer: filter(), older: filter(), in_newer: 0, per_filter }
    }

    fn insert(&mut self, key: &str) {
        if self.in_newer >= self.per_filter {
            std::mem::swap(&mut self.newer, &mut self.older);
            self.newer.clear();
            self.in_newer = 0;
        }
        self.newer.insert(key);
        self.in_newer += 1;
    }

    fn contains(&self, key: &str) -> bool {
        self.newer.contains(key) || self.older.contains(key)
    }
}

impl<S> Rings for BoundedLru<Group<S>> {
    fn ring(&mut self, key: &str) -> Option<&mut Evidence> {
        self.peek_mut(key).map(|g| &mut g.evidence)
    }
}

fn unlinked() -> Arc<EvidenceBudget> {
    EvidenceBudget::new(super::evidence::DEFAULT_BUDGET)
}

impl<S> GroupTable<S> {
    pub fn new(limits: &Limits) -> GroupTable<S> {
        GroupTable {
            map: BoundedLru::new(limits.max_groups),
            evidence_cap: limits.evidence,
            evictions: 0,
            budget: EvidenceBudget::new(limits.evidence_bytes),
            holders: Holders::default(),
            evicted: None,
        }
    }

    /// Takes over a checkpointed table, counting its evidence against this
    /// table's budget.
    pub fn adopt(&mut self, saved: GroupTable<S>) {
        let budget = self.budget.clone();
        *self = saved;
        self.budget = budget;
        for (key, group) in self.map.iter_mut() {
            self.holders.note(key, &mut group.evidence);
            group.evidence.link(&self.budget);
        }
    }

    /// Evidence bytes held by the groups.
    pub fn evidence_bytes(&self) -> usize {
        self.budget.used()
    }
}

impl<S: Heat> GroupTable<S> {
    /// The group for `key`, created by `make` if new (possibly evicting the
    /// lightest of the least recently used groups).
    pub fn entry(&mut self, key: &str, make: impl FnOnce() -> S) -> &mut Group<S> {
        if !self.map.contains(key) {
            let group = Group {
                state: make(),
                last_alert: None,
                evidence: Evidence::new(self.evidence_cap, &self.budget),
                returned: self.evicted.as_ref().is_some_and(|evicted| evicted.contains(key)),
            };
            if let Some(gone) = self.map.insert_sparing(key, group, Group::weight) {
                self.evictions += 1;
                let cap = self.map.cap();
                self.evicted.get_or_insert_with(|| Box::new(Evicted::new(cap))).insert(&gone);
            }
        }
        if self.budget.over() {
            self.holders.reclaim(&self.budget, key, &mut self.map);
        }
        if self.holders.untidy(self.map.len()) {
            self.holders.tidy(&mut self.map);
        }
        // The key was inserted just above if it was missing, and an insert
        // evicts the least recently used entry, never the newest.
        let group = self.map.get_mut(key).expect("group present after insert");
        self.holders.note(key, &mut group.evidence);
        group
    }
}

impl<S> GroupTable<S> {
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Group<S>> {
        self.map.get_mut(key)
    }

    /// All groups, without touching their recency.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Group<S>)> {
        self.map.iter()
    }

    /// All groups, without touching their recency.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Group<S>)> {
        self.map.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A count of events.
    impl Heat for u32 {
        fn heat(&self) -> usize {
            *self as usize
        }
    }

    #[test]
    fn realert_suppresses_within_the_period() {
        let limits = Limits { max_groups: 10, evidence: 0, ..crate::detect::testing::limits() };
        let mut table: GroupTable<()> = GroupTable::new(&limits);
        let group = table.entry("alice", || ());
        let t = Timestamp::from_secs(1000);
        assert!(group.permit(t, Span::from_secs(60)));
        assert!(!group.permit(Timestamp::from_secs(1059), Span::from_secs(60)));
        assert!(group.permit(Timestamp::from_secs(1060), Span::from_secs(60)));
        assert!(group.permit(Timestamp::from_secs(1060), Span::ZERO));
        assert!(!group.permit(Timestamp::from_secs(10), Span::ZERO), "an alert older than the last is not re-sent");
    }

    #[test]
    fn a_flood_of_groups_stays_within_the_evidence_budget_and_spares_a_group_under_attack() {
        let limits =
            Limits { max_groups: 20_000, evidence: 10, evidence_bytes: 100_000, ..crate::detect::testing::limits() };
        let mut table: GroupTable<()> = GroupTable::new(&limits);
        let line = format!(r#"{{"user":"u","pad":"{}"}}"#, "p".repeat(1000));
        let ring_bytes = 10 * (line.len() + 64);
        for flood in 0..5_000 {
            for second in 0..10 {
                table.entry(&format!("flood{flood}"), || ()).evidence.record(Timestamp::from_secs(second), &line);
            }
            if flood % 3 == 0 {
                table.entry("victim", || ()).evidence.record(Timestamp::from_secs(flood), r#"{"user":"victim"}"#);
            }
            assert!(table.evidence_bytes() <= 100_000 + ring_bytes, "{} after {flood}", table.evidence_bytes());
        }
        assert!(table.evidence_bytes() > 50_000, "the budget is used: {}", table.evidence_bytes());
        let victim = table.get_mut("victim").unwrap().evidence.snapshot();
        assert_eq!(victim.len(), 10, "the group under attack keeps its evidence");
        let newest = table.get_mut("flood4999").unwrap().evidence.snapshot();
        assert_eq!(newest.len(), 10, "so does the group recorded last");
        drop(table);
    }

    #[test]
    fn a_flood_of_one_off_groups_evicts_them_before_a_group_under_attack() {
        let limits = Limits { max_groups: 100, evidence: 10, ..crate::detect::testing::limits() };
        let mut table: GroupTable<u32> = GroupTable::new(&limits);
        let record = |table: &mut GroupTable<u32>, key: &str, t: i64| {
            let group = table.entry(key, || 0);
            group.state += 1;
            group.evidence.record(Timestamp::from_secs(t), "{}");
        };
        for t in 0..5 {
            record(&mut table, "victim", t);
        }
        // 150 new keys between two of the victim's events: more than the
        // table holds, so plain LRU would have evicted it each time.
        for round in 0..20 {
            for i in 0..150 {
                record(&mut table, &format!("flood{round}-{i}"), 10 + round);
            }
            record(&mut table, "victim", 100 + round);
        }
        assert_eq!(table.get_mut("victim").map(|g| g.state), Some(25), "the victim's state survived the flood");
        assert!(table.evictions() >= 2900);
        assert!(table.len() <= 100);
    }

    #[test]
    fn a_key_pursued_across_floods_larger_than_the_table_keeps_all_but_its_first_event() {
        let limits = Limits { max_groups: 100, evidence: 10, ..crate::detect::testing::limits() };
        let mut table: GroupTable<u32> = GroupTable::new(&limits);
        // More one-off keys between two of the victim's events than the
        // table holds: its first event is gone before the second arrives,
        // so only the memory of evicted keys tells it from the flood.
        for round in 0..20 {
            let victim = table.entry("victim", || 0);
            victim.state += 1;
            victim.evidence.record(Timestamp::from_secs(round), "{}");
            for i in 0..150 {
                let key = format!("flood{round}-{i}");
                let group = table.entry(&key, || 0);
                group.state += 1;
                group.evidence.record(Timestamp::from_secs(round), "{}");
            }
        }
        assert_eq!(table.get_mut("victim").map(|g| g.state), Some(19), "only the first event was lost");
        assert!(table.len() <= 100);
    }

    proptest! {
        #[test]
        fn never_exceeds_the_cap_and_counts_evictions(keys in proptest::collection::vec(0u16..500, 1..2000), cap in 1usize..50) {
            let limits = Limits { max_groups: cap, evidence: 2, ..crate::detect::testing::limits() };
            let mut table: GroupTable<u32> = GroupTable::new(&limits);
            let mut distinct = std::collections::HashSet::new();
            for key in &keys {
                table.entry(&key.to_string(), || 0).state += 1;
                distinct.insert(*key);
                prop_assert!(table.len() <= cap);
            }
            if distinct.len() <= cap {
                prop_assert_eq!(table.evictions(), 0);
            } else {
                prop_assert!(table.evictions() >= (distinct.len() - cap) as u64);
            }
        }
    }
}
