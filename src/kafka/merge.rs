//! The ordered merge in front of a re-keyed partition.
//!
//! An internal partition receives copies from every source partition, in
//! the order the consumers of those partitions happen to get to them:
//! while catching up, one source partition can be days ahead of another,
//! and its copies would make the others' late. So copies wait here in one
//! lane per source partition (in source order), and leave in event-time
//! order, a copy only once every source partition still delivering has
//! reported a frontier at or beyond it. That is Flink's and Beam's
//! watermark alignment of a union of inputs, and it makes the internal
//! engine see what one engine over the whole stream sees (a replay),
//! whatever the arrival order: the same alerts, with the same ids.
//!
//! Each source partition reports its frontier on every copy and, when it
//! has nothing to copy, in a control record (`rekey::FRONTIER`). A source
//! that has not been heard from for `idle_timeout`, or says it is idle,
//! stops holding the merge back. Memory is bounded: beyond `max_bytes`
//! the oldest copy leaves at once, in arrival order, and is counted.

use std::collections::VecDeque;

use crate::time::{Span, Timestamp};

/// A copy waiting in its lane. Its buffers come from the merge's spares
/// and go back with [`Merge::recycle`], so a warm merge allocates nothing
/// per copy.
#[derive(Debug, Default)]
pub struct Copy {
    pub ts: Timestamp,
    /// Its own offset in the internal partition, for the commit.
    pub offset: i64,
    /// Its source partition's offset, for the duplicate marks.
    pub origin_offset: i64,
    /// The source topic's default kind; empty: none.
    kind: String,
    pub payload: Vec<u8>,
}

impl Copy {
    pub fn kind(&self) -> Option<&str> {
        (!self.kind.is_empty()).then_some(self.kind.as_str())
    }
}

/// Spare copies kept for reuse.
const SPARES: usize = 1024;

#[derive(Debug)]
struct Lane {
    topic: String,
    partition: i32,
    frontier: Timestamp,
    /// Wall time the source was last heard from.
    heard: Timestamp,
    idle: bool,
    /// The newest origin offset pushed: a copy produced again is dropped.
    last_origin: i64,
    queue: VecDeque<Copy>,
}

/// What the merge did with a copy it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Already queued (produced again after a crash of its source).
    Duplicate,
}

#[derive(Debug)]
pub struct Merge {
    lanes: Vec<Lane>,
    bytes: usize,
    max_bytes: usize,
    idle_timeout: Span,
    /// Copies that left before their turn to stay within `max_bytes`.
    pub forced: u64,
    spares: Vec<Copy>,
}

/// Copies waiting in one merge (one re-keyed partition), at most, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

impl Merge {
    pub fn new(idle_timeout: Span, max_bytes: usize) -> Merge {
        Merge { lanes: Vec::new(), bytes: 0, max_bytes, idle_timeout, forced: 0, spares: Vec::new() }
    }

    fn lane(&mut self, topic: &str, partition: i32, now: Timestamp) -> &mut Lane {
        let index = match self.lanes.iter().position(|l| l.partition == partition && l.topic == topic) {
            Some(index) => index,
            None => {
                self.lanes.push(Lane {
                    topic: topic.to_owned(),
                    partition,
                    frontier: Timestamp::MIN,
                    heard: now,
                    idle: false,
                    last_origin: -1,
                    queue: VecDeque::new(),
                });
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[index]
    }

    /// Declares a source partition the merge waits for before it has heard
    /// from it (from the topics' metadata), for at most `idle_timeout`.
    pub fn expect(&mut self, topic: &str, partition: i32, now: Timestamp) {
        self.lane(topic, partition, now);
    }

    /// A source partition's report: its frontier, and whether it is idle
    /// (nothing to read).
    pub fn heard(&mut self, topic: &str, partition: i32, frontier: Timestamp, idle: bool, now: Timestamp) {
        let lane = self.lane(topic, partition, now);
        lane.frontier = lane.frontier.max(frontier);
        lane.heard = now;
        lane.idle = idle;
    }

    /// A copy to fill, in a recycled buffer.
    pub fn copy(&mut self, ts: Timestamp, offset: i64, origin_offset: i64, kind: Option<&str>, payload: &[u8]) -> Copy {
        let mut copy = self.spares.pop().unwrap_or_default();
        copy.ts = ts;
        copy.offset = offset;
        copy.origin_offset = origin_offset;
        copy.kind.clear();
        copy.kind.push_str(kind.unwrap_or_default());
        copy.payload.clear();
        copy.payload.extend_from_slice(payload);
        copy
    }

    /// Gives a processed copy's buffers back.
    pub fn recycle(&mut self, copy: Copy) {
        if self.spares.len() < SPARES {
            self.spares.push(copy);
        }
    }

    /// Queues a copy from `topic`/`partition`, which reports `frontier`.
    pub fn push(&mut self, topic: &str, partition: i32, frontier: Timestamp, copy: Copy, now: Timestamp) -> Pushed {
        let spares = self.spares.len() < SPARES;
        let lane = self.lane(topic, partition, now);
        lane.frontier = lane.frontier.max(frontier).max(copy.ts);
        lane.heard = now;
        lane.idle = false;
        if copy.origin_offset <= lane.last_origin {
            if spares {
                self.spares.push(copy);
            }
            return Pushed::Duplicate;
        }
        lane.last_origin = copy.origin_offset;
        let size = copy.payload.len() + std::mem::size_of::<Copy>();
        lane.queue.push_back(copy);
        self.bytes += size;
        Pushed::Queued
    }

    /// The event time up to which every source still delivering has
    /// reported; `Timestamp(i64::MAX)` when none is.
    fn bound(&self, now: Timestamp) -> Timestamp {
        self.lanes
            .iter()
            .filter(|l| !l.idle && now.since(l.heard) < self.idle_timeout)
            .map(|l| l.frontier)
            .min()
            .unwrap_or(Timestamp(i64::MAX))
    }

    /// The next copy in event-time order, if its turn has come (or memory
    /// forces it out): its source topic and partition, and the copy (to
    /// [`Merge::recycle`] once processed).
    pub fn pop(&mut self, now: Timestamp) -> Option<(&str, i32, Copy)> {
        let (index, ts) = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.queue.front().map(|c| (i, c.ts)))
            .min_by_key(|&(i, ts)| (ts, self.lanes[i].partition, i))?;
        let over = self.bytes > self.max_bytes;
        if ts > self.bound(now) && !over {
            return None;
        }
        if over && ts > self.bound(now) {
            self.forced += 1;
        }
        let lane = &mut self.lanes[index];
        let copy = lane.queue.pop_front()?;
        self.bytes = self.bytes.saturating_sub(copy.payload.len() + std::mem::size_of::<Copy>());
        Some((lane.topic.as_str(), lane.partition, copy))
    }

    /// The internal offset of the oldest copy still waiting: no commit of
    /// the internal partition may pass it.
    pub fn oldest_offset(&self) -> Option<i64> {
        self.lanes.iter().filter_map(|l| l.queue.front().map(|c| c.offset)).min()
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.queue.is_empty())
    }

    /// Every source is idle or unheard for `idle_timeout`, and nothing
    /// waits: the partition's own event time may follow the wall clock.
    pub fn quiet(&self, now: Timestamp) -> bool {
        self.is_empty() && self.bound(now) == Timestamp(i64::MAX)
    }

    pub fn waiting_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(1_794_182_400 + secs)
    }

    fn copy(ts: i64, offset: i64, origin: i64) -> Copy {
        Copy { ts: at(ts), offset, origin_offset: origin, kind: String::new(), payload: vec![b'x'; 10] }
    }

    fn drain(merge: &mut Merge, now: Timestamp) -> Vec<(i32, i64)> {
        std::iter::from_fn(|| merge.pop(now).map(|(_, p, c)| (p, (c.ts.0 / 1_000_000) - 1_794_182_400))).collect()
    }

    #[test]
    fn copies_leave_in_event_time_order_once_every_source_has_passed_them() {
        let now = at(0);
        let mut merge = Merge::new(Span::from_secs(10), DEFAULT_MAX_BYTES);
        merge.expect("e", 0, now);
        merge.expect("e", 1, now);
        // Partition 0 runs a day ahead while partition 1 catches up.
        for (i, t) in [86_400, 86_410, 86_420].into_iter().enumerate() {
            merge.push("e", 0, at(t), copy(t, i as i64, i as i64), now);
        }
        assert!(drain(&mut merge, now).is_empty(), "partition 1 has not spoken");
        merge.push("e", 1, at(5), copy(5, 3, 0), now);
        merge.push("e", 1, at(86_415), copy(86_415, 4, 1), now);
        assert_eq!(drain(&mut merge, now), [(1, 5), (0, 86_400), (0, 86_410), (1, 86_415)]);
        assert_eq!(merge.oldest_offset(), Some(2), "the commit may not pass the copy still waiting");
        merge.heard("e", 1, at(90_000), false, now);
        assert_eq!(drain(&mut merge, now), [(0, 86_420)]);
        assert_eq!(merge.oldest_offset(), None);
    }

    #[test]
    fn a_source_idle_or_unheard_for_the_timeout_stops_holding_the_merge() {
        let mut merge = Merge::new(Span::from_secs(10), DEFAULT_MAX_BYTES);
        merge.expect("e", 1, at(0));
        merge.push("e", 0, at(100), copy(100, 0, 0), at(0));
        assert!(drain(&mut merge, at(5)).is_empty());
        assert_eq!(drain(&mut merge, at(11)), [(0, 100)], "partition 1 never spoke");
        merge.push("e", 0, at(200), copy(200, 1, 1), at(11));
        merge.heard("e", 1, at(150), true, at(11));
        assert_eq!(drain(&mut merge, at(11)), [(0, 200)], "partition 1 says it is idle");
        assert!(merge.quiet(at(30)));
    }

    #[test]
    fn a_copy_produced_again_is_dropped_and_memory_forces_the_oldest_out() {
        let mut merge = Merge::new(Span::from_secs(10), 100);
        merge.expect("e", 1, at(0));
        assert_eq!(merge.push("e", 0, at(1), copy(1, 0, 7), at(0)), Pushed::Queued);
        assert_eq!(merge.push("e", 0, at(1), copy(1, 1, 7), at(0)), Pushed::Duplicate);
        for i in 0..4 {
            merge.push("e", 0, at(2 + i), copy(2 + i, 2 + i, 8 + i), at(0));
        }
        let forced = drain(&mut merge, at(1));
        assert!(!forced.is_empty() && merge.waiting_bytes() <= 100, "{forced:?}");
        assert_eq!(merge.forced, forced.len() as u64);
    }
}
