//! The replay's guard against an event far ahead of its stream.
//!
//! A replay has no wall clock to bound event time against, so one event
//! dated next year would move its source's frontier there and make every
//! later event late. Instead, an event more than `tolerance` (the
//! lateness) ahead of what its source delivered so far is *held* until the
//! next event tells what it was:
//!
//! - the next event does not go back before it (it is at most `tolerance`
//!   earlier): the stream really moved on (a quiet night, a gap in the
//!   recording), and the held event is taken, then the next one judged;
//! - the next event is in line with the frontier: the held event was a lone
//!   outlier and is set aside, like an event from the future live;
//! - neither: the next event is held too (two at most), and a later one
//!   decides between them.
//!
//! At the end of the input, held events are taken without moving the
//! frontier: no event comes after them that they could make late, and an
//! outlier then cannot make every quiet group look silent either.
//! An event in line with its stream, however late, is always taken at once:
//! being late is the watermark's business.

use std::collections::VecDeque;

use super::{Span, Timestamp};

/// Events held at most per source.
const HELD: usize = 2;

/// An event held back, with its line number and bytes.
#[derive(Debug, Default)]
pub struct Held {
    pub ts: Timestamp,
    pub number: u64,
    pub bytes: Vec<u8>,
}

/// What to do with the held events and the event that just arrived, in
/// this order: set aside the first `set_aside` held events, take the next
/// `take` ones, then take or hold the new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub set_aside: usize,
    pub take: usize,
    pub current: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Take,
    Hold,
}

/// One source's guard.
#[derive(Debug)]
pub struct Outliers {
    tolerance: Span,
    frontier: Option<Timestamp>,
    held: VecDeque<Held>,
    spare: Vec<Vec<u8>>,
}

impl Outliers {
    pub fn new(tolerance: Span) -> Outliers {
        Outliers { tolerance, frontier: None, held: VecDeque::new(), spare: Vec::new() }
    }

    /// Judges an event at `ts`. The caller then calls [`Outliers::pop`]
    /// `set_aside + take` times and, for [`Verdict::Hold`],
    /// [`Outliers::hold`] with the event.
    pub fn arrive(&mut self, ts: Timestamp) -> Step {
        let tolerance = self.tolerance;
        let confirmed = self.held.iter().position(|h| ts >= h.ts.saturating_sub(tolerance));
        let mut step = Step { set_aside: 0, take: 0, current: Verdict::Take };
        match confirmed {
            Some(index) => {
                // Held events after the confirmed one went back before it:
                // behind the new frontier, they are taken (and may be late).
                step.set_aside = index;
                step.take = self.held.len() - index;
                let frontier = self.held.iter().skip(index).map(|h| h.ts).max();
                self.frontier = self.frontier.max(frontier);
            }
            None if self.in_line(ts) => step.set_aside = self.held.len(),
            None => {}
        }
        if !self.in_line(ts) {
            step.current = Verdict::Hold;
            let kept = self.held.len() - step.set_aside - step.take;
            if kept >= HELD {
                step.set_aside += 1;
            }
        } else {
            self.frontier = self.frontier.max(Some(ts));
        }
        step
    }

    fn in_line(&self, ts: Timestamp) -> bool {
        self.frontier.is_some_and(|f| ts <= f.saturating_add(self.tolerance))
    }

    /// The oldest held event.
    pub fn pop(&mut self) -> Option<Held> {
        self.held.pop_front()
    }

    /// Holds an event (a copy of `bytes`, in a recycled buffer).
    pub fn hold(&mut self, ts: Timestamp, number: u64, bytes: &[u8]) {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        self.held.push_back(Held { ts, number, bytes: buffer });
    }

    /// Gives a popped event's buffer back for reuse.
    pub fn recycle(&mut self, held: Held) {
        if self.spare.len() < HELD {
            self.spare.push(held.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs the guard over `times` (seconds); returns the indices taken,
    /// in order, and those set aside; held events are taken at the end.
    fn run_indices(times: &[i64]) -> (Vec<usize>, Vec<usize>) {
        let mut guard = Outliers::new(Span::from_secs(60));
        let (mut taken, mut aside) = (Vec::new(), Vec::new());
        for (i, &t) in times.iter().enumerate() {
            let step = guard.arrive(Timestamp::from_secs(t));
            for _ in 0..step.set_aside {
                aside.push(guard.pop().unwrap().number as usize);
            }
            for _ in 0..step.take {
                taken.push(guard.pop().unwrap().number as usize);
            }
            match step.current {
                Verdict::Take => taken.push(i),
                Verdict::Hold => guard.hold(Timestamp::from_secs(t), i as u64, b""),
            }
        }
        while let Some(held) = guard.pop() {
            taken.push(held.number as usize);
        }
        (taken, aside)
    }

    /// [`run_indices`] as times.
    fn run(times: &[i64]) -> (Vec<i64>, Vec<i64>) {
        let (taken, aside) = run_indices(times);
        (taken.iter().map(|&i| times[i]).collect(), aside.iter().map(|&i| times[i]).collect())
    }

    const FAR: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

    #[test]
    fn a_lone_outlier_ahead_is_set_aside_wherever_it_is() {
        assert_eq!(run(&[100, FAR, 101, 102]), (vec![100, 101, 102], vec![FAR]));
        assert_eq!(run(&[FAR, 100, 101, 102]), (vec![100, 101, 102], vec![FAR]));
        assert_eq!(run(&[100, 101, 102, FAR, 103]), (vec![100, 101, 102, 103], vec![FAR]));
    }

    #[test]
    fn a_gap_the_stream_continues_after_is_taken() {
        assert_eq!(run(&[0, 10, 3600, 3601, 7200, 9000]), (vec![0, 10, 3600, 3601, 7200, 9000], vec![]));
        // A sparse stream: each event waits for the next, the last for the end.
        assert_eq!(run(&[0, 600, 1200, 1800]).0, vec![0, 600, 1200, 1800]);
    }

    #[test]
    fn an_outlier_in_the_past_is_taken_as_it_is() {
        assert_eq!(run(&[0, 100, 101, 102]).0, vec![0, 100, 101, 102]);
        assert_eq!(run(&[100, 0, 101]), (vec![100, 0, 101], vec![]), "in line however late");
    }

    #[test]
    fn what_is_held_at_the_end_is_taken() {
        assert_eq!(run(&[FAR]), (vec![FAR], vec![]));
        assert_eq!(run(&[5, FAR]), (vec![5, FAR], vec![]));
    }

    proptest! {
        /// One event of any time put anywhere in an in-order stream leaves
        /// every event of the stream taken, in order.
        #[test]
        fn one_outlier_never_costs_the_stream_an_event(
            ts in any::<i64>(), place in 0usize..40, steps in proptest::collection::vec(0i64..50, 2..40),
        ) {
            let stream: Vec<i64> = steps.iter().scan(1_000_000i64, |t, s| { *t += s; Some(*t) }).collect();
                        let at = place.min(stream.len());
            let mut input = stream.clone();
            input.insert(at, ts / 1_000_000);
            let (taken, _) = run_indices(&input);
            let kept: Vec<i64> = taken.into_iter().filter(|&i| i != at).map(|i| input[i]).collect();
            prop_assert_eq!(kept, stream, "the stream's events, in order");
        }
    }
}
