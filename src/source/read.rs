//! The readers of the local sources (a file, stdin, the demo stream): each
//! fills batches and hands them off, whoever takes them. The daemon's
//! source thread runs one and hands its batches to the engine thread.

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::info;

use super::demo::{self, DemoSpec};
use super::lines::{LineReader, Next};
use super::Batch;
use crate::config::Source;

/// Lines per batch, at most: large enough to amortize the hand-off, small
/// enough that a batch takes well under a millisecond.
pub const BATCH: usize = 1024;

/// Takes a full batch and gives an empty one back (a recycled one where it
/// can), or None once nobody takes batches any more.
pub trait Handoff {
    fn hand_off(&mut self, full: Batch) -> Option<Batch>;
}

/// The batch being filled, and where it goes once full.
struct Batches<'a, H> {
    handoff: &'a mut H,
    current: Batch,
}

impl<H: Handoff> Batches<'_, H> {
    /// Hands the current batch off; false once nobody takes it.
    fn send(&mut self) -> bool {
        if self.current.is_empty() {
            return true;
        }
        let full = std::mem::take(&mut self.current);
        match self.handoff.hand_off(full) {
            Some(empty) => {
                self.current = empty;
                true
            }
            None => false,
        }
    }
}

/// Reads `source` until it ends, `stopping` is set or nobody takes batches.
pub fn read_source(source: &Source, max_bytes: usize, handoff: &mut impl Handoff, stopping: &AtomicBool) -> Result<()> {
    let mut batches = Batches { handoff, current: Batch::default() };
    match source {
        Source::Demo { speed, seed } => read_demo(*speed, *seed, &mut batches, stopping),
        Source::Stdin => read_lines(io::stdin().lock(), max_bytes, &mut batches, stopping),
        Source::File(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            read_lines(file, max_bytes, &mut batches, stopping)
        }
        Source::Kafka(_) => anyhow::bail!("a Kafka source runs on its own thread"),
    }
}

fn read_lines(
    input: impl Read,
    max_bytes: usize,
    batches: &mut Batches<'_, impl Handoff>,
    stopping: &AtomicBool,
) -> Result<()> {
    let mut reader = LineReader::new(BufReader::with_capacity(1 << 16, input), max_bytes);
    let mut buf = Vec::new();
    while let Some(next) = reader.next_into(&mut buf)? {
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        match next {
            Next::Line(number) => batches.current.push_line(number, &buf),
            Next::Oversized { number, len } => batches.current.push_oversized(number, len),
        }
        // A live input is flushed as soon as it has nothing more buffered,
        // so an alert never waits for the next event.
        let flush = batches.current.len() >= BATCH || !reader.has_buffered();
        if flush && !batches.send() {
            return Ok(());
        }
    }
    batches.send();
    Ok(())
}

fn read_demo(speed: f64, seed: u64, batches: &mut Batches<'_, impl Handoff>, stopping: &AtomicBool) -> Result<()> {
    let stream = demo::generate(&DemoSpec { seed, ..DemoSpec::default() });
    info!(events = stream.events.len(), speed, "Replaying the demo stream: two weeks of history, then a live day");
    let started = Instant::now();
    for (number, (ts, line)) in stream.events.iter().enumerate() {
        if stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let due = demo::delay(stream.live_from, *ts, speed);
        if due > started.elapsed() {
            if !batches.send() {
                return Ok(());
            }
            while started.elapsed() < due {
                if stopping.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(due.saturating_sub(started.elapsed()).min(Duration::from_millis(200)));
            }
        }
        batches.current.push_line(number as u64 + 1, line.as_bytes());
        if batches.current.len() >= BATCH && !batches.send() {
            return Ok(());
        }
    }
    batches.send();
    Ok(())
}
