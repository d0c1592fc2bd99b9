//! `vigil replay`: JSON lines through the rules as fast as they can be
//! read, one event-time clock per input, alerts as JSON lines.

use std::io::{self, BufReader, Read, Write};

use anyhow::{Context, Result};

use crate::alert::Alert;
use crate::config::Settings;
use crate::event::Reason;
use crate::notify::console::{self, Style};
use crate::pipeline::{Fed, Pipeline};
use crate::ruleset::RuleSet;
use crate::source::lines::{LineReader, Next};
use crate::time::watermark::SourceId;

/// What a replay did, for its closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub events: u64,
    pub rejected: u64,
    pub late: u64,
    /// Lone outliers ahead of their stream, seen only by `match` rules.
    pub ahead: u64,
    /// First notices.
    pub alerts: u64,
    /// Later notices of the same alerts, as their incidents went on.
    pub updates: u64,
}

/// Per-line reports of rejected events stop after this many; the count
/// goes on.
const REPORTED_REJECTIONS: u64 = 1000;

/// What a replay takes as its sources, each with its own event-time clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySources {
    /// Each input (file, stdin).
    PerInput,
    /// Each value of this field (of one input): recordings of several
    /// hosts or series in one file.
    ByField(String),
}

/// One input of a replay: its name (for messages) and its bytes.
pub struct ReplayInput<'a> {
    pub name: String,
    pub reader: Box<dyn Read + 'a>,
}

/// Replays JSON lines as fast as possible, writing each alert as a JSON line
/// to `out` and each rejected line to `diag` with its line number.
///
/// Each input is its own source with its own event-time frontier, and the
/// input furthest behind in event time is read next, so several files
/// recorded side by side (or one after another) are merged as the live
/// stream would have merged them. A replay has no wall clock: an event far
/// ahead of its input waits for the next one to confirm it (`time::outliers`).
pub fn replay<'a>(
    inputs: Vec<ReplayInput<'a>>,
    sources: &ReplaySources,
    rules: &RuleSet,
    settings: &Settings,
    out: &mut impl Write,
    diag: &mut impl Write,
) -> Result<ReplayReport> {
    struct Open<'a> {
        name: String,
        reader: LineReader<Box<dyn Read + 'a>>,
        source: SourceId,
    }
    let mut pipeline = Pipeline::with_time(rules, settings.time(), settings.max_event_bytes);
    pipeline.guard_outliers();
    if let ReplaySources::ByField(field) = sources {
        pipeline.split_sources_by(field);
    }
    let mut open: Vec<Open> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let source = if i == 0 { SourceId::default() } else { pipeline.engine_mut().add_source() };
        let reader = LineReader::new(BufReader::with_capacity(1 << 16, input.reader), settings.max_event_bytes);
        open.push(Open { name: input.name, reader, source });
    }
    let mut buf = Vec::with_capacity(1024);
    let mut rejected = 0u64;
    let mut report_rejection = |diag: &mut dyn Write, name: &str, number: u64, reason: Reason, detail: &str| {
        rejected += 1;
        if rejected <= REPORTED_REJECTIONS {
            writeln!(diag, "{name}:{number}: skipped ({reason}): {detail}")
        } else {
            Ok(())
        }
    };
    let mut report = ReplayReport::default();
    while !open.is_empty() {
        let next = if open.len() == 1 {
            0
        } else {
            let clocks = pipeline.engine().clocks();
            (0..open.len()).min_by_key(|&i| clocks.frontier(open[i].source)).unwrap_or(0)
        };
        let input = &mut open[next];
        let Some(line) = input.reader.next_into(&mut buf).with_context(|| format!("reading {}", input.name))? else {
            pipeline.end_source(input.source);
            open.swap_remove(next);
            for alert in pipeline.drain_alerts() {
                report.count(&alert);
                console::write(out, &alert, Style::Json)?;
            }
            continue;
        };
        match line {
            Next::Line(number) => {
                if let Fed::Taken(Err(err)) = pipeline.feed_guarded(input.source, number, &buf) {
                    report_rejection(diag, &input.name, number, err.reason, &err.detail)?;
                }
            }
            Next::Oversized { number, len } => {
                pipeline.reject(Reason::TooLarge);
                let detail = format!("{len} bytes exceeds the limit of {}", settings.max_event_bytes);
                report_rejection(diag, &input.name, number, Reason::TooLarge, &detail)?;
            }
        }
        for (source, number, ts) in pipeline.drain_set_aside() {
            let by_source = open.iter().find(|o| o.source == source);
            let name = by_source.or(open.first()).map_or("", |o| o.name.as_str());
            writeln!(
                diag,
                "{name}:{number}: ahead of its stream (`ts` {ts}, and the next event went back): only match rules saw it"
            )?;
        }
        for alert in pipeline.drain_alerts() {
            report.count(&alert);
            console::write(out, &alert, Style::Json)?;
        }
    }
    pipeline.finish();
    for alert in pipeline.drain_alerts() {
        report.count(&alert);
        console::write(out, &alert, Style::Json)?;
    }
    out.flush()?;
    let stats = pipeline.engine().stats();
    report.events = stats.events;
    report.late = stats.late;
    report.ahead = stats.ahead;
    report.rejected = pipeline.rejected().map(|(_, n)| n).sum();
    if report.rejected > REPORTED_REJECTIONS {
        writeln!(diag, "replay: {} more lines skipped", report.rejected - REPORTED_REJECTIONS)?;
    }
    Ok(report)
}

impl ReplayReport {
    fn count(&mut self, alert: &Alert) {
        if alert.update == 0 {
            self.alerts += 1;
        } else {
            self.updates += 1;
        }
    }
}

/// Opens stdin (`-`) or a file for `vigil replay`.
pub fn open_input(path: &str) -> Result<ReplayInput<'static>> {
    let reader: Box<dyn Read> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {path}"))?)
    };
    Ok(ReplayInput { name: path.to_owned(), reader })
}
