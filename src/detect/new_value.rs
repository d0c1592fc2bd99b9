//! `new_value`: a value of `field` is seen for the first time for its
//! group: a new device for a user, a new country, a new IP for a token.
//!
//! A group only alerts once it has been known for `learning` (a user's first
//! week teaches their devices; vigil's own start is no storm of "new"
//! values). Values unseen for `forget_after` count as new again. The values
//! per group are an LRU map capped at `max_values`.

use super::bounded::BoundedLru;
use super::groups::GroupTable;
use super::{conclude, Firing, Limits, Outcome, ParamReader};
use crate::event::{EventRef, FieldId, Value};
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub field: FieldId,
    pub learning: Span,
    pub forget_after: Option<Span>,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let field = r.field("field", |s| &s.field);
        let learning = r.duration_or("learning", |s| &s.learning, Span::from_secs(7 * 86_400));
        let forget_after = match r.spec.forget_after {
            Some(_) => Some(r.duration("forget_after", |s| &s.forget_after)?),
            None => None,
        };
        Some(Params { field: field?, learning: learning?, forget_after })
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Known {
    first_seen: Timestamp,
    values: BoundedLru<Timestamp>,
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Known>,
    pub(crate) value_evictions: u64,
    scratch: String,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector {
            params,
            groups: GroupTable::new(limits.max_groups, limits.evidence),
            value_evictions: 0,
            scratch: String::new(),
        }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        let value = event.get(self.params.field);
        if matches!(value, Value::Absent | Value::Null | Value::Object) {
            return Outcome::Quiet;
        }
        let group =
            self.groups.entry(key, || Known { first_seen: event.ts, values: BoundedLru::new(limits.max_values) });
        group.evidence.record(event.line);
        let known = &mut group.state;
        known.first_seen = known.first_seen.min(event.ts);
        let learned = event.ts.since(known.first_seen) >= self.params.learning;
        let mut new_value = None;
        let scratch = &mut self.scratch;
        let evictions = &mut self.value_evictions;
        let forget_after = self.params.forget_after;
        value.any(|item| {
            scratch.clear();
            if !item.write_text(scratch) {
                return false;
            }
            let is_new = match known.values.get_mut(scratch.as_str()) {
                Some(last_seen) => {
                    let stale = forget_after.is_some_and(|f| event.ts.since(*last_seen) > f);
                    *last_seen = (*last_seen).max(event.ts);
                    stale
                }
                None => {
                    if known.values.insert(scratch, event.ts) {
                        *evictions += 1;
                    }
                    true
                }
            };
            if is_new && new_value.is_none() {
                new_value = Some(scratch.clone());
            }
            false
        });
        let firing = new_value.filter(|_| learned).map(|value| Firing {
            ts: event.ts,
            first_ts: event.ts,
            count: Some(known.values.len() as u64),
            value: Some(value),
            ..Firing::default()
        });
        conclude(group, firing, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;

    const DAY: i64 = 86_400;

    fn setup(forget_after: Option<Span>) -> (Any, crate::event::Decoder) {
        let mut schema = Schema::new();
        let field = schema.intern("device");
        let params = Params { field, learning: Span::from_secs(2 * DAY), forget_after };
        (Any::NewValue(Detector::new(params, &limits())), decoder(schema))
    }

    #[test]
    fn learns_first_then_alerts_on_new_values_once() {
        let (mut d, mut dec) = setup(None);
        let events = [
            (0, r#""device":"laptop""#),
            (DAY, r#""device":"phone""#), // still learning
            (3 * DAY, r#""device":"laptop""#),
            (3 * DAY + 1, r#""device":"tablet""#),
            (3 * DAY + 2, r#""device":"tablet""#),
            (3 * DAY + 3, ""),
        ];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), "...F..");
    }

    #[test]
    fn forgets_values_after_the_horizon() {
        let (mut d, mut dec) = setup(Some(Span::from_secs(30 * DAY)));
        let events = [(0, r#""device":"a""#), (3 * DAY, r#""device":"a""#), (40 * DAY, r#""device":"a""#)];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), "..F");
    }

    #[test]
    fn any_new_element_of_a_list_counts() {
        let (mut d, mut dec) = setup(None);
        let events = [(0, r#""device":["a","b"]"#), (3 * DAY, r#""device":["b","c"]"#)];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), ".F");
    }
}
