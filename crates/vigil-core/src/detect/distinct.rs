//! `distinct`: the number of distinct values of `field` per group within
//! `window` reaches `threshold`. Password spraying (many users from one IP),
//! one user on many devices.
//!
//! Each group remembers its values with their last-seen time in an LRU map
//! capped at `max_values`; values older than the window fall off the old
//! end.

use super::bounded::BoundedLru;
use super::groups::{GroupTable, Heat};
use super::{conclude, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::{EventRef, FieldId};
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub window: Span,
    pub threshold: usize,
    pub field: FieldId,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let window = r.duration("window");
        let threshold = r.positive("threshold");
        let field = r.field("field");
        Some(Params { window: window?, threshold: threshold?.ceil() as usize, field: field? })
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Values {
    seen: BoundedLru<Timestamp>,
    latest: Timestamp,
}

impl Heat for Values {
    fn heat(&self) -> usize {
        self.seen.len()
    }
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Values>,
    pub(crate) value_evictions: u64,
    scratch: String,
}

/// How many values an alert names before it says "and N more".
const NAMED_VALUES: usize = 10;

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector { params, groups: GroupTable::new(limits), value_evictions: 0, scratch: String::new() }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        self.scratch.clear();
        if !event.get(self.params.field).write_text(&mut self.scratch) {
            return Outcome::Quiet;
        }
        let window = self.params.window;
        let group =
            self.groups.entry(key, || Values { seen: BoundedLru::new(limits.max_values), latest: Timestamp::MIN });
        let values = &mut group.state;
        values.latest = values.latest.max(event.ts);
        let horizon = values.latest.saturating_sub(window);
        if event.ts < horizon {
            return Outcome::Quiet;
        }
        group.evidence.record(event.ts, event.line);
        match values.seen.get_mut(self.scratch.as_str()) {
            Some(seen) => *seen = (*seen).max(event.ts),
            None => {
                if values.seen.insert(&self.scratch, event.ts) {
                    self.value_evictions += 1;
                }
            }
        }
        while values.seen.peek_lru().is_some_and(|(_, &seen)| seen < horizon) {
            values.seen.pop_lru();
        }
        let distinct = values.seen.len();
        let firing = (distinct >= self.params.threshold).then(|| {
            let first_ts = values.seen.iter().map(|(_, &t)| t).min().unwrap_or(event.ts);
            let mut named: Vec<&str> = values.seen.iter().map(|(v, _)| v).collect();
            named.sort_unstable();
            let mut value = named.iter().take(NAMED_VALUES).copied().collect::<Vec<_>>().join(", ");
            if named.len() > NAMED_VALUES {
                value.push_str(&format!(" and {} more", named.len() - NAMED_VALUES));
            }
            Firing { ts: event.ts, first_ts, count: Some(distinct as u64), value: Some(value), ..Firing::default() }
        });
        conclude(group, firing, limits)
    }
}

impl Kind for Detector {
    const NAME: &'static str = "distinct";
    type Params = Params;

    fn compile(reader: &mut ParamReader<'_>) -> Option<Params> {
        Params::compile(reader)
    }

    fn new(params: &Params, limits: &Limits) -> Detector {
        Detector::new(params.clone(), limits)
    }

    fn observe(&mut self, event: &EventRef<'_>, key: &str, _watermark: Timestamp, limits: &Limits) -> Outcome {
        Detector::observe(self, event, key, limits)
    }

    state_in_one_table!(Values, |d: &Self| d.value_evictions, |_: &mut Self| ());

    fn window(params: &Params) -> Option<Span> {
        Some(params.window)
    }

    fn threshold(params: &Params) -> Option<f64> {
        Some(params.threshold as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;

    #[test]
    fn counts_distinct_values_within_the_window() {
        let mut schema = Schema::new();
        let field = schema.intern("user");
        let mut dec = decoder(schema);
        let params = Params { window: Span::from_secs(60), threshold: 3, field };
        let mut d = Any::Distinct(Detector::new(params, &limits()));
        let events = [
            (0, r#""user":"a""#),
            (1, r#""user":"a""#),
            (2, r#""user":"b""#),
            (70, r#""user":"c""#), // a and b left the window
            (71, r#""user":"d""#),
            (72, r#""user":"e""#),
            (73, ""),
        ];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), ".....F.");
    }

    #[test]
    fn null_is_not_a_value() {
        let mut schema = Schema::new();
        let field = schema.intern("user");
        let mut dec = decoder(schema);
        let params = Params { window: Span::from_secs(60), threshold: 2, field };
        let mut d = Any::Distinct(Detector::new(params, &limits()));
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, r#""user":"a""#), (1, r#""user":null"#)]), "..");
    }

    #[test]
    fn remembered_values_are_capped_and_evictions_counted() {
        let mut schema = Schema::new();
        let field = schema.intern("user");
        let mut dec = decoder(schema);
        let lim = Limits { max_values: 5, ..limits() };
        let mut inner = Detector::new(Params { window: Span::from_secs(600), threshold: 100, field }, &lim);
        for i in 0..20 {
            let text = line(i, &format!(r#""user":"u{i}""#));
            let ev = dec.decode(&text).unwrap();
            inner.observe(&ev, "g", &lim);
        }
        assert_eq!(inner.groups.get_mut("g").unwrap().state.seen.len(), 5);
        assert_eq!(inner.value_evictions, 15);
    }
}
