//! `flatline`: fewer than `threshold` events per group in `window`: a source
//! that stopped sending, an account whose traffic died.
//!
//! Silence has no event to react to, so this detector fires from
//! [`Detector::tick`] as the engine's watermark (event time) advances. A
//! group must have been known for a whole window before it can go quiet,
//! fires once per silence, and re-arms with its next event.

use std::collections::VecDeque;

use super::groups::GroupTable;
use super::{Firing, Limits, Outcome, ParamReader};
use crate::event::EventRef;
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub window: Span,
    pub threshold: u64,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let window = r.duration("window", |s| &s.window);
        let threshold = r.positive_or("threshold", |s| &s.threshold, 1.0);
        Some(Params { window: window?, threshold: threshold?.ceil() as u64 })
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Activity {
    recent: VecDeque<Timestamp>,
    first_seen: Timestamp,
    silent: bool,
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Activity>,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector { params, groups: GroupTable::new(limits.max_groups, limits.evidence) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str) -> Outcome {
        let cap = self.params.threshold as usize;
        let group =
            self.groups.entry(key, || Activity { recent: VecDeque::new(), first_seen: event.ts, silent: false });
        group.evidence.record(event.line);
        let activity = &mut group.state;
        let at = activity.recent.iter().rposition(|&t| t <= event.ts).map_or(0, |i| i + 1);
        activity.recent.insert(at, event.ts);
        while activity.recent.len() > cap {
            activity.recent.pop_front();
        }
        activity.first_seen = activity.first_seen.min(event.ts);
        activity.silent = false;
        Outcome::Quiet
    }

    pub fn tick(&mut self, watermark: Timestamp, limits: &Limits, out: &mut Vec<(String, Firing)>) -> u64 {
        let window = self.params.window;
        let threshold = self.params.threshold;
        let mut suppressed = 0;
        for (key, group) in self.groups.iter_mut() {
            let activity = &mut group.state;
            if activity.silent || watermark.since(activity.first_seen) < window {
                continue;
            }
            let horizon = watermark.saturating_sub(window);
            let count = activity.recent.iter().filter(|&&t| t > horizon).count() as u64;
            if count >= threshold {
                continue;
            }
            activity.silent = true;
            let last = activity.recent.back().copied().unwrap_or(activity.first_seen);
            if group.permit(watermark, limits.realert) {
                let firing = Firing {
                    ts: watermark,
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::event::Schema;

    #[test]
    fn fires_once_per_silence_and_rearms() {
        let mut dec = decoder(Schema::new());
        let lim = limits();
        let mut d = Detector::new(Params { window: Span::from_secs(600), threshold: 2 }, &lim);
        let mut fired = Vec::new();
        let mut feed = |d: &mut Detector, offset: i64| {
            let text = line(offset, "");
            let ev = dec.decode(&text).unwrap();
            d.observe(&ev, "g");
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
        d.tick(at(5000), &lim, &mut fired);
        assert_eq!(fired.len(), 1, "one alert per silence");
        feed(&mut d, 5001);
        feed(&mut d, 5002);
        d.tick(at(6000), &lim, &mut fired);
        assert_eq!(fired.len(), 2, "re-armed by new events");
    }

    #[test]
    fn a_new_group_gets_a_full_window_first() {
        let mut dec = decoder(Schema::new());
        let lim = limits();
        let mut d = Detector::new(Params { window: Span::from_secs(600), threshold: 5 }, &lim);
        let text = line(0, "");
        d.observe(&dec.decode(&text).unwrap(), "g");
        let mut fired = Vec::new();
        d.tick(Timestamp::from_secs(BASE + 599), &lim, &mut fired);
        assert!(fired.is_empty());
        d.tick(Timestamp::from_secs(BASE + 600), &lim, &mut fired);
        assert_eq!(fired.len(), 1);
    }
}
