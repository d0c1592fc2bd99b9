//! Event time across sources: what moves a watermark, what is late, and
//! when the wall clock may stand in for a quiet source.
//!
//! Each source (a file, stdin, a Kafka partition) has a *frontier*: the
//! newest event time it delivered. Its watermark is the frontier minus the
//! allowed lateness, and an event behind its own source's watermark is
//! late. The engine's watermark, which closes windows and lets silence
//! fire, is the minimum over the sources still delivering, as in Flink and
//! Beam: a source that is behind holds it back, a source that has ended
//! does not. It never goes back.
//!
//! Two things guard the frontier against events that lie about their time:
//!
//! - Live (the runtime lends the wall clock with [`Clocks::set_wall`]), an
//!   event more than `max_future` ahead of the wall clock is refused
//!   ([`Admission::Future`]), and no event moves a frontier past the wall
//!   clock: a producer whose clock runs a little fast is accepted, and an
//!   event from the future cannot make the present late.
//! - In a replay there is no wall clock; `time::outliers` holds back an
//!   event far ahead of its stream until the next one confirms it.
//!
//! A live source that delivers nothing for `idle_advance` moves its frontier
//! with the wall clock from where it stopped ([`Clocks::advance_quiet`]), so
//! windows close and `flatline` fires when a feed goes silent. The advance is
//! measured from the source's own last frontier, not from the wall clock's
//! absolute time, so a feed that always runs some minutes behind is not
//! made late by it.

use super::{Span, Timestamp};

/// The time settings every pipeline shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePolicy {
    /// How far behind its source's frontier an event may be and still
    /// reach windows.
    pub lateness: Span,
    /// Live only: how far ahead of the wall clock an event may be.
    pub max_future: Span,
    /// Live only: how long a source may be quiet before the wall clock
    /// moves its frontier.
    pub idle_advance: Span,
}

pub const DEFAULT_MAX_FUTURE: Span = Span(300_000_000);
pub const DEFAULT_IDLE_ADVANCE: Span = Span(60_000_000);

impl TimePolicy {
    pub fn with_lateness(lateness: Span) -> TimePolicy {
        TimePolicy { lateness, max_future: DEFAULT_MAX_FUTURE, idle_advance: DEFAULT_IDLE_ADVANCE }
    }
}

/// One input whose events arrive in (roughly) their own time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourceId(pub u32);

/// What the clocks made of an event's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    OnTime,
    /// Behind its source's watermark: windows no longer take it.
    Late,
    /// Further ahead of the wall clock than `max_future`: refused, and its
    /// time moved nothing.
    Future,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// Declared, no event yet: holds the watermark back, so a replay of
    /// several files starts only when each has spoken.
    Waiting,
    Delivering,
    /// Ended (end of file): no longer holds the watermark back.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Source {
    frontier: Timestamp,
    phase: Phase,
    /// Wall time of the last event and the frontier it left, for the
    /// quiet-source advance; live only, never checkpointed.
    #[serde(skip)]
    arrival: Option<(Timestamp, Timestamp)>,
    late: u64,
    future: u64,
}

impl Source {
    fn new() -> Source {
        Source { frontier: Timestamp::MIN, phase: Phase::Waiting, arrival: None, late: 0, future: 0 }
    }
}

/// Per-source counters, for metrics and the replay's closing line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceStats {
    pub late: u64,
    pub future: u64,
    pub frontier: Timestamp,
}

/// The event-time clocks of one engine.
#[derive(Debug, Clone)]
pub struct Clocks {
    policy: TimePolicy,
    sources: Vec<Source>,
    watermark: Timestamp,
    wall: Option<Timestamp>,
}

/// The clocks' state in a checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedClocks {
    sources: Vec<Source>,
    watermark: Timestamp,
}

impl Clocks {
    /// Clocks with one source, [`SourceId::default`].
    pub fn new(policy: TimePolicy) -> Clocks {
        Clocks { policy, sources: vec![Source::new()], watermark: Timestamp::MIN, wall: None }
    }

    pub fn policy(&self) -> TimePolicy {
        self.policy
    }

    /// Declares another source; it holds the watermark back until its
    /// first event.
    pub fn add_source(&mut self) -> SourceId {
        self.sources.push(Source::new());
        SourceId(self.sources.len() as u32 - 1)
    }

    /// Lends the wall clock (live daemons, once per batch): from now on,
    /// events are bounded against it.
    pub fn set_wall(&mut self, now: Timestamp) {
        self.wall = Some(now);
    }

    /// The engine's watermark: windows are closed up to it.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    /// The newest event time any source delivered.
    pub fn newest(&self) -> Timestamp {
        self.sources.iter().map(|s| s.frontier).max().unwrap_or(Timestamp::MIN)
    }

    /// The frontier of `source` (`Timestamp::MIN` before its first event).
    pub fn frontier(&self, source: SourceId) -> Timestamp {
        self.sources.get(source.0 as usize).map_or(Timestamp::MIN, |s| s.frontier)
    }

    /// The watermark of `source` alone: its frontier minus the lateness.
    pub fn source_watermark(&self, source: SourceId) -> Timestamp {
        self.frontier(source).saturating_sub(self.policy.lateness)
    }

    /// Whether `source` has ended.
    pub fn ended(&self, source: SourceId) -> bool {
        self.sources.get(source.0 as usize).is_none_or(|s| s.phase == Phase::Ended)
    }

    pub fn source_stats(&self) -> impl Iterator<Item = (SourceId, SourceStats)> + '_ {
        self.sources
            .iter()
            .enumerate()
            .map(|(i, s)| (SourceId(i as u32), SourceStats { late: s.late, future: s.future, frontier: s.frontier }))
    }

    /// Judges an event's time and lets it move its source's frontier.
    pub fn admit(&mut self, source: SourceId, ts: Timestamp) -> Admission {
        let policy = self.policy;
        let wall = self.wall;
        let Some(clock) = self.sources.get_mut(source.0 as usize) else { return Admission::Late };
        if let Some(now) = wall {
            if ts > now.saturating_add(policy.max_future) {
                clock.future += 1;
                return Admission::Future;
            }
        }
        let reach = wall.map_or(ts, |now| ts.min(now));
        let was = clock.frontier;
        if reach > clock.frontier {
            clock.frontier = reach;
        }
        if let Some(now) = wall {
            clock.arrival = Some((now, clock.frontier));
        }
        let late = ts < clock.frontier.saturating_sub(policy.lateness);
        if late {
            clock.late += 1;
        }
        // A source that ended (or went idle in a replay) and speaks again
        // holds the watermark back again from here on.
        let started = clock.phase != Phase::Delivering;
        if started {
            clock.phase = Phase::Delivering;
        }
        if started || clock.frontier != was {
            self.settle();
        }
        if late {
            Admission::Late
        } else {
            Admission::OnTime
        }
    }

    /// Judges an event's time like [`Clocks::admit`] without letting it
    /// move anything.
    pub fn judge(&mut self, source: SourceId, ts: Timestamp) -> Admission {
        let policy = self.policy;
        let Some(clock) = self.sources.get_mut(source.0 as usize) else { return Admission::Late };
        if self.wall.is_some_and(|now| ts > now.saturating_add(policy.max_future)) {
            clock.future += 1;
            return Admission::Future;
        }
        if ts < clock.frontier.saturating_sub(policy.lateness) {
            clock.late += 1;
            return Admission::Late;
        }
        Admission::OnTime
    }

    /// Marks `source` as ended: it no longer holds the watermark back.
    pub fn end(&mut self, source: SourceId) {
        if let Some(clock) = self.sources.get_mut(source.0 as usize) {
            clock.phase = Phase::Ended;
            self.settle();
        }
    }

    /// Moves the frontier of every source quiet for `idle_advance` with
    /// the wall clock, from where its last event left it. True if the
    /// watermark moved.
    pub fn advance_quiet(&mut self, now: Timestamp) -> bool {
        self.wall = Some(now);
        let idle = self.policy.idle_advance;
        let mut moved = false;
        for clock in &mut self.sources {
            let Some((at, frontier)) = clock.arrival else { continue };
            if clock.phase != Phase::Delivering || now.since(at) < idle {
                continue;
            }
            let reach = frontier.saturating_add(now.since(at));
            if reach > clock.frontier {
                clock.frontier = reach;
                moved = true;
            }
        }
        let before = self.watermark;
        if moved {
            self.settle();
        }
        self.watermark != before
    }

    /// Recomputes the watermark: the lowest watermark of the sources not
    /// ended, never going back.
    fn settle(&mut self) {
        let lateness = self.policy.lateness;
        let mut lowest = None::<Timestamp>;
        for clock in &self.sources {
            let mark = match clock.phase {
                Phase::Ended => continue,
                Phase::Waiting => Timestamp::MIN,
                Phase::Delivering => clock.frontier.saturating_sub(lateness),
            };
            lowest = Some(lowest.map_or(mark, |l| l.min(mark)));
        }
        if let Some(lowest) = lowest {
            self.watermark = self.watermark.max(lowest);
        }
    }

    pub fn save(&self) -> SavedClocks {
        SavedClocks { sources: self.sources.clone(), watermark: self.watermark }
    }

    /// Takes over checkpointed clocks; a saved state with another number
    /// of sources keeps only the watermark.
    pub fn restore(&mut self, saved: SavedClocks) {
        if saved.sources.len() == self.sources.len() {
            self.sources = saved.sources;
        } else if let Some(first) = self.sources.first_mut() {
            first.frontier = saved.sources.iter().map(|s| s.frontier).max().unwrap_or(Timestamp::MIN);
            first.phase = if first.frontier > Timestamp::MIN { Phase::Delivering } else { Phase::Waiting };
        }
        self.watermark = saved.watermark;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_794_182_400; // 2026-11-09T00:00:00Z

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(T0 + secs)
    }

    fn policy() -> TimePolicy {
        TimePolicy {
            lateness: Span::from_secs(60),
            max_future: Span::from_secs(300),
            idle_advance: Span::from_secs(30),
        }
    }

    #[test]
    fn one_source_watermark_trails_the_newest_event_by_the_lateness() {
        let mut c = Clocks::new(policy());
        assert_eq!(c.admit(SourceId(0), at(100)), Admission::OnTime);
        assert_eq!(c.watermark(), at(40));
        assert_eq!(c.admit(SourceId(0), at(50)), Admission::OnTime, "within the lateness");
        assert_eq!(c.admit(SourceId(0), at(39)), Admission::Late);
        assert_eq!(c.watermark(), at(40), "a late event moves nothing");
    }

    #[test]
    fn the_watermark_is_the_slowest_delivering_source_and_an_ended_one_lets_go() {
        let mut c = Clocks::new(policy());
        let b = c.add_source();
        c.admit(SourceId(0), at(1000));
        assert_eq!(c.watermark(), Timestamp::MIN, "b has not spoken yet");
        c.admit(b, at(100));
        assert_eq!(c.watermark(), at(40));
        assert_eq!(c.admit(b, at(90)), Admission::OnTime, "late only against its own source");
        c.end(b);
        assert_eq!(c.watermark(), at(940));
        c.end(SourceId(0));
        assert_eq!(c.watermark(), at(940), "never goes back, and stays when all ended");
    }

    #[test]
    fn live_an_event_far_ahead_of_the_wall_clock_is_refused_and_a_near_one_moves_the_frontier_only_to_now() {
        let mut c = Clocks::new(policy());
        c.set_wall(at(1000));
        assert_eq!(c.admit(SourceId(0), Timestamp::from_secs(253_402_300_799)), Admission::Future);
        assert_eq!(c.admit(SourceId(0), at(1301)), Admission::Future);
        assert_eq!(c.watermark(), Timestamp::MIN);
        assert_eq!(c.admit(SourceId(0), at(1200)), Admission::OnTime, "a fast clock, within max_future");
        assert_eq!(c.frontier(SourceId(0)), at(1000), "capped at the wall clock");
        assert_eq!(c.admit(SourceId(0), at(990)), Admission::OnTime, "the present is not late");
        assert_eq!(c.source_stats().next().unwrap().1.future, 2);
    }

    #[test]
    fn a_quiet_live_source_moves_with_the_wall_clock_from_where_it_stopped() {
        let mut c = Clocks::new(policy());
        // The feed runs ten minutes behind the wall clock.
        c.set_wall(at(600));
        c.admit(SourceId(0), at(0));
        assert!(!c.advance_quiet(at(629)), "not quiet for idle_advance yet");
        assert!(c.advance_quiet(at(700)));
        assert_eq!(c.frontier(SourceId(0)), at(100));
        assert_eq!(c.watermark(), at(40));
        c.set_wall(at(701));
        assert_eq!(c.admit(SourceId(0), at(95)), Admission::OnTime, "the delayed feed resumes on time");
        c.advance_quiet(at(800));
        assert_eq!(c.frontier(SourceId(0)), at(199), "the advance restarts from the last event");
    }

    #[test]
    fn replays_and_ended_sources_never_advance_with_a_clock() {
        let mut c = Clocks::new(policy());
        c.admit(SourceId(0), at(0));
        assert!(!c.advance_quiet(at(10_000)), "a replay lends no arrival times");
        let mut live = Clocks::new(policy());
        live.set_wall(at(0));
        live.admit(SourceId(0), at(0));
        live.end(SourceId(0));
        assert!(!live.advance_quiet(at(10_000)));
    }

    #[test]
    fn a_checkpoint_round_trips_and_a_different_shape_keeps_the_newest_frontier() {
        let mut c = Clocks::new(policy());
        c.admit(SourceId(0), at(100));
        let mut back = Clocks::new(policy());
        back.restore(c.save());
        assert_eq!((back.watermark(), back.frontier(SourceId(0))), (at(40), at(100)));
        let mut two = Clocks::new(policy());
        let b = two.add_source();
        two.admit(b, at(500));
        let mut one = Clocks::new(policy());
        one.restore(two.save());
        assert_eq!(one.frontier(SourceId(0)), at(500));
    }

    proptest! {
        /// Live, no single event of any time can make the events around it
        /// late, whatever its place in an in-order stream.
        #[test]
        fn no_single_event_makes_an_in_order_live_stream_late(
            ts in any::<i64>(), place in 0usize..50, step in 1i64..30,
        ) {
            let mut c = Clocks::new(policy());
            for i in 0..50 {
                let now = at(i * step);
                c.set_wall(now);
                if i as usize == place {
                    c.admit(SourceId(0), Timestamp(ts));
                }
                prop_assert_eq!(c.admit(SourceId(0), now), Admission::OnTime);
            }
        }

        /// The watermark never goes back and never passes a delivering
        /// source's own watermark.
        #[test]
        fn the_watermark_is_monotone_and_below_every_delivering_source(
            events in proptest::collection::vec((0u32..3, 0i64..10_000, any::<bool>()), 1..100),
        ) {
            let mut c = Clocks::new(policy());
            c.add_source();
            c.add_source();
            let mut last = c.watermark();
            for (source, secs, end) in events {
                if end && source == 2 {
                    c.end(SourceId(source));
                } else {
                    c.admit(SourceId(source), at(secs));
                }
                prop_assert!(c.watermark() >= last);
                last = c.watermark();
            }
        }
    }
}
