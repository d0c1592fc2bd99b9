//! `match`: every event that passes the filter is an alert (subject to
//! `realert` per group). For unauthorized access, revoked tokens, access
//! from outside allowlisted networks: events that are alerts by themselves.

use super::groups::GroupTable;
use super::{conclude, Firing, Limits, Outcome};
use crate::event::EventRef;

#[derive(Debug)]
pub struct Detector {
    pub(crate) groups: GroupTable<()>,
}

impl Detector {
    pub fn new(limits: &Limits) -> Detector {
        Detector { groups: GroupTable::new(limits.max_groups, limits.evidence.min(1)) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        let group = self.groups.entry(key, || ());
        group.evidence.record(event.line);
        let firing = Firing { ts: event.ts, first_ts: event.ts, count: Some(1), ..Firing::default() };
        conclude(group, Some(firing), limits)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;
    use crate::time::Span;

    #[test]
    fn every_event_fires_unless_realert_holds_it() {
        let mut d = Any::Match(Detector::new(&limits()));
        let mut dec = decoder(Schema::new());
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, ""), (1, ""), (2, "")]), "FFF");
        let slow = Limits { realert: Span::from_secs(60), ..limits() };
        let mut d = Any::Match(Detector::new(&slow));
        assert_eq!(run(&mut d, &mut dec, &slow, &[(0, ""), (30, ""), (60, "")]), "FSF");
    }
}
