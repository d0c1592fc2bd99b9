//! The last N matching events of a group, kept as their raw lines so that
//! on-call sees exactly what arrived, with their event times so that an
//! alert shows only the events of its own window. A ring of strings whose
//! buffers are reused: once full, recording an event copies bytes but
//! allocates nothing (unless a line is longer than the one it replaces).
//!
//! Evidence is bounded by bytes as well as by count, because events are
//! attacker-sized: 500 failed logins each carrying a 1 MB field would
//! otherwise hold 500 MB per ring.
//! - A line longer than [`LINE_BYTES`] is kept compacted: long values cut,
//!   fields beyond the budget dropped, and `vigil_truncated` giving the
//!   original size; it stays valid JSON.
//! - The rings of one rule's groups (and, apart, of its open incidents)
//!   share an [`EvidenceBudget`] (`limits.evidence_bytes`). Over it, the
//!   table clears the rings of cold groups ([`Holders`], a CLOCK): a flood
//!   of new groups takes evidence from groups nobody records into, not from
//!   a group under attack. The rule's evidence stays within its budget plus
//!   one ring.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::time::Timestamp;

/// The longest evidence line kept as it is.
pub const LINE_BYTES: usize = 2048;
/// Long string values of a compacted line are cut to this many bytes.
const VALUE_BYTES: usize = 256;
/// The default `limits.evidence_bytes` of a rule.
pub const DEFAULT_BUDGET: usize = 16 << 20;
/// What a line costs beyond its text (timestamp, string header).
const LINE_OVERHEAD: usize = 40;

/// The evidence bytes one rule may hold, shared by its rings.
#[derive(Debug)]
pub struct EvidenceBudget {
    limit: usize,
    used: AtomicUsize,
}

impl EvidenceBudget {
    pub fn new(limit: usize) -> Arc<EvidenceBudget> {
        Arc::new(EvidenceBudget { limit, used: AtomicUsize::new(0) })
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn over(&self) -> bool {
        self.used() > self.limit
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Evidence {
    lines: Vec<(Timestamp, String)>,
    next: usize,
    cap: usize,
    /// The rule's budget; linked again after a restore ([`Evidence::link`]).
    #[serde(skip)]
    budget: Option<Arc<EvidenceBudget>>,
    /// The bytes this ring counts against the budget.
    #[serde(skip)]
    held: usize,
    /// Recorded into since the reclaimer last looked ([`Holders`]).
    #[serde(skip)]
    referenced: bool,
    /// Its key is in the table's [`Holders`].
    #[serde(skip)]
    noted: bool,
}

impl Evidence {
    pub fn new(cap: usize, budget: &Arc<EvidenceBudget>) -> Evidence {
        Evidence {
            lines: Vec::new(),
            next: 0,
            cap,
            budget: Some(budget.clone()),
            held: 0,
            referenced: false,
            noted: false,
        }
    }

    /// A ring outside any budget (tests, incidents of rules without evidence).
    pub fn unbounded(cap: usize) -> Evidence {
        Evidence { lines: Vec::new(), next: 0, cap, budget: None, held: 0, referenced: false, noted: false }
    }

    /// Counts a restored ring against `budget`.
    pub fn link(&mut self, budget: &Arc<EvidenceBudget>) {
        self.release();
        self.budget = Some(budget.clone());
        let held = self.lines.iter().map(|(_, l)| cost(l)).sum();
        self.charge(held);
    }

    pub fn record(&mut self, ts: Timestamp, line: &str) {
        if self.cap == 0 {
            return;
        }
        let line = compact(line);
        let need = cost(&line);
        self.referenced = true;
        if self.lines.len() < self.cap {
            self.lines.push((ts, line.into_owned()));
            self.charge(need);
        } else {
            let (slot_ts, text) = &mut self.lines[self.next];
            let freed = cost(text);
            *slot_ts = ts;
            text.clear();
            text.push_str(&line);
            self.uncharge(freed);
            self.charge(need);
        }
        self.next = (self.next + 1) % self.cap;
    }

    fn charge(&mut self, bytes: usize) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_add(bytes, Ordering::Relaxed);
        }
        self.held += bytes;
    }

    fn uncharge(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.held -= bytes;
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    fn release(&mut self) {
        let held = self.held;
        self.uncharge(held);
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

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Lines held: how much of its group's story the ring tells.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn clear(&mut self) {
        self.release();
        self.lines.clear();
        self.next = 0;
    }
}

/// A table of rings by key, looked up without touching recency.
pub trait Rings {
    fn ring(&mut self, key: &str) -> Option<&mut Evidence>;
}

/// The keys of a table's rings that hold lines, in the order they started
/// to: the hand of a CLOCK that, while the rule is over its budget, clears
/// the rings not recorded into since it last passed (cold groups) and
/// gives the others a second chance. Each step pops a key that some step
/// pushed, so reclaiming costs O(1) per recorded line, amortized.
#[derive(Debug, Default)]
pub struct Holders {
    keys: std::collections::VecDeque<Box<str>>,
}

impl Holders {
    /// `key`'s ring is about to be recorded into: the hand will pass it.
    pub fn note(&mut self, key: &str, ring: &mut Evidence) {
        if ring.cap > 0 && !ring.noted {
            ring.noted = true;
            self.keys.push_back(key.into());
        }
    }

    /// Whether keys of groups that are gone should be dropped ([`Holders::tidy`]).
    pub fn untidy(&self, live: usize) -> bool {
        self.keys.len() > 2 * live + 64
    }

    /// Drops the keys of rings that are gone.
    pub fn tidy(&mut self, rings: &mut impl Rings) {
        self.keys.retain(|k| rings.ring(k).is_some());
    }

    /// Clears cold rings until the budget holds, never `keep`'s.
    pub fn reclaim(&mut self, budget: &EvidenceBudget, keep: &str, rings: &mut impl Rings) {
        let mut steps = 2 * self.keys.len() + 1;
        while budget.over() && steps > 0 {
            steps -= 1;
            let Some(key) = self.keys.pop_front() else { return };
            let Some(evidence) = rings.ring(&key) else { continue };
            if evidence.lines.is_empty() {
                evidence.noted = false;
            } else if evidence.referenced || *key == *keep {
                evidence.referenced = false;
                self.keys.push_back(key);
            } else {
                evidence.noted = false;
                evidence.clear();
            }
        }
    }
}

impl Drop for Evidence {
    fn drop(&mut self) {
        self.release();
    }
}

fn cost(line: &str) -> usize {
    line.len() + LINE_OVERHEAD
}

/// `line` as it is if short, else compacted below [`LINE_BYTES`]: each
/// top-level string longer than `VALUE_BYTES` cut (ending `…`), each
/// longer object or array replaced by a note of its size, fields dropped
/// once the line is full, and `vigil_truncated` set to the original size.
/// A line that is not a JSON object becomes `{"vigil_truncated": N}`.
pub fn compact(line: &str) -> Cow<'_, str> {
    if line.len() <= LINE_BYTES {
        return Cow::Borrowed(line);
    }
    let marker = format!("\"vigil_truncated\":{}}}", line.len());
    let mut out = String::with_capacity(LINE_BYTES);
    out.push('{');
    if let Ok(Fields(fields)) = serde_json::from_str::<Fields<'_>>(line) {
        for (key, value) in fields {
            let value = shorten(value.get());
            let key = serde_json::to_string(&key).unwrap_or_default();
            if out.len() + key.len() + value.len() + 2 + marker.len() > LINE_BYTES {
                continue;
            }
            out.push_str(&key);
            out.push(':');
            out.push_str(&value);
            out.push(',');
        }
    }
    out.push_str(&marker);
    Cow::Owned(out)
}

/// A JSON object's fields in their order, values unparsed.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A JSON value of a compacted line.
fn shorten(raw: &str) -> Cow<'_, str> {
    if raw.len() <= VALUE_BYTES {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<String>(raw) {
        Ok(text) => {
            let mut end = VALUE_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Cow::Owned(serde_json::to_string(&format!("{}…", &text[..end])).unwrap_or_default())
        }
        Err(_) => Cow::Owned(format!("\"<{} bytes>\"", raw.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cap: usize) -> Evidence {
        Evidence::unbounded(cap)
    }

    #[test]
    fn keeps_the_last_n_in_order() {
        let mut ev = ring(3);
        for (i, line) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            ev.record(Timestamp::from_secs(i as i64), line);
        }
        assert_eq!(ev.snapshot(), ["c", "d", "e"]);
        let mut none = ring(0);
        none.record(Timestamp::from_secs(0), "x");
        assert!(none.snapshot().is_empty());
    }

    #[test]
    fn since_keeps_only_the_window() {
        let mut ev = ring(4);
        for (secs, line) in [(0, "days ago"), (500, "a"), (400, "late"), (600, "b")] {
            ev.record(Timestamp::from_secs(secs), line);
        }
        assert_eq!(ev.since(Timestamp::from_secs(400)), ["a", "late", "b"]);
        ev.record(Timestamp::from_secs(700), "c");
        assert_eq!(ev.since(Timestamp::from_secs(0)), ["a", "late", "b", "c"], "oldest first once full");
    }

    #[test]
    fn a_long_line_is_compacted_into_valid_json_that_says_so() {
        let big = "x".repeat(1 << 20);
        let line = format!(
            r#"{{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"alice","note":"{big}","blob":{{"a":"{big}"}},"outcome":"failure"}}"#
        );
        let kept = compact(&line);
        assert!(kept.len() <= LINE_BYTES, "{}", kept.len());
        let value: serde_json::Value = serde_json::from_str(&kept).unwrap();
        assert_eq!(value["user"], "alice");
        assert_eq!(value["outcome"], "failure");
        assert_eq!(value["vigil_truncated"], line.len());
        assert!(value["note"].as_str().unwrap().ends_with('…'));
        assert_eq!(value["blob"], format!("<{} bytes>", big.len() + 8));

        // Many fields: those that do not fit are dropped, the line stays whole.
        let wide: Vec<String> = (0..500).map(|i| format!(r#""field{i}":"{}""#, "v".repeat(40))).collect();
        let wide = format!("{{{}}}", wide.join(","));
        let kept: serde_json::Value = serde_json::from_str(&compact(&wide)).unwrap();
        assert!(kept.as_object().unwrap().len() > 10);
        assert_eq!(kept["vigil_truncated"], wide.len());
        // Not an object: only the note.
        let list = format!("[\"{big}\"]");
        assert_eq!(compact(&list), format!("{{\"vigil_truncated\":{}}}", list.len()));
        // Cut on a character boundary.
        let wide_chars = format!(r#"{{"note":"{}"}}"#, "é".repeat(2000));
        let kept: serde_json::Value = serde_json::from_str(&compact(&wide_chars)).unwrap();
        assert!(kept["note"].as_str().unwrap().starts_with("éé"));
    }

    #[test]
    fn a_restored_ring_counts_against_the_budget_again() {
        let budget = EvidenceBudget::new(1_000_000);
        let mut ev = Evidence::new(3, &budget);
        ev.record(Timestamp::from_secs(1), "abc");
        let saved = serde_json::to_string(&ev).unwrap();
        drop(ev);
        assert_eq!(budget.used(), 0);
        let mut restored: Evidence = serde_json::from_str(&saved).unwrap();
        restored.link(&budget);
        assert_eq!(budget.used(), 3 + LINE_OVERHEAD);
        assert_eq!(restored.snapshot(), ["abc"]);
    }
}
