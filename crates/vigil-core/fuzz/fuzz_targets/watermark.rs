//! Fuzzes event time: lines from several sources, some with a wall clock
//! lent and some quiet, others through the replay's guard. Nothing may
//! panic, the watermark never goes back, and no frontier passes the wall
//! clock once it is lent.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_core::pipeline::Pipeline;
use vigil_core::ruleset::RuleSet;
use vigil_core::time::watermark::{SourceId, TimePolicy};
use vigil_core::time::{Span, Timestamp};

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::compile(&vigil_core::shipped::rules()).expect("shipped rules compile"))
}

// Each record: a control byte (source, live or replay, quiet advance, end
// of source) and a timestamp in seconds.
fuzz_target!(|data: &[u8]| {
    let policy = TimePolicy {
        lateness: Span::from_secs(60),
        max_future: Span::from_secs(300),
        idle_advance: Span::from_secs(30),
    };
    let live = data.first().is_some_and(|b| b & 1 == 1);
    let mut pipeline = Pipeline::with_time(rules(), policy, 1 << 16);
    if !live {
        pipeline.guard_outliers();
    }
    let extra = pipeline.engine_mut().add_source();
    let mut wall = Timestamp::from_secs(1_794_182_400);
    let mut last_watermark = pipeline.engine().watermark();
    for (number, record) in data.get(1..).unwrap_or_default().chunks_exact(9).enumerate() {
        let control = record[0];
        let secs = i64::from_le_bytes(record[1..9].try_into().unwrap_or_default()) % 300_000_000_000;
        let source = if control & 1 == 0 { SourceId::default() } else { extra };
        let ts = Timestamp::from_secs(secs);
        let line = format!(
            r#"{{"ts":"{ts}","kind":"login","user":"u{}","outcome":"failure","src_ip":"10.0.0.{}"}}"#,
            control % 7,
            control % 3
        );
        match control >> 5 {
            0 if live => {
                wall = wall.saturating_add(Span::from_secs(i64::from(control & 0x1f)));
                pipeline.advance_quiet(wall);
            }
            1 => pipeline.end_source(source),
            _ if live => {
                pipeline.engine_mut().set_wall(wall);
                let _ = pipeline.feed_from(source, line.as_bytes(), None);
            }
            _ => {
                let _ = pipeline.feed_guarded(source, number as u64 + 1, line.as_bytes());
            }
        }
        let _ = pipeline.drain_alerts().count();
        let _ = pipeline.drain_set_aside().count();
        let watermark = pipeline.engine().watermark();
        assert!(watermark >= last_watermark, "the watermark went back");
        last_watermark = watermark;
        if live {
            for (_, stats) in pipeline.engine().source_stats() {
                assert!(stats.frontier <= wall, "a frontier passed the wall clock");
            }
        }
    }
});
