//! `sequence`: ordered steps per group within `window`, each step a
//! sub-filter matched `count` times (default 1). Failed logins followed by
//! a success (a brute force that worked); a login from a new network then a
//! settings change.
//!
//! The first step keeps the times of its last `count` matches, so the
//! sequence always starts from the most recent qualifying run (five
//! failures spread over a day do not combine with one ten minutes ago).
//! Later steps count matches while the sequence is open; it fires when the
//! last step completes within `window` of the sequence's start, then resets.

use std::collections::VecDeque;

use super::groups::{GroupTable, Heat};
use super::{conclude, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::EventRef;
use crate::rules::fields::Fields;
use crate::rules::yaml::{Node, Spanned};
use crate::rules::Filter;
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub window: Span,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub filter: Filter,
    pub count: u32,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let window = r.duration("window");
        let specs = r.required::<Vec<Spanned<Fields>>>("steps")?;
        if specs.value.len() < 2 {
            r.error(&specs, "a sequence needs at least two steps");
        }
        let mut steps = Vec::new();
        for (i, spec) in specs.value.iter().enumerate() {
            let step = r.step(spec, |r| {
                let name = r.optional::<String>("name").map(|n| n.value);
                let count = r.optional::<u32>("count");
                if let Some(c) = count.as_ref().filter(|c| c.value == 0) {
                    r.error(c, "`count` must be at least 1");
                }
                let filter = r.required::<Node>("filter").map(|node| r.filter(&node))?;
                let count = count.map_or(1, |c| c.value.max(1));
                Some(Step { name: name.unwrap_or_else(|| format!("step {}", i + 1)), filter, count })
            });
            steps.extend(step);
        }
        Some(Params { window: window?, steps })
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Times of the latest matches of the first step (at most its count).
    first: VecDeque<Timestamp>,
    /// The step being waited for; 0 while the first is incomplete.
    stage: usize,
    stage_count: u32,
    start: Timestamp,
    events: u64,
}

impl Heat for Progress {
    fn heat(&self) -> usize {
        self.first.len() + self.stage
    }
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Progress>,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector { params, groups: GroupTable::new(limits) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        let params = &self.params;
        let Some(first_step) = params.steps.first() else {
            return Outcome::Quiet;
        };
        let advances = |p: &Progress| p.stage > 0 && params.steps[p.stage].filter.matches(event);
        let starts = first_step.filter.matches(event);
        let group = match self.groups.get_mut(key) {
            Some(group) => group,
            None if starts => self.groups.entry(key, Progress::default),
            None => return Outcome::Quiet,
        };
        let progress = &mut group.state;
        if progress.stage > 0 && event.ts.since(progress.start) > params.window {
            progress.stage = 0;
            progress.stage_count = 0;
        }
        let mut firing = None;
        if advances(progress) {
            group.evidence.record(event.ts, event.line);
            progress.stage_count += 1;
            progress.events += 1;
            if progress.stage_count >= params.steps[progress.stage].count {
                progress.stage += 1;
                progress.stage_count = 0;
                if progress.stage == params.steps.len() {
                    firing = Some(Firing {
                        ts: event.ts,
                        first_ts: progress.start,
                        count: Some(progress.events),
                        ..Firing::default()
                    });
                    *progress = Progress::default();
                }
            }
        } else if starts {
            group.evidence.record(event.ts, event.line);
            progress.first.push_back(event.ts);
            while progress.first.len() > first_step.count as usize {
                progress.first.pop_front();
            }
            while progress.first.front().is_some_and(|&t| event.ts.since(t) > params.window) {
                progress.first.pop_front();
            }
            if progress.first.len() == first_step.count as usize && progress.stage <= 1 {
                progress.stage = 1;
                progress.stage_count = 0;
                progress.start = progress.first.front().copied().unwrap_or(event.ts);
                progress.events = u64::from(first_step.count);
            }
        }
        conclude(group, firing, limits)
    }
}

impl Kind for Detector {
    const NAME: &'static str = "sequence";
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

    state_in_one_table!(Progress);

    fn window(params: &Params) -> Option<Span> {
        Some(params.window)
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

    fn brute_force_success(fail_count: u32, window: i64) -> (Any, crate::event::Decoder) {
        let mut schema = Schema::new();
        let lists = Lists::new();
        let mut sink = Sink::new(1);
        let mut filter = |text: &str| {
            let node = parse_document(&Document { text, first_line: 1 }).unwrap();
            compile(&node, &mut FilterCtx { schema: &mut schema, lists: &lists, sink: &mut sink })
        };
        let steps = vec![
            Step { name: "fail".into(), filter: filter("outcome: failure"), count: fail_count },
            Step { name: "ok".into(), filter: filter("outcome: success"), count: 1 },
        ];
        let params = Params { window: Span::from_secs(window), steps };
        (Any::Sequence(Detector::new(params, &limits())), decoder(schema))
    }

    const F: &str = r#""outcome":"failure""#;
    const S: &str = r#""outcome":"success""#;

    #[test]
    fn failures_then_success_fires_once() {
        let (mut d, mut dec) = brute_force_success(3, 600);
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, F), (10, F), (20, S), (30, F), (40, S), (50, S)]), "....F.");
    }

    #[test]
    fn steps_must_fit_in_the_window() {
        let (mut d, mut dec) = brute_force_success(2, 60);
        // Two failures 100 s apart never make a run; a late success is not enough.
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, F), (100, F), (300, S)]), "...");
        // Success too long after the failures.
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(400, F), (410, F), (500, S)]), "...");
    }

    #[test]
    fn a_success_alone_or_a_single_mistype_is_quiet() {
        let (mut d, mut dec) = brute_force_success(3, 600);
        assert_eq!(run(&mut d, &mut dec, &limits(), &[(0, S), (10, F), (20, S), (30, S)]), "....");
    }

    #[test]
    fn the_run_slides_to_the_latest_failures() {
        let (mut d, mut dec) = brute_force_success(3, 60);
        // Failures at 0,10,20 open the sequence; more at 50,60,70 keep it open.
        assert_eq!(
            run(&mut d, &mut dec, &limits(), &[(0, F), (10, F), (20, F), (50, F), (60, F), (70, F), (100, S)]),
            "......F"
        );
    }
}
