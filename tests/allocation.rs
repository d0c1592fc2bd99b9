//! The hot path allocates nothing per event once warm (see
//! `docs/ARCHITECTURE.md`): allocations are counted per thread by a global
//! allocator, over events that update windows, distinct sets and known
//! values of groups that already exist, after a warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use vigil::pipeline::Pipeline;
use vigil::ruleset::{RuleSet, RuleSources};
use vigil::time::Span;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const RULES: &str = r#"id: t.window
title: Many failures
severity: critical
filter: {kind: login, outcome: failure}
detect: {type: threshold, group_by: [user], window: 5m, threshold: 1000000}
alert: {summary: "{{user}}"}
---
id: t.distinct
title: Many addresses
severity: warning
filter: {kind: login}
detect: {type: distinct, group_by: [user], field: src_ip, window: 10m, threshold: 1000}
alert: {summary: "{{user}}"}
---
id: t.known
title: New device
severity: warning
filter: {kind: login, outcome: success}
detect: {type: new_value, group_by: [user], field: device_id, learning: 1d}
alert: {summary: "{{user}}"}
---
id: t.never
title: Never
severity: critical
filter: {kind: login, user|contains: nobody-at-all}
detect: {type: match}
alert: {summary: "{{user}}"}
"#;

/// Login `i`: 100 users, each with 4 addresses and 2 devices, one event
/// every 10 ms.
fn login(i: u64, line: &mut String) {
    use std::fmt::Write as _;
    line.clear();
    let ms = i * 10;
    let outcome = if i.is_multiple_of(3) { "success" } else { "failure" };
    let _ = write!(
        line,
        r#"{{"ts":"2026-11-23T{:02}:{:02}:{:02}.{:03}Z","kind":"login","user":"user-{}@acme.example","src_ip":"10.0.{}.{}","device_id":"dev-{}","outcome":"{outcome}"}}"#,
        10 + ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000,
        i % 100,
        i % 100,
        i / 100 % 4,
        i % 2,
    );
}

#[test]
fn a_warm_pipeline_allocates_nothing_per_event() {
    let files = vec![(PathBuf::from("t.yml"), RULES.to_owned())];
    let rules = RuleSet::compile(&RuleSources { files, ..RuleSources::default() }).expect("the rules compile");
    let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
    let mut line = String::with_capacity(256);
    // Warm-up: every group, address and device seen, windows full.
    let warm = 100_000;
    for i in 0..warm {
        login(i, &mut line);
        pipeline.feed(line.as_bytes()).expect("decodes");
    }
    assert_eq!(pipeline.drain_alerts().count(), 0, "nothing fires, so no alert is built");
    assert!(allocations() > 1_000, "the counter counts: the warm-up made groups, windows and sets");
    let measured = 50_000;
    let before = allocations();
    for i in warm..warm + measured {
        login(i, &mut line);
        pipeline.feed(line.as_bytes()).expect("decodes");
    }
    let allocated = allocations() - before;
    assert_eq!(pipeline.drain_alerts().count(), 0);
    assert_eq!(pipeline.engine().stats().events, warm + measured);
    assert_eq!(allocated, 0, "{allocated} allocations over {measured} warm events");
}
