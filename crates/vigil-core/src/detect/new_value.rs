//! `new_value`: a value of `field` is seen for the first time for its
//! group: a new device for a user, a new country, a new IP for a token.
//!
//! A group only alerts once it has been known for `learning` (a user's first
//! week teaches their devices; vigil's own start is no storm of "new"
//! values). Values unseen for `forget_after` count as new again. The values
//! per group are an LRU map capped at `max_values`.
//!
//! With `prefix` (IPv4) or `prefix_v6`, the value is an address and what is
//! remembered is its network: `prefix: 16` learns the provider blocks a
//! token is used from, so a home router's new lease is not news but an
//! address on another continent is. Values that are not addresses are
//! left out.
//!
//! With `common_in: N`, a value that N other groups already know is not
//! news for one more: the office's egress, the VPN, a big provider's block
//! that many staff live behind. The detector keeps how many groups know
//! each value (capped like the groups, and rebuilt from them when a
//! checkpoint is read back).

use std::fmt::Write as _;

use super::bounded::BoundedLru;
use super::groups::{GroupTable, Heat};
use super::{conclude, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::{EventRef, FieldId, Value};
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub field: FieldId,
    pub learning: Span,
    pub forget_after: Option<Span>,
    /// Remember networks of this size instead of addresses: (IPv4, IPv6).
    pub network: Option<(u8, u8)>,
    /// A value this many other groups know is common, not news.
    pub common_in: Option<u32>,
    /// Fields whose values must be new too (`also_new`): a new device in
    /// a new country, not a new phone at the office.
    pub also_new: Vec<FieldId>,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let field = r.field("field");
        let learning = r.duration_or("learning", Span::from_secs(7 * 86_400));
        let forget_after = r.optional_duration("forget_after");
        let v4 = r.optional::<u8>("prefix");
        let v6 = r.optional::<u8>("prefix_v6");
        if let Some(p) = v4.as_ref().filter(|p| p.value > 32) {
            r.error(p, "`prefix` is an IPv4 prefix length, 0 to 32");
        }
        if let Some(p) = v6.as_ref().filter(|p| p.value > 128) {
            r.error(p, "`prefix_v6` is an IPv6 prefix length, 0 to 128");
        }
        let network = (v4.is_some() || v6.is_some())
            .then(|| (v4.map_or(24, |p| p.value.min(32)), v6.map_or(48, |p| p.value.min(128))));
        let common_in = r.optional::<u32>("common_in").map(|c| c.value.max(1));
        let also_new = r.optional_fields("also_new");
        Some(Params { field: field?, learning: learning?, forget_after: forget_after?, network, common_in, also_new })
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Known {
    first_seen: Timestamp,
    values: BoundedLru<Timestamp>,
}

impl Heat for Known {
    fn heat(&self) -> usize {
        self.values.len()
    }
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Known>,
    pub(crate) value_evictions: u64,
    /// How many groups know each value (with `common_in`).
    population: BoundedLru<u32>,
    scratch: String,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector {
            groups: GroupTable::new(limits),
            value_evictions: 0,
            population: BoundedLru::new(if params.common_in.is_some() { limits.max_groups } else { 0 }),
            scratch: String::new(),
            params,
        }
    }

    /// Recounts the groups that know each value, after the groups were
    /// replaced from a checkpoint.
    pub fn recount(&mut self) {
        if self.params.common_in.is_none() {
            return;
        }
        let mut population = BoundedLru::new(self.population.cap());
        for (_, group) in self.groups.iter() {
            for (value, _) in group.state.values.iter().filter(|(v, _)| !v.starts_with(KEY_TAG)) {
                match population.get_mut(value) {
                    Some(count) => *count += 1,
                    None => {
                        population.insert(value, 1);
                    }
                }
            }
        }
        self.population = population;
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        let value = event.get(self.params.field);
        if matches!(value, Value::Absent | Value::Null | Value::Object) {
            return Outcome::Quiet;
        }
        let group =
            self.groups.entry(key, || Known { first_seen: event.ts, values: BoundedLru::new(limits.max_values) });
        group.evidence.record(event.ts, event.line);
        let known = &mut group.state;
        known.first_seen = known.first_seen.min(event.ts);
        let learned = event.ts.since(known.first_seen) >= self.params.learning;
        let params = &self.params;
        let mut memory = Memory {
            known,
            scratch: &mut self.scratch,
            evictions: &mut self.value_evictions,
            population: params.common_in.map(|n| (n, &mut self.population)),
            forget_after: params.forget_after,
            ts: event.ts,
        };
        let mut new_value = memory.remember(value, None, params.network);
        memory.population = None;
        for (i, &field) in params.also_new.iter().enumerate() {
            let also = memory.remember(event.get(field), Some(i), None);
            new_value = match (new_value, also) {
                (Some(mut text), Some(other)) => {
                    text.push_str(", ");
                    text.push_str(&other);
                    Some(text)
                }
                _ => None,
            };
        }
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

/// What one event teaches a group, field by field.
struct Memory<'a> {
    known: &'a mut Known,
    scratch: &'a mut String,
    evictions: &'a mut u64,
    /// `common_in` and the count of groups knowing each value.
    population: Option<(u32, &'a mut BoundedLru<u32>)>,
    forget_after: Option<Span>,
    ts: Timestamp,
}

impl Memory<'_> {
    /// Records each item of `value` (tagged by the `also_new` field it
    /// comes from); returns the first that was new to the group.
    fn remember(&mut self, value: Value<'_>, tag: Option<usize>, network: Option<(u8, u8)>) -> Option<String> {
        let mut first_new = None;
        value.any(|item| {
            let scratch = &mut *self.scratch;
            scratch.clear();
            if let Some(tag) = tag {
                let _ = write!(scratch, "{KEY_TAG}{tag}{KEY_TAG}");
            }
            let text_at = scratch.len();
            if !item.write_text(scratch) || network.is_some_and(|n| !to_network(scratch, text_at, n)) {
                return false;
            }
            let is_new = match self.known.values.get_mut(scratch.as_str()) {
                Some(last_seen) => {
                    let stale = self.forget_after.is_some_and(|f| self.ts.since(*last_seen) > f);
                    *last_seen = (*last_seen).max(self.ts);
                    stale
                }
                None => {
                    if self.known.values.insert(scratch, self.ts) {
                        *self.evictions += 1;
                    }
                    true
                }
            };
            let common = match &mut self.population {
                None => false,
                Some((common_in, population)) => {
                    let count = match population.get_mut(scratch.as_str()) {
                        Some(count) => {
                            *count += u32::from(is_new);
                            *count
                        }
                        None => {
                            population.insert(scratch, 1);
                            1
                        }
                    };
                    // Known to `common_in` other groups (and now this one).
                    count > *common_in
                }
            };
            if is_new && !common && first_new.is_none() {
                first_new = Some(scratch[text_at..].to_owned());
            }
            false
        });
        first_new
    }
}

/// Marks the remembered values of an `also_new` field.
const KEY_TAG: char = '\u{1f}';

/// Replaces the address in `text[from..]` with its network; false if it
/// is not an address.
fn to_network(text: &mut String, from: usize, (v4, v6): (u8, u8)) -> bool {
    let Ok(addr) = text[from..].parse::<std::net::IpAddr>() else { return false };
    let len = if addr.is_ipv4() { v4 } else { v6 };
    let Ok(net) = ipnet::IpNet::new(addr, len) else { return false };
    text.truncate(from);
    write!(text, "{}", net.trunc()).is_ok()
}

impl Kind for Detector {
    const NAME: &'static str = "new_value";
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

    state_in_one_table!(Known, |d: &Self| d.value_evictions, Detector::recount);
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
        let params = Params {
            field,
            learning: Span::from_secs(2 * DAY),
            forget_after,
            network: None,
            common_in: None,
            also_new: Vec::new(),
        };
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

    #[test]
    fn networks_instead_of_addresses() {
        let mut schema = Schema::new();
        let field = schema.intern("ip");
        let params = Params {
            also_new: Vec::new(),
            field,
            learning: Span::from_secs(DAY),
            forget_after: None,
            network: Some((16, 32)),
            common_in: None,
        };
        let mut d = Any::NewValue(Detector::new(params, &limits()));
        let mut dec = decoder(schema);
        let events = [
            (0, r#""ip":"91.64.3.7""#),
            (0, r#""ip":"2a02:8109:1:2::1""#),
            (2 * DAY, r#""ip":"91.64.200.9""#),       // a new lease, same block
            (2 * DAY, r#""ip":"2a02:8109:ff:1::9""#), // a new IPv6 prefix, same provider
            (2 * DAY, r#""ip":"not an address""#),
            (2 * DAY, r#""ip":"185.220.101.7""#), // elsewhere
        ];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), ".....F");
        let mut text = String::from("91.64.200.9");
        assert!(to_network(&mut text, 0, (16, 32)));
        assert_eq!(text, "91.64.0.0/16");
    }

    #[test]
    fn a_value_many_groups_know_is_common() {
        let mut schema = Schema::new();
        let field = schema.intern("net");
        let params = Params {
            field,
            learning: Span::from_secs(DAY),
            forget_after: None,
            network: None,
            common_in: Some(2),
            also_new: Vec::new(),
        };
        let lim = limits();
        let mut d = Detector::new(params, &lim);
        let mut dec = decoder(schema);
        let mut trace = String::new();
        let events = [
            ("a", 0, "office"),
            ("b", 0, "office"),
            ("c", 0, "home-c"),
            ("c", 2 * DAY, "office"), // two other groups know it
            ("c", 2 * DAY, "vps"),    // nobody does
            ("a", 2 * DAY, "home-c"), // one other group knows it: still news
        ];
        for (group, at, value) in events {
            let text = line(at, &format!(r#""net":"{value}""#));
            let event = dec.decode(&text).unwrap();
            trace.push(if matches!(d.observe(&event, group, &lim), Outcome::Fired(_)) { 'F' } else { '.' });
        }
        assert_eq!(trace, "....FF");
        // A checkpoint read back recounts from the groups.
        d.population = BoundedLru::new(lim.max_groups);
        d.recount();
        assert_eq!(d.population.get_mut("office").copied(), Some(3));
    }

    #[test]
    fn also_new_needs_every_field_new() {
        let mut schema = Schema::new();
        let device = schema.intern("device");
        let country = schema.intern("country");
        let params = Params {
            field: device,
            learning: Span::from_secs(DAY),
            forget_after: None,
            network: None,
            common_in: None,
            also_new: vec![country],
        };
        let mut d = Any::NewValue(Detector::new(params, &limits()));
        let mut dec = decoder(schema);
        let events = [
            (0, r#""device":"laptop","country":"DE""#),
            (2 * DAY, r#""device":"new-phone","country":"DE""#), // a new phone at home
            (2 * DAY, r#""device":"laptop","country":"US""#),    // travelling with the laptop
            (2 * DAY, r#""device":"stolen","country":"NG""#),    // both new
            (2 * DAY, r#""device":"other","country":"NG""#),     // the country is known now
        ];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), "...F.");
    }
}
