//! Wiring: the replay loop and the daemon's tasks.
//!
//! The daemon runs three stages joined by bounded channels, so a slow stage
//! slows the one before it instead of growing memory:
//!
//! ```text
//! source thread ──batches──▶ engine thread ──alerts──▶ output task ──▶ alert log ──▶ notifier tasks
//!                             └─ metrics exporter (per batch)   └─ console
//! ```
//!
//! (With Kafka, one thread consumes, detects and writes the alert log; see
//! `kafka::consumer`.)
//!
//! Shutdown (SIGINT/SIGTERM, or the end of a finite input): the source stops,
//! its channel closes, the engine drains what it received, the output task
//! logs and prints every alert, the notifiers get a grace period to deliver
//! what the log holds, then the process exits.

pub mod reload;
pub mod stage;

use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::alert::Alert;
use crate::app::reload::{Reload, Reloader};
use crate::app::stage::Stage;
use crate::config::load::RuleOrigin;
use crate::config::{OutputFormat, Settings, Source};
use crate::event::Reason;
use crate::notify::console::{self, Style};
use crate::notify::Notifiers;
use crate::pipeline::{Fed, Pipeline};
use crate::ruleset::RuleSet;
use crate::source::demo::{self, DemoSpec};
use crate::source::lines::{LineReader, Next};
use crate::source::{Batch, Record};
use crate::state::alert_log::AlertLog;
use crate::telemetry::http::{self, Health};
use crate::telemetry::logging::{Lateness, Rejections};
use crate::telemetry::metrics::{self, Exported, Exporter, Metrics};
use crate::time::watermark::SourceId;
use crate::time::Timestamp;

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

/// What the engine thread receives: work, new rules, the wall clock's
/// tick (for quiet sources), the end of the input, or the order to finish.
enum Feed {
    Batch(Batch),
    Reload(Reload),
    Tick,
    SourceEnded,
    Stop,
}

/// How often the engine thread hears the wall clock when no batch comes.
const TICK: Duration = Duration::from_secs(1);

/// Lines per batch, at most: large enough to amortize the channel, small
/// enough that a batch takes well under a millisecond.
const BATCH: usize = 1024;

/// Sends full batches to the engine and takes emptied ones back.
struct Batches<'a> {
    tx: &'a mpsc::Sender<Feed>,
    recycled: &'a std::sync::mpsc::Receiver<Batch>,
    current: Batch,
}

impl Batches<'_> {
    /// Hands the current batch to the engine; false once the engine is gone.
    fn send(&mut self) -> bool {
        if self.current.is_empty() {
            return true;
        }
        let next = self.recycled.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.current, next);
        self.tx.blocking_send(Feed::Batch(full)).is_ok()
    }
}

/// The rules the daemon starts with, and where they came from (what a
/// reload reads again).
pub struct StartRules {
    pub rules: RuleSet,
    pub origin: RuleOrigin,
    pub fingerprint: u64,
}

/// Runs the daemon until a signal, or until a finite input ends.
pub async fn run(settings: Settings, start: StartRules) -> Result<()> {
    raise_descriptor_limit();
    private_files();
    let StartRules { rules, origin, fingerprint } = start;
    let metrics = Metrics::new();
    metrics.rules_running(&rules);
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));

    if let Some(addr) = settings.metrics_listen {
        let mut stop = stop_rx.clone();
        let health = Health { metrics: metrics.clone(), ready: ready.clone() };
        let (server, local) = http::bind(addr, health, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
        info!(%local, "Serving metrics on http://{local}/metrics");
        tokio::spawn(async move {
            if let Err(err) = server.await {
                warn!(%err, "Admin listener failed");
            }
        });
    }

    let log = AlertLog::open(&settings.alert_log_dir(), settings.alert_log)?;
    let notifiers = Notifiers::start(&settings, &rules, log.outbox(), &metrics)?;
    tokio::spawn(bound_shutdown());
    let (reload_tx, reloads) = mpsc::channel::<Reload>(1);
    let reloader = Reloader {
        origin,
        fingerprint,
        watch: settings.rules_watch,
        metrics: metrics.clone(),
        descriptions: notifiers.descriptions(),
        settling: None,
    };
    tokio::spawn(reloader.run(reload_tx));
    let daemon = Daemon { metrics, ready, stopping, stop_tx, reloads };
    let result = match &settings.source {
        Source::Kafka(source) => run_kafka(&settings, (**source).clone(), rules, log, daemon).await.map(|()| false),
        _ => run_local(settings, rules, log, daemon).await,
    };
    notifiers.finish(DELIVERY_GRACE, result.as_ref().is_ok_and(|ended| *ended)).await;
    result.map(|_| ())
}

/// How long the notifiers may go on delivering at shutdown; what is left
/// is delivered at the next start.
const DELIVERY_GRACE: Duration = Duration::from_secs(10);

/// The whole shutdown after SIGTERM/SIGINT, below the chart's
/// `terminationGracePeriodSeconds` (45 s): every alert is in the alert log
/// before it reaches a notifier, so exiting at this point loses nothing.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Once a stop signal arrives, exits the process if the shutdown is not
/// done by [`SHUTDOWN_DEADLINE`], or at once on a second signal.
async fn bound_shutdown() {
    let Some(mut signals) = Signals::new() else { return };
    signals.recv().await;
    tokio::select! {
        () = signals.recv() => {
            warn!("A second stop signal: exiting now; undelivered alerts are sent at the next start");
        }
        () = tokio::time::sleep(SHUTDOWN_DEADLINE) => {
            warn!(deadline = ?SHUTDOWN_DEADLINE,
                "The shutdown took too long: exiting now; undelivered alerts are sent at the next start");
        }
    }
    std::process::exit(1);
}

/// Raises the soft limit on open files to the hard one: the default soft
/// limit (often 1024) is what a connection flood or many partitions hit
/// first, and the hard limit is what the operator allowed.
fn raise_descriptor_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct
        // passed, which lives on this stack frame.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max {
                return;
            }
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                tracing::debug!(from = soft, to = limit.rlim_max, "Raised the open-files limit");
            }
        }
    }
}

/// Files and directories the daemon creates (the alert log, delivery
/// positions, checkpoints, `output.path`, file notifiers) hold personal
/// data: they are created readable by vigil's user only (0600, 0700).
/// Existing files keep their modes.
fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// SIGINT and SIGTERM, as one stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Some(Signals { term: signal(SignalKind::terminate()).ok()?, int: signal(SignalKind::interrupt()).ok()? })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What the daemon's stages share: metrics, readiness and the stop signals.
struct Daemon {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    /// Read by the threads.
    stopping: Arc<AtomicBool>,
    /// Awaited by the admin listener.
    stop_tx: watch::Sender<bool>,
    /// Rule sets the reloader compiled, for the thread that owns the engines.
    reloads: mpsc::Receiver<Reload>,
}

/// The Kafka daemon: one thread consumes, detects, logs and commits (see
/// [`crate::kafka::consumer`]); the output task writes the alerts.
async fn run_kafka(
    settings: &Settings,
    source: crate::config::KafkaSource,
    rules: RuleSet,
    log: AlertLog,
    daemon: Daemon,
) -> Result<()> {
    let Daemon { metrics, ready, stopping, stop_tx, reloads } = daemon;
    let (alert_tx, alert_rx) = mpsc::channel::<Alert>(4096);
    let output = tokio::spawn(write_alerts(settings.clone(), alert_rx, None));
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    let thread_settings = settings.clone();
    let thread_stop = stopping.clone();
    std::thread::Builder::new()
        .name("vigil-kafka".into())
        .spawn(move || {
            let output = crate::kafka::consumer::AlertOutput { log, console: alert_tx };
            let control = crate::kafka::consumer::Control { ready, stop: &thread_stop, reloads };
            let result = crate::kafka::consumer::run(&thread_settings, &source, rules, metrics, output, control);
            let _ = done_tx.send(result);
        })
        .context("starting the Kafka thread")?;
    info!("vigil is running");
    let finished = tokio::select! {
        () = shutdown_signal() => {
            info!("Shutting down");
            None
        }
        finished = &mut done => Some(finished),
    };
    stopping.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let result = match finished {
        Some(result) => result,
        None => done.await,
    };
    let result = result.unwrap_or_else(|_| Err(anyhow::anyhow!("the Kafka thread stopped unexpectedly")));
    output.await.context("the output task failed")??;
    result
}

/// The daemon on the demo stream, a file or stdin; true if the input
/// ended (rather than a signal stopping it).
async fn run_local(settings: Settings, rules: RuleSet, log: AlertLog, daemon: Daemon) -> Result<bool> {
    let Daemon { metrics, ready, stopping, stop_tx, mut reloads } = daemon;
    let (feed_tx, feed_rx) = mpsc::channel::<Feed>(64);
    let reload_feed = feed_tx.clone();
    tokio::spawn(async move {
        while let Some(reload) = reloads.recv().await {
            if reload_feed.send(Feed::Reload(reload)).await.is_err() {
                return;
            }
        }
    });
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Batch>();
    let (alert_tx, alert_rx) = mpsc::channel::<Alert>(4096);
    let (source_done_tx, source_done) = tokio::sync::oneshot::channel();
    let source = settings.source.clone();
    let max_bytes = settings.max_event_bytes;
    let source_stop = stopping.clone();
    let source_tx = feed_tx.clone();
    std::thread::Builder::new()
        .name("vigil-source".into())
        .spawn(move || {
            let mut batches = Batches { tx: &source_tx, recycled: &recycle_rx, current: Batch::default() };
            let result = read_source(&source, max_bytes, &mut batches, &source_stop);
            let _ = source_tx.blocking_send(Feed::SourceEnded);
            let _ = source_done_tx.send(result);
        })
        .context("starting the source thread")?;

    let tick_feed = feed_tx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            // A full channel means batches are flowing: no tick is needed.
            if let Err(mpsc::error::TrySendError::Closed(_)) = tick_feed.try_send(Feed::Tick) {
                return;
            }
        }
    });
    let engine_metrics = metrics.clone();
    let engine_settings = settings.clone();
    std::thread::Builder::new()
        .name("vigil-engine".into())
        .spawn(move || detect(rules, &engine_settings, feed_rx, &recycle_tx, alert_tx, engine_metrics))
        .context("starting the engine thread")?;

    let stage = Stage::new(log, metrics.alerts_replayed.clone());
    let local = LocalLog { stage, ready: ready.clone(), stopping: stopping.clone() };
    let output = tokio::spawn(write_alerts(settings.clone(), alert_rx, Some(local)));
    ready.store(true, Ordering::Relaxed);
    info!(source = ?settings.source, "vigil is running");

    let is_demo = matches!(settings.source, Source::Demo { .. });
    let mut ended = false;
    tokio::select! {
        () = shutdown_signal() => info!("Shutting down"),
        finished = source_done => {
            ended = !is_demo;
            match finished {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(%err, "The source failed"),
                Err(_) => warn!("The source thread stopped unexpectedly"),
            }
            if is_demo {
                info!("The demo stream is over; metrics stay up until Ctrl-C");
                shutdown_signal().await;
            }
        }
    }
    stopping.store(true, Ordering::Relaxed);
    ready.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    // Everything the source queued before this is still processed: the
    // engine stops at this marker, and the output task ends when the engine
    // drops its sender. A source blocked on stdin is left behind; it ends
    // with the process.
    let _ = feed_tx.send(Feed::Stop).await;
    output.await.context("the output task failed")??;
    Ok(ended)
}

async fn shutdown_signal() {
    match Signals::new() {
        Some(mut signals) => signals.recv().await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn read_source(source: &Source, max_bytes: usize, batches: &mut Batches<'_>, stopping: &AtomicBool) -> Result<()> {
    match source {
        Source::Demo { speed, seed } => read_demo(*speed, *seed, batches, stopping),
        Source::Stdin => read_lines(io::stdin().lock(), max_bytes, batches, stopping),
        Source::File(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            read_lines(file, max_bytes, batches, stopping)
        }
        Source::Kafka(_) => anyhow::bail!("a Kafka source runs on its own thread"),
    }
}

fn read_lines(input: impl Read, max_bytes: usize, batches: &mut Batches<'_>, stopping: &AtomicBool) -> Result<()> {
    let mut reader = LineReader::new(BufReader::with_capacity(1 << 16, input), max_bytes);
    let mut buf = Vec::new();
    while let Some(next) = reader.next_into(&mut buf)? {
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        match next {
            Next::Line(number) => batches.current.push_line(number, &buf),
            Next::Oversized { number, len } => batches.current.push_oversized(number, len),
        }
        // A live input is flushed as soon as it has nothing more buffered,
        // so an alert never waits for the next event.
        let flush = batches.current.len() >= BATCH || !reader.has_buffered();
        if flush && !batches.send() {
            return Ok(());
        }
    }
    batches.send();
    Ok(())
}

fn read_demo(speed: f64, seed: u64, batches: &mut Batches<'_>, stopping: &AtomicBool) -> Result<()> {
    let stream = demo::generate(&DemoSpec { seed, ..DemoSpec::default() });
    info!(events = stream.events.len(), speed, "Replaying the demo stream: two weeks of history, then a live day");
    let started = Instant::now();
    for (number, (ts, line)) in stream.events.iter().enumerate() {
        if stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let due = demo::delay(stream.live_from, *ts, speed);
        if due > started.elapsed() {
            if !batches.send() {
                return Ok(());
            }
            while started.elapsed() < due {
                if stopping.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(due.saturating_sub(started.elapsed()).min(Duration::from_millis(200)));
            }
        }
        batches.current.push_line(number as u64 + 1, line.as_bytes());
        if batches.current.len() >= BATCH && !batches.send() {
            return Ok(());
        }
    }
    batches.send();
    Ok(())
}

fn detect(
    rules: RuleSet,
    settings: &Settings,
    mut rx: mpsc::Receiver<Feed>,
    recycle: &std::sync::mpsc::Sender<Batch>,
    tx: mpsc::Sender<Alert>,
    metrics: Arc<Metrics>,
) {
    let mut pipeline = Pipeline::with_time(&rules, settings.time(), settings.max_event_bytes);
    pipeline.engine_mut().sample_rule_time(metrics::sampling());
    let mut exporter = Exporter::new(metrics.clone());
    let mut exported = Exported::default();
    exporter.export([(&pipeline, &mut exported)]);
    let mut rejected = Rejections::default();
    let mut lateness = Lateness::default();
    let source_name = match settings.source {
        Source::Demo { .. } => "demo",
        Source::Stdin => "stdin",
        _ => "file",
    };
    let observe = |pipeline: &Pipeline, lateness: &mut Lateness, now: Timestamp| {
        metrics.source_lag(source_name, pipeline.engine().newest(), now);
        lateness.observe([(source_name, pipeline.engine().stats().late)]);
    };
    loop {
        let mut batch = match rx.blocking_recv() {
            Some(Feed::Batch(batch)) => batch,
            Some(Feed::Reload(reload)) => {
                let _ = reload.done.send(Ok(pipeline.reload(&reload.rules)));
                exporter.export([(&pipeline, &mut exported)]);
                continue;
            }
            Some(Feed::Tick) => {
                let now = wall_now();
                pipeline.advance_quiet(now);
                if !send_alerts(&mut pipeline, now, &tx) {
                    return;
                }
                observe(&pipeline, &mut lateness, now);
                exporter.export([(&pipeline, &mut exported)]);
                continue;
            }
            Some(Feed::SourceEnded) => {
                pipeline.end_source(SourceId::default());
                if !send_alerts(&mut pipeline, wall_now(), &tx) {
                    return;
                }
                continue;
            }
            Some(Feed::Stop) | None => return,
        };
        let started = Instant::now();
        let now = wall_now();
        pipeline.engine_mut().set_wall(now);
        let mut last_ts = None;
        for (record, bytes) in batch.iter() {
            let (number, result) = match record {
                Record::Line { number, .. } => (number, pipeline.feed(bytes).map_err(|e| (e.reason, e.detail))),
                Record::Oversized { number, len } => {
                    pipeline.reject(Reason::TooLarge);
                    (number, Err((Reason::TooLarge, format!("{len} bytes"))))
                }
            };
            if let Err((reason, detail)) = result {
                rejected.record(&format_args!("line {number}"), reason, &detail);
            } else {
                last_ts = Some(pipeline.engine().newest());
            }
            if !send_alerts(&mut pipeline, now, &tx) {
                return;
            }
        }
        metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        if let Some(ts) = last_ts {
            metrics.event_lag_seconds.observe(now.0.saturating_sub(ts.0).max(0) as f64 / 1e6);
        }
        observe(&pipeline, &mut lateness, now);
        exporter.export([(&pipeline, &mut exported)]);
        batch.clear();
        let _ = recycle.send(batch);
    }
}

fn wall_now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}

/// Stamps the pipeline's alerts with the wall clock and hands them to the
/// output task; false once it is gone.
fn send_alerts(pipeline: &mut Pipeline, now: Timestamp, tx: &mpsc::Sender<Alert>) -> bool {
    for mut alert in pipeline.drain_alerts() {
        alert.raised_at = Some(now);
        if tx.blocking_send(alert).is_err() {
            return false;
        }
    }
    true
}

/// The local daemon's alert log, as the output task writes it.
struct LocalLog {
    stage: Stage,
    ready: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl LocalLog {
    /// Syncs the log and returns the alerts it now holds. While it cannot
    /// be written, this waits and retries and vigil reports not ready: the
    /// output task takes no more alerts, so the engine and the source wait
    /// too, and nothing is dropped. At shutdown it gives up with the error.
    async fn sync(&mut self) -> Result<Vec<Alert>> {
        let mut failing = false;
        loop {
            match tokio::task::block_in_place(|| self.stage.sync().map(Iterator::collect)) {
                Ok(released) => {
                    if failing {
                        info!("The alert log is written again");
                        self.ready.store(true, Ordering::Relaxed);
                    }
                    return Ok(released);
                }
                Err(err) if self.stopping.load(Ordering::Relaxed) => return Err(err.into()),
                Err(err) => {
                    if !failing {
                        error!(%err, "Writing the alert log failed; holding alerts (and input) until it works again");
                        self.ready.store(false, Ordering::Relaxed);
                        failing = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Prints each alert; with a `log` (the local daemon), takes it through the
/// detection stage first (see `stage`): shown once it is on disk, and not
/// at all if the log already held it. The Kafka loop's alerts come synced.
async fn write_alerts(settings: Settings, mut rx: mpsc::Receiver<Alert>, mut log: Option<LocalLog>) -> Result<()> {
    let mut console = Console::open(&settings)?;
    let mut released: Vec<Alert> = Vec::new();
    while let Some(alert) = rx.recv().await {
        match &mut log {
            Some(local) => local.stage.take(alert, wall_now()),
            None => released.push(alert),
        }
        if rx.is_empty() {
            if let Some(local) = &mut log {
                released.extend(local.sync().await?);
            }
            console.show(released.drain(..));
        }
    }
    if let Some(local) = &mut log {
        released.extend(local.sync().await?);
    }
    console.show(released.drain(..));
    Ok(())
}

/// The daemon's copy of each alert on stdout or `output.path`. It is a
/// convenience: the alert log has every alert before this sees it, so a
/// copy that cannot be written is logged and never stops detection.
struct Console {
    out: Box<dyn Write + Send>,
    style: Style,
    terminal: bool,
    /// The reader of stdout went away (`vigil run | head -1`): printing
    /// stops for good.
    closed: bool,
    failing: bool,
}

impl Console {
    fn open(settings: &Settings) -> Result<Console> {
        let to_file = settings.output_path.is_some();
        let out: Box<dyn Write + Send> = match &settings.output_path {
            Some(path) => Box::new(io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            )),
            None => Box::new(io::stdout()),
        };
        let terminal = !to_file && io::stdout().is_terminal();
        let style = match settings.output {
            OutputFormat::Json => Style::Json,
            OutputFormat::Text => Style::Text { color: terminal },
            OutputFormat::Auto if terminal => Style::Text { color: true },
            OutputFormat::Auto => Style::Json,
        };
        Ok(Console { out, style, terminal, closed: false, failing: false })
    }

    /// Prints alerts and, off a terminal, logs one INFO line for each.
    fn show(&mut self, alerts: impl Iterator<Item = Alert>) {
        let mut printed = Ok(());
        for alert in alerts {
            if !self.terminal {
                info!(rule = %alert.rule, severity = %alert.severity, group = %alert.group_text(), "Alert");
            }
            if !self.closed && printed.is_ok() {
                printed = console::write(&mut self.out, &alert, self.style);
            }
        }
        if !self.closed && printed.is_ok() {
            printed = self.out.flush();
        }
        match printed {
            Ok(()) if self.failing => {
                info!("Alerts are printed again");
                self.failing = false;
            }
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                warn!("The reader of stdout went away; alerts are no longer printed (the alert log and the notifiers go on)");
                self.closed = true;
            }
            Err(err) => {
                if !self.failing {
                    warn!(%err, "Printing alerts failed; they are in the alert log and go to the notifiers");
                }
                self.failing = true;
            }
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
