//! The last N matching events of a group, kept as their raw lines so that
//! on-call sees exactly what arrived. A ring of strings whose buffers are
//! reused: once full, recording an event copies bytes but allocates nothing
//! (unless a line is longer than the one it replaces).

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Evidence {
    lines: Vec<String>,
    next: usize,
    cap: usize,
}

impl Evidence {
    pub fn new(cap: usize) -> Evidence {
        Evidence { lines: Vec::new(), next: 0, cap }
    }

    pub fn record(&mut self, line: &str) {
        if self.cap == 0 {
            return;
        }
        if self.lines.len() < self.cap {
            self.lines.push(line.to_owned());
        } else {
            let slot = &mut self.lines[self.next];
            slot.clear();
            slot.push_str(line);
        }
        self.next = (self.next + 1) % self.cap;
    }

    /// The recorded lines, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        if self.lines.len() < self.cap {
            return self.lines.clone();
        }
        let (newer, older) = self.lines.split_at(self.next);
        older.iter().chain(newer).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_in_order() {
        let mut ev = Evidence::new(3);
        for line in ["a", "b", "c", "d", "e"] {
            ev.record(line);
        }
        assert_eq!(ev.snapshot(), ["c", "d", "e"]);
        let mut none = Evidence::new(0);
        none.record("x");
        assert!(none.snapshot().is_empty());
    }
}
