//! `vigil run`: the daemon's threads and tasks, from the source to the
//! output task, its signals and its bounded shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::output::{write_alerts, LocalLog};
use super::wall_now;
use crate::alert::Alert;
use crate::app::reload::{Reload, Reloader};
use crate::app::stage::Stage;
use crate::config::load::RuleOrigin;
use crate::config::{Settings, Source};
use crate::event::Reason;
use crate::notify::Notifiers;
use crate::pipeline::Pipeline;
use crate::ruleset::RuleSet;
use crate::source::read::{read_source, Handoff};
use crate::source::{Batch, Record};
use crate::state::alert_log::AlertLog;
use crate::telemetry::activity::Activity;
use crate::telemetry::http::{self, Health};
use crate::telemetry::logging::{Lateness, Rejections};
use crate::telemetry::metrics::{self, Exported, Exporter, Metrics};
use crate::time::watermark::SourceId;
use crate::time::Timestamp;

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

/// Hands the source thread's batches to the engine thread and takes
/// emptied ones back.
struct ToEngine<'a> {
    tx: &'a mpsc::Sender<Feed>,
    recycled: &'a std::sync::mpsc::Receiver<Batch>,
}

impl Handoff for ToEngine<'_> {
    fn hand_off(&mut self, full: Batch) -> Option<Batch> {
        let empty = self.recycled.try_recv().unwrap_or_default();
        self.tx.blocking_send(Feed::Batch(full)).is_ok().then_some(empty)
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
            let mut to_engine = ToEngine { tx: &source_tx, recycled: &recycle_rx };
            let result = read_source(&source, max_bytes, &mut to_engine, &source_stop);
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

fn detect(
    rules: RuleSet,
    settings: &Settings,
    mut rx: mpsc::Receiver<Feed>,
    recycle: &std::sync::mpsc::Sender<Batch>,
    tx: mpsc::Sender<Alert>,
    metrics: Arc<Metrics>,
) {
    let mut pipeline =
        Pipeline::with_time(&rules, settings.time(), settings.max_event_bytes).watched(Activity::default());
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
    let observe = |pipeline: &Pipeline<Activity>, lateness: &mut Lateness, now: Timestamp| {
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

/// Stamps the pipeline's alerts with the wall clock and hands them to the
/// output task; false once it is gone.
fn send_alerts(pipeline: &mut Pipeline<Activity>, now: Timestamp, tx: &mpsc::Sender<Alert>) -> bool {
    for mut alert in pipeline.drain_alerts() {
        alert.raised_at = Some(now);
        if tx.blocking_send(alert).is_err() {
            return false;
        }
    }
    true
}
