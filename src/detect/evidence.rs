//! The last N matching events of a group, kept as their raw lines so that
//! on-call sees exactly what arrived, with their event times so that an
//! alert shows only the events of its own window. A ring of strings whose
//! buffers are reused: once full, recording an event copies bytes but
//! allocates nothing (unless a line is longer than the one it replaces).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Evidence {
    lines: Vec<(Timestamp, String)>,
    next: usize,
    cap: usize,
}

impl Evidence {
    pub fn new(cap: usize) -> Evidence {
        Evidence { lines: Vec::new(), next: 0, cap }
    }

    pub fn record(&mut self, ts: Timestamp, line: &str) {
        if self.cap == 0 {
            return;
        }
        if self.lines.len() < self.cap {
            self.lines.push((ts, line.to_owned()));
        } else {
            let (slot_ts, slot) = &mut self.lines[self.next];
            *slot_ts = ts;
            slot.clear();
            slot.push_str(line);
        }
        self.next = (self.next + 1) % self.cap;
    }

    /// The recorded lines, in the order they were recorded.
    fn ordered(&self) -> impl Iterator<Item = &(Timestamp, String)> {
        let (newer, older) = self.lines.split_at(if self.lines.len() < self.cap { 0 } else { self.next });
        older.iter().chain(newer)
    }

    /// Every recorded line, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        self.ordered().map(|(_, line)| line.clone()).collect()
    }

    /// The recorded lines of events at or after `from`: the evidence of a
    /// window that starts there, not the group's older history.
    pub fn since(&self, from: Timestamp) -> Vec<String> {
        self.ordered().filter(|(ts, _)| *ts >= from).map(|(_, line)| line.clone()).collect()
    }

    pub fn clear(&mut self) {
        self.lines.clear();
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_in_order() {
        let mut ev = Evidence::new(3);
        for (i, line) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            ev.record(Timestamp::from_secs(i as i64), line);
        }
        assert_eq!(ev.snapshot(), ["c", "d", "e"]);
        let mut none = Evidence::new(0);
        none.record(Timestamp::from_secs(0), "x");
        assert!(none.snapshot().is_empty());
    }

    #[test]
    fn since_keeps_only_the_window() {
        let mut ev = Evidence::new(4);
        for (secs, line) in [(0, "days ago"), (500, "a"), (400, "late"), (600, "b")] {
            ev.record(Timestamp::from_secs(secs), line);
        }
        assert_eq!(ev.since(Timestamp::from_secs(400)), ["a", "late", "b"]);
        ev.record(Timestamp::from_secs(700), "c");
        assert_eq!(ev.since(Timestamp::from_secs(0)), ["a", "late", "b", "c"], "oldest first once full");
    }
}
