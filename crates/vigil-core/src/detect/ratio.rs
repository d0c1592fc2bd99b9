//! `ratio`: among the events of a group in the last `window`, the share
//! that also match the sub-filter `match:` reaches `ratio`, over at least
//! `min_events` events. API error spikes per token: 40% of calls failing is
//! alarming at 200 calls, noise at 3.

use super::groups::GroupTable;
use super::window::{Entry, Window, DEFAULT_MAX_ENTRIES};
use super::{conclude, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::EventRef;
use crate::rules::yaml::Node;
use crate::rules::Filter;
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub window: Span,
    pub ratio: f64,
    pub min_events: u64,
    pub sub_filter: Filter,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let window = r.duration("window");
        let ratio = r.positive("ratio");
        if let (Some(value), Some(at)) = (ratio, r.given("ratio")) {
            if value > 1.0 {
                r.error_at(at, "`ratio` is a share between 0 and 1 (0.25 = 25%)");
            }
        }
        let min_events = r.optional::<u64>("min_events").map_or(10, |m| m.value);
        let sub_filter = r.required::<Node>("match").map(|node| r.filter(&node));
        Some(Params { window: window?, ratio: ratio?, min_events, sub_filter: sub_filter? })
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
        let matched = self.params.sub_filter.matches(event);
        let window = self.params.window;
        let group = self.groups.entry(key, || Window::new(DEFAULT_MAX_ENTRIES));
        if matched {
            group.evidence.record(event.ts, event.line);
        }
        group.state.insert(Entry { ts: event.ts, a: f64::from(u8::from(matched)), b: 1.0 });
        let totals = group.state.totals(event.ts.saturating_sub(window), event.ts);
        group.state.prune(watermark.saturating_sub(window));
        let share = if totals.b > 0.0 { totals.a / totals.b } else { 0.0 };
        let firing = (totals.events >= self.params.min_events && share >= self.params.ratio).then(|| Firing {
            ts: event.ts,
            first_ts: totals.first.unwrap_or(event.ts),
            count: Some(totals.a as u64),
            events: Some(totals.a as u64),
            score: Some(share),
            observed: Some(totals.b),
            ..Firing::default()
        });
        conclude(group, firing, limits)
    }
}

impl Kind for Detector {
    const NAME: &'static str = "ratio";
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
        Some(params.ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;
    use crate::rules::filter::{compile, FilterCtx};
    use crate::rules::yaml::{parse_document, Document};
    use crate::rules::{Lists, Sink};

    #[test]
    fn fires_on_share_with_enough_events_only() {
        let mut schema = Schema::new();
        let node = parse_document(&Document { text: "status|gte: 500", first_line: 1 }).unwrap();
        let mut sink = Sink::new(1);
        let lists = Lists::new();
        let sub_filter = compile(&node, &mut FilterCtx { schema: &mut schema, lists: &lists, sink: &mut sink });
        let mut dec = decoder(schema);
        let params = Params { window: Span::from_secs(60), ratio: 0.5, min_events: 4, sub_filter };
        let mut d = Any::Ratio(Detector::new(params, &limits()));
        let (ok, err) = (r#""status":200"#, r#""status":503"#);
        // 2 of 2 failing: too few events. Then 3 of 4, alert.
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, err), (1, err), (2, ok), (3, err)]), "...F");
        // A fresh window of healthy traffic stays quiet.
        let healthy: Vec<(i64, &str)> = (100..120).map(|i| (i, if i % 10 == 0 { err } else { ok })).collect();
        assert!(run(&mut d, &mut dec, &limits(), &healthy).chars().all(|c| c == '.'));
    }
}
