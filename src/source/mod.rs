//! Sources: where event bytes come from. A source knows nothing of JSON or
//! rules; it fills [`Batch`]es of numbered lines. Files and stdin are read
//! as JSON lines; the demo source generates a realistic stream.

pub mod demo;
pub mod lines;
pub mod read;
pub mod traffic;

/// Lines read together, stored back to back in one buffer. Batches are
/// recycled between the source and the engine, so reading allocates
/// nothing per event once warm.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    records: Vec<Record>,
}

/// One entry of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// An event's bytes: `bytes[start..end]` of the batch.
    Line { number: u64, start: usize, end: usize },
    /// A line over the size limit; its bytes were skipped, not buffered.
    Oversized { number: u64, len: usize },
}

impl Batch {
    pub fn push_line(&mut self, number: u64, line: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.records.push(Record::Line { number, start, end: self.bytes.len() });
    }

    pub fn push_oversized(&mut self, number: u64, len: usize) {
        self.records.push(Record::Oversized { number, len });
    }

    /// Each record with its bytes (empty for an oversized line).
    pub fn iter(&self) -> impl Iterator<Item = (Record, &[u8])> + '_ {
        self.records.iter().map(|record| match *record {
            Record::Line { start, end, .. } => (*record, self.bytes.get(start..end).unwrap_or(&[])),
            Record::Oversized { .. } => (*record, &[][..]),
        })
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stored_back_to_back() {
        let mut batch = Batch::default();
        batch.push_line(1, b"{\"a\":1}");
        batch.push_oversized(2, 99);
        batch.push_line(3, b"{}");
        let items: Vec<(Record, Vec<u8>)> = batch.iter().map(|(r, b)| (r, b.to_vec())).collect();
        assert_eq!(items[0].1, b"{\"a\":1}");
        assert_eq!(items[1], (Record::Oversized { number: 2, len: 99 }, Vec::new()));
        assert_eq!(items[2].1, b"{}");
        batch.clear();
        assert!(batch.is_empty());
    }
}
