//! `threshold`: the count of matching events per group (or the sum of a
//! numeric field) within any `window` reaches `threshold`. Failed-login
//! bursts, high message rates.

use super::groups::GroupTable;
use super::window::{Entry, Window, DEFAULT_MAX_ENTRIES};
use super::{conclude, weight, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::{EventRef, FieldId};
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub window: Span,
    pub threshold: f64,
    /// Sum this numeric field instead of counting events.
    pub sum: Option<FieldId>,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let window = r.duration("window");
        let threshold = r.positive("threshold");
        let sum = r.optional_field("sum");
        Some(Params { window: window?, threshold: threshold?, sum })
    }
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Window>,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector { params, groups: GroupTable::new(limits) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, watermark: Timestamp, limits: &Limits) -> Outcome {
        let Some(weight) = weight(self.params.sum, event) else { return Outcome::Quiet };
        let window = self.params.window;
        let group = self.groups.entry(key, || Window::new(DEFAULT_MAX_ENTRIES));
        group.evidence.record(event.ts, event.line);
        group.state.insert(Entry { ts: event.ts, a: weight, b: 1.0 });
        group.state.prune(watermark.saturating_sub(window));
        let best = group.state.best_containing(event.ts, window);
        let firing = (best.a >= self.params.threshold).then(|| Firing {
            ts: event.ts,
            first_ts: best.first.unwrap_or(event.ts),
            count: Some(best.events),
            events: Some(best.events),
            observed: self.params.sum.map(|_| best.a),
            ..Firing::default()
        });
        conclude(group, firing, limits)
    }
}

impl Kind for Detector {
    const NAME: &'static str = "threshold";
    type Params = Params;

    fn compile(reader: &mut ParamReader<'_>) -> Option<Params> {
        Params::compile(reader)
    }

    fn new(params: &Params, limits: &Limits) -> Detector {
        Detector::new(params.clone(), limits)
    }

    fn observe(&mut self, event: &EventRef<'_>, key: &str, watermark: Timestamp, limits: &Limits) -> Outcome {
        Detector::observe(self, event, key, watermark, limits)
    }

    state_in_one_table!(Window);

    fn window(params: &Params) -> Option<Span> {
        Some(params.window)
    }

    fn threshold(params: &Params) -> Option<f64> {
        Some(params.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;

    fn detector(threshold: f64, window: i64, sum: Option<FieldId>) -> Any {
        Any::Threshold(Detector::new(Params { window: Span::from_secs(window), threshold, sum }, &limits()))
    }

    #[test]
    fn fires_when_the_count_in_any_window_reaches_the_threshold() {
        let mut dec = decoder(Schema::new());
        let mut d = detector(3.0, 60, None);
        // Events 61 s apart never share a window; then three within 60 s.
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, ""), (61, ""), (122, ""), (150, ""), (182, "")]), "....F");
    }

    #[test]
    fn window_edge_is_inclusive() {
        let mut dec = decoder(Schema::new());
        let mut d = detector(2.0, 60, None);
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, ""), (60, "")]), ".F");
        let mut d = detector(2.0, 60, None);
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, ""), (61, "")]), "..");
    }

    #[test]
    fn realert_turns_a_long_burst_into_one_alert_per_period() {
        let mut dec = decoder(Schema::new());
        let slow = Limits { realert: Span::from_secs(300), ..limits() };
        let mut d =
            Any::Threshold(Detector::new(Params { window: Span::from_secs(60), threshold: 2.0, sum: None }, &slow));
        let events: Vec<(i64, &str)> = (0..8).map(|i| (i * 50, "")).collect();
        assert_eq!(run(&mut d, &mut dec, &slow, &events), ".FSSSSSF");
    }

    #[test]
    fn sums_a_field_and_skips_events_without_it() {
        let mut schema = Schema::new();
        let bytes = schema.intern("bytes");
        let mut dec = decoder(schema);
        let mut d = detector(100.0, 60, Some(bytes));
        let events = [(0, r#""bytes":60"#), (10, r#""bytes":"x""#), (20, ""), (30, r#""bytes":40"#)];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), "...F");
        // A negative value is left out: it cannot cancel a real burst.
        let mut d = detector(100.0, 60, Some(bytes));
        let events = [(0, r#""bytes":60"#), (10, r#""bytes":-1e12"#), (30, r#""bytes":40"#)];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), "..F");
    }

    #[test]
    fn a_late_event_completes_a_burst() {
        let mut dec = decoder(Schema::new());
        let mut d = detector(3.0, 60, None);
        let lim = limits();
        let mut trace = String::new();
        for (offset, watermark) in [(0, 0), (10, 10), (100, 40), (20, 40)] {
            let text = line(offset, "");
            let ev = dec.decode(&text).unwrap();
            let out = d.observe(&ev, "g", Timestamp::from_secs(BASE + watermark), &lim);
            trace.push(if matches!(out, Outcome::Fired(_)) { 'F' } else { '.' });
        }
        assert_eq!(trace, "...F");
    }

    #[test]
    fn alert_carries_count_first_ts_and_evidence() {
        let mut dec = decoder(Schema::new());
        let mut d = detector(2.0, 60, None);
        let lim = limits();
        for (offset, _) in [(0, ()), (5, ())] {
            let text = line(offset, "");
            let ev = dec.decode(&text).unwrap();
            if let Outcome::Fired(f) = d.observe(&ev, "g", ev.ts, &lim) {
                assert_eq!(f.count, Some(2));
                assert_eq!(f.first_ts, Timestamp::from_secs(BASE));
                assert_eq!(f.evidence.len(), 2);
                return;
            }
        }
        panic!("did not fire");
    }
}
