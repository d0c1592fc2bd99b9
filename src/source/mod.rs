//! Sources: where event bytes come from. A source knows nothing of JSON or
//! rules; it yields numbered records of bytes. Files and stdin are read as
//! JSON lines; the demo source generates a realistic stream.

pub mod demo;
pub mod lines;

/// One record from a source: an event's bytes, or the note that a line was
/// too large to keep (its bytes were skipped, not buffered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Line { number: u64, bytes: Vec<u8> },
    Oversized { number: u64, len: usize },
}
