//! `flatline`: fewer than `threshold` events per group in `window`: a source
//! that stopped sending, an account whose traffic died.
//!
//! Silence has no event to react to, so this detector fires from
//! [`Detector::tick`] as the engine's watermark (event time) advances; live,
//! the wall clock moves the watermark of a quiet source, so a feed that
//! stops altogether is seen too. A group must have been known for a whole
//! window before it can go quiet, fires once per silence, and re-arms with
//! its next event, which raises a `resumed` alert when the silence was
//! announced.
//!
//! The alert's time is the moment the count fell below the threshold (the
//! *deadline*), not the moment the watermark noticed, so its id does not
//! depend on how often the engine ticks or how a stream was partitioned.
//!
//! With `learn_gaps: 7d`, each group's own rhythm counts too: a silence must
//! also outlast twice the longest gap between the group's events over the
//! last seven days. An account that reports every five minutes is judged
//! by `window`; one that reports only when it sends, and sleeps every
//! night, is called dead on its first night only. Every gap teaches, the
//! alerted ones too: a silence that ends by itself and comes back each
//! night is the group's rhythm, and an outage widens the tolerance for a
//! week at most.

use std::collections::VecDeque;

use super::groups::{GroupTable, Heat};
use super::{Firing, Limits, Outcome, ParamReader, Status, Kind};
use crate::event::EventRef;
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub window: Span,
    pub threshold: u64,
    /// How far back the group's longest gap is remembered.
    pub learn_gaps: Option<Span>,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let window = r.duration("window");
        let threshold = r.positive_or("threshold", 1.0);
        let learn_gaps = r.optional_duration("learn_gaps")?;
        Some(Params { window: window?, threshold: threshold?.ceil() as u64, learn_gaps })
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Activity {
    recent: VecDeque<Timestamp>,
    first_seen: Timestamp,
    silent: bool,
    /// The silence was alerted on (not held back by realert): its end is
    /// announced too.
    announced: bool,
    /// The longest gap between events (µs) per day, oldest first
    /// (`learn_gaps`).
    gaps: VecDeque<(Timestamp, i64)>,
}

impl Heat for Activity {
    fn heat(&self) -> usize {
        self.recent.len() + self.gaps.len()
    }
}

impl Activity {
    /// When the count in the window falls below `threshold` unless another
    /// event comes: the `threshold`-th newest event leaving the window, and
    /// never before the group has been known for a whole window.
    fn deadline(&self, window: Span, threshold: u64) -> Timestamp {
        let known = self.first_seen.saturating_add(window);
        let deadline = match self.recent.len() as u64 {
            n if n >= threshold => self.recent.front().map_or(known, |t| t.saturating_add(window)).max(known),
            _ => known,
        };
        let usual = Span(self.gaps.iter().map(|(_, gap)| *gap).max().unwrap_or(0));
        match self.recent.back() {
            Some(last) if usual > Span::ZERO => deadline.max(last.saturating_add(Span(usual.0.saturating_mul(2)))),
            _ => deadline,
        }
    }

    /// Records the gap before an event at `ts`, keeping `memory` of days.
    fn learn_gap(&mut self, ts: Timestamp, memory: Span) {
        let Some(&last) = self.recent.back() else { return };
        if ts <= last {
            return;
        }
        let day = ts.floor_to(Span::from_secs(86_400));
        let gap = ts.since(last).0;
        match self.gaps.back_mut() {
            Some((d, longest)) if *d == day => *longest = (*longest).max(gap),
            _ => self.gaps.push_back((day, gap)),
        }
        while self.gaps.front().is_some_and(|(d, _)| *d < ts.saturating_sub(memory)) {
            self.gaps.pop_front();
        }
    }
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Activity>,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector { params, groups: GroupTable::new(limits) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str) -> Outcome {
        let cap = self.params.threshold as usize;
        let group = self.groups.entry(key, || Activity {
            recent: VecDeque::new(),
            first_seen: event.ts,
            silent: false,
            announced: false,
            gaps: VecDeque::new(),
        });
        group.evidence.record(event.ts, event.line);
        let activity = &mut group.state;
        if let Some(memory) = self.params.learn_gaps {
            activity.learn_gap(event.ts, memory);
        }
        let resumed = (activity.silent && activity.announced).then(|| Firing {
            ts: event.ts,
            first_ts: activity.recent.back().copied().unwrap_or(activity.first_seen),
            count: Some(0),
            status: Status::Resumed,
            ..Firing::default()
        });
        let at = activity.recent.iter().rposition(|&t| t <= event.ts).map_or(0, |i| i + 1);
        activity.recent.insert(at, event.ts);
        while activity.recent.len() > cap {
            activity.recent.pop_front();
        }
        activity.first_seen = activity.first_seen.min(event.ts);
        activity.silent = false;
        activity.announced = false;
        match resumed {
            // One per announced silence, whatever realert says: the
            // silence's own alert already passed it.
            Some(mut firing) => {
                firing.evidence = group.evidence.snapshot();
                Outcome::Fired(firing)
            }
            None => Outcome::Quiet,
        }
    }

    pub fn tick(&mut self, watermark: Timestamp, limits: &Limits, out: &mut Vec<(String, Firing)>) -> u64 {
        let window = self.params.window;
        let threshold = self.params.threshold;
        let mut suppressed = 0;
        for (key, group) in self.groups.iter_mut() {
            let activity = &mut group.state;
            let deadline = activity.deadline(window, threshold);
            if activity.silent || deadline > watermark {
                continue;
            }
            let horizon = deadline.saturating_sub(window);
            let count = activity.recent.iter().filter(|&&t| t > horizon).count() as u64;
            activity.silent = true;
            let last = activity.recent.back().copied().unwrap_or(activity.first_seen);
            if group.permit(deadline, limits.realert) {
                group.state.announced = true;
                let firing = Firing {
                    ts: deadline,
                    first_ts: last,
                    count: Some(count),
                    evidence: group.evidence.snapshot(),
                    ..Firing::default()
                };
                out.push((key.to_string(), firing));
            } else {
                suppressed += 1;
            }
        }
        suppressed
    }
}

impl Kind for Detector {
    const NAME: &'static str = "flatline";
    const COUNTS_EVENTS: bool = false;
    type Params = Params;

    fn compile(reader: &mut ParamReader<'_>) -> Option<Params> {
        Params::compile(reader)
    }

    fn new(params: &Params, limits: &Limits) -> Detector {
        Detector::new(params.clone(), limits)
    }

    fn observe(&mut self, event: &EventRef<'_>, key: &str, _watermark: Timestamp, _limits: &Limits) -> Outcome {
        Detector::observe(self, event, key)
    }

    state_in_one_table!(Activity);

    fn window(params: &Params) -> Option<Span> {
        Some(params.window)
    }

    fn threshold(params: &Params) -> Option<f64> {
        Some(params.threshold as f64)
    }

    /// A flatline's alerts stand alone: its `resumed` alert ends it.
    fn incident_hold(_params: &Params, _realert: Span) -> Option<Span> {
        None
    }

    fn tick_every(params: &Params) -> Option<Span> {
        Some(Span(params.window.0 / 20))
    }

    fn tick(&mut self, watermark: Timestamp, limits: &Limits, out: &mut Vec<(String, Firing)>) -> u64 {
        Detector::tick(self, watermark, limits, out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::event::Schema;

    #[test]
    fn fires_once_per_silence_and_rearms() {
        let mut dec = decoder(Schema::new());
        let lim = limits();
        let mut d = Detector::new(Params { window: Span::from_secs(600), threshold: 2, learn_gaps: None }, &lim);
        let mut fired = Vec::new();
        let mut feed = |d: &mut Detector, offset: i64| {
            let text = line(offset, "");
            let ev = dec.decode(&text).unwrap();
            d.observe(&ev, "g")
        };
        let at = |s: i64| Timestamp::from_secs(BASE + s);
        for offset in [0, 100, 200] {
            feed(&mut d, offset);
        }
        d.tick(at(500), &lim, &mut fired);
        assert!(fired.is_empty(), "still two events in the last 10 minutes");
        d.tick(at(801), &lim, &mut fired);
        assert_eq!(fired.len(), 1, "one event left in the window");
        assert_eq!(fired[0].1.first_ts, at(200));
        assert_eq!(fired[0].1.ts, at(700), "at the moment the count fell, not when it was noticed");
        d.tick(at(5000), &lim, &mut fired);
        assert_eq!(fired.len(), 1, "one alert per silence");
        let Outcome::Fired(resumed) = feed(&mut d, 5001) else { panic!("no resumed alert") };
        assert_eq!((resumed.status, resumed.ts, resumed.first_ts), (Status::Resumed, at(5001), at(200)));
        feed(&mut d, 5002);
        d.tick(at(6000), &lim, &mut fired);
        assert_eq!(fired.len(), 2, "re-armed by new events");
    }

    #[test]
    fn the_alert_time_does_not_depend_on_when_the_engine_ticks() {
        let lim = limits();
        let fire_at = |ticks: &[i64]| {
            let mut dec = decoder(Schema::new());
            let mut d = Detector::new(Params { window: Span::from_secs(600), threshold: 1, learn_gaps: None }, &lim);
            d.observe(&dec.decode(&line(0, "")).unwrap(), "g");
            let mut fired = Vec::new();
            for &t in ticks {
                d.tick(Timestamp::from_secs(BASE + t), &lim, &mut fired);
            }
            fired.into_iter().map(|(_, f)| f.ts).collect::<Vec<_>>()
        };
        assert_eq!(fire_at(&[300, 601]), fire_at(&[599, 900, 3600]));
        assert_eq!(fire_at(&[601]), vec![Timestamp::from_secs(BASE + 600)]);
    }

    #[test]
    fn a_silence_held_back_by_realert_ends_without_a_notice() {
        let mut dec = decoder(Schema::new());
        let lim = Limits { realert: Span::from_secs(100_000), ..limits() };
        let mut d = Detector::new(Params { window: Span::from_secs(600), threshold: 1, learn_gaps: None }, &lim);
        let mut fired = Vec::new();
        let mut outcomes = Vec::new();
        for (event, tick) in [(0, 700), (800, 1500), (1600, 0)] {
            outcomes.push(d.observe(&dec.decode(&line(event, "")).unwrap(), "g"));
            d.tick(Timestamp::from_secs(BASE + tick), &lim, &mut fired);
        }
        assert_eq!(fired.len(), 1, "the second silence is within realert");
        assert!(matches!(outcomes[1], Outcome::Fired(_)), "the first silence's end is announced");
        assert_eq!(outcomes[2], Outcome::Quiet, "the second's is not");
    }

    #[test]
    fn a_new_group_gets_a_full_window_first() {
        let mut dec = decoder(Schema::new());
        let lim = limits();
        let mut d = Detector::new(Params { window: Span::from_secs(600), threshold: 5, learn_gaps: None }, &lim);
        let text = line(0, "");
        d.observe(&dec.decode(&text).unwrap(), "g");
        let mut fired = Vec::new();
        d.tick(Timestamp::from_secs(BASE + 599), &lim, &mut fired);
        assert!(fired.is_empty());
        d.tick(Timestamp::from_secs(BASE + 600), &lim, &mut fired);
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn a_group_that_sleeps_every_night_is_not_called_dead() {
        let mut dec = decoder(Schema::new());
        let lim = limits();
        let hour = 3600;
        let params =
            Params { window: Span::from_secs(hour), threshold: 1, learn_gaps: Some(Span::from_secs(7 * 86_400)) };
        let mut d = Detector::new(params, &lim);
        let mut fired = Vec::new();
        // Reports every ten minutes from 08:00 to 20:00, nothing at night;
        // on day 3 it stops at noon.
        for day in 0..4 {
            for slot in 0..if day == 3 { 25 } else { 72 } {
                let at = day * 86_400 + 8 * hour + slot * 600;
                d.tick(Timestamp::from_secs(BASE + at), &lim, &mut fired);
                d.observe(&dec.decode(&line(at, "")).unwrap(), "g");
            }
        }
        assert_eq!(fired.len(), 1, "only the first night, before a night was learned: {fired:?}");
        // Noticed once the silence is twice the longest gap (the night).
        let noon = 3 * 86_400 + 12 * hour;
        d.tick(Timestamp::from_secs(BASE + noon + 24 * hour), &lim, &mut fired);
        assert_eq!(fired.len(), 1);
        d.tick(Timestamp::from_secs(BASE + noon + 25 * hour), &lim, &mut fired);
        assert_eq!(fired.len(), 2);
    }
}
