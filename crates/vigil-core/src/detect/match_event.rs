//! `match`: every event that passes the filter is an alert (subject to
//! `realert` per group). For unauthorized access, revoked tokens, access
//! from outside allowlisted networks: events that are alerts by themselves.

use super::groups::GroupTable;
use super::{conclude, Firing, Limits, Outcome, Kind, ParamReader};
use crate::event::EventRef;
use crate::time::Timestamp;

#[derive(Debug)]
pub struct Detector {
    pub(crate) groups: GroupTable<()>,
}

impl Detector {
    pub fn new(limits: &Limits) -> Detector {
        Detector { groups: GroupTable::new(limits) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        let group = self.groups.entry(key, || ());
        group.evidence.record(event.ts, event.line);
        let firing = Firing { ts: event.ts, first_ts: event.ts, count: Some(1), ..Firing::default() };
        conclude(group, Some(firing), limits)
    }
}

impl Kind for Detector {
    const NAME: &'static str = "match";
    const TAKES_LATE_EVENTS: bool = true;
    type Params = ();

    fn compile(_reader: &mut ParamReader<'_>) -> Option<()> {
        Some(())
    }

    fn new(_params: &(), limits: &Limits) -> Detector {
        Detector::new(limits)
    }

    fn observe(&mut self, event: &EventRef<'_>, key: &str, _watermark: Timestamp, limits: &Limits) -> Outcome {
        Detector::observe(self, event, key, limits)
    }

    state_in_one_table!(());
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;
    use crate::time::{Span, Timestamp};

    #[test]
    fn every_event_fires_unless_realert_holds_it() {
        let mut d = Any::Match(Detector::new(&limits()));
        let mut dec = decoder(Schema::new());
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, ""), (1, ""), (2, "")]), "FFF");
        let slow = Limits { realert: Span::from_secs(60), ..limits() };
        let mut d = Any::Match(Detector::new(&slow));
        assert_eq!(run(&mut d, &mut dec, &slow, &[(0, ""), (30, ""), (60, "")]), "FSF");
    }

    #[test]
    fn evidence_is_the_event_that_fired_not_the_groups_earlier_ones() {
        let lim = Limits { evidence: 3, ..limits() };
        let mut d = Detector::new(&lim);
        let mut dec = decoder(Schema::new());
        let mut last = None;
        for offset in 0..5 {
            let text = line(offset, "");
            if let Outcome::Fired(f) = d.observe(&dec.decode(&text).unwrap(), "g", &lim) {
                last = Some(f);
            }
        }
        let evidence = last.expect("fired").evidence;
        assert_eq!(evidence.len(), 1);
        assert!(evidence[0].contains(&Timestamp::from_secs(BASE + 4).to_string()));
    }
}
