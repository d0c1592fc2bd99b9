//! A sliding event-time window of weighted entries.
//!
//! Entries are `(ts, a, b)`: `a` is the counted weight (1 per event, or a
//! field's value for sums), `b` a second accumulator (the denominator of a
//! ratio). Entries are kept sorted by time, so an event that arrives late
//! (within the allowed lateness) lands where it belongs. Memory is bounded
//! by `max_entries`: beyond it the two oldest entries are merged into one,
//! keeping sums exact and moving weight slightly later in time, which can
//! only make a detector fire later, never spuriously.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::time::{Span, Timestamp};

/// The default cap on entries per group window.
pub const DEFAULT_MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub ts: Timestamp,
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    entries: VecDeque<Entry>,
    max_entries: usize,
}

impl super::groups::Heat for Window {
    fn heat(&self) -> usize {
        self.len()
    }
}

/// Totals over a span of the window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    pub a: f64,
    pub b: f64,
    pub events: u64,
    pub first: Option<Timestamp>,
}

impl Default for Window {
    fn default() -> Self {
        Window::new(DEFAULT_MAX_ENTRIES)
    }
}

impl Window {
    pub fn new(max_entries: usize) -> Window {
        Window { entries: VecDeque::new(), max_entries: max_entries.max(2) }
    }

    pub fn insert(&mut self, entry: Entry) {
        let at = self.entries.iter().rposition(|e| e.ts <= entry.ts).map_or(0, |i| i + 1);
        self.entries.insert(at, entry);
        if self.entries.len() > self.max_entries {
            if let Some(oldest) = self.entries.pop_front() {
                if let Some(next) = self.entries.front_mut() {
                    next.a += oldest.a;
                    next.b += oldest.b;
                }
            }
        }
    }

    /// Drops entries older than `horizon`: no window an acceptable event
    /// can fall in reaches back that far.
    pub fn prune(&mut self, horizon: Timestamp) {
        while self.entries.front().is_some_and(|e| e.ts < horizon) {
            self.entries.pop_front();
        }
    }

    /// Totals of the entries with `from <= ts <= to`.
    pub fn totals(&self, from: Timestamp, to: Timestamp) -> Totals {
        let mut totals = Totals::default();
        for entry in self.entries.iter().rev().skip_while(|e| e.ts > to).take_while(|e| e.ts >= from) {
            totals.a += entry.a;
            totals.b += entry.b;
            totals.events += 1;
            totals.first = Some(entry.ts);
        }
        totals
    }

    /// The largest total `a` over any window of length `span` that contains
    /// `ts`: the window ending at `ts` when events arrive in order, or one
    /// that a late event completes.
    pub fn best_containing(&self, ts: Timestamp, span: Span) -> Totals {
        let latest = self.entries.back().map_or(ts, |e| e.ts);
        if latest <= ts {
            return self.totals(ts.saturating_sub(span), ts);
        }
        let lo = ts.saturating_sub(span);
        let hi = ts.saturating_add(span);
        let candidates: Vec<Entry> = self.entries.iter().filter(|e| e.ts >= lo && e.ts <= hi).copied().collect();
        let mut best = Totals::default();
        let mut start = 0;
        let mut running = Totals::default();
        for entry in &candidates {
            running.a += entry.a;
            running.b += entry.b;
            running.events += 1;
            while candidates[start].ts < entry.ts.saturating_sub(span) {
                running.a -= candidates[start].a;
                running.b -= candidates[start].b;
                running.events -= 1;
                start += 1;
            }
            let contains = candidates[start].ts <= ts && entry.ts >= ts;
            if contains && running.a > best.a {
                best = Totals { first: Some(candidates[start].ts), ..running };
            }
        }
        best
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn entry(secs: i64) -> Entry {
        Entry { ts: at(secs), a: 1.0, b: 1.0 }
    }

    #[test]
    fn window_edges_are_inclusive() {
        let mut w = Window::default();
        for s in [0, 100, 200, 300] {
            w.insert(entry(s));
        }
        assert_eq!(w.best_containing(at(300), Span::from_secs(300)).a, 4.0);
        assert_eq!(w.best_containing(at(300), Span::from_secs(299)).a, 3.0);
    }

    #[test]
    fn a_late_event_can_complete_an_earlier_window() {
        let mut w = Window::default();
        for s in [0, 10, 20, 1000] {
            w.insert(entry(s));
        }
        w.insert(entry(30));
        let best = w.best_containing(at(30), Span::from_secs(60));
        assert_eq!((best.a, best.first), (4.0, Some(at(0))));
    }

    #[test]
    fn merging_keeps_totals() {
        let mut w = Window::new(4);
        for s in 0..10 {
            w.insert(entry(s));
        }
        assert_eq!(w.len(), 4);
        assert_eq!(w.totals(at(0), at(100)).a, 10.0);
    }

    proptest! {
        /// Incremental totals equal a recomputation from the raw events.
        #[test]
        fn totals_match_recompute(mut times in proptest::collection::vec(0i64..10_000, 1..200), from in 0i64..10_000, len in 0i64..5_000) {
            let mut w = Window::new(10_000);
            for &t in &times {
                w.insert(entry(t));
            }
            times.sort();
            let expected = times.iter().filter(|&&t| t >= from && t <= from + len).count() as f64;
            prop_assert_eq!(w.totals(at(from), at(from + len)).a, expected);
            w.prune(at(from));
            prop_assert!(w.entries.iter().all(|e| e.ts >= at(from)));
        }

        #[test]
        fn best_window_matches_brute_force(times in proptest::collection::vec(0i64..1_000, 1..60), span in 1i64..300) {
            let mut w = Window::new(10_000);
            for &t in &times {
                w.insert(entry(t));
            }
            let probe = times[times.len() / 2];
            let brute = (probe - span..=probe)
                .map(|s| times.iter().filter(|&&t| t >= s && t <= s + span).count())
                .max()
                .unwrap_or(0) as f64;
            prop_assert_eq!(w.best_containing(at(probe), Span::from_secs(span)).a, brute);
        }
    }
}
