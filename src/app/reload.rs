//! Rule reload: SIGHUP, or a rule file that changed, swaps the running
//! rules without a restart.
//!
//! The reloader reads and compiles the rules where they were first read
//! from. A rule set with any error is refused whole, every problem is
//! logged with file, line and column, and the running rules stay. A valid
//! set goes to the thread that owns the engines ([`Reload`]), between two
//! batches, so no event is seen by half a rule set; each rule keeps its
//! state there while the sections its state depends on are unchanged
//! ([`crate::engine::Engine::reload`]). Files are polled (content hash,
//! every `reload.watch`) rather than watched with inotify, because
//! Kubernetes updates a mounted ConfigMap by swapping a symlink, which
//! inotify watches of the files miss. A change is taken once two polls in
//! a row read the same content, so a file caught half written (an editor
//! truncating, then writing) is never loaded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::load::RuleOrigin;
use crate::engine::ReloadReport;
use crate::notify::message::Descriptions;
use crate::ruleset::RuleSet;
use crate::telemetry::metrics::Metrics;

/// A compiled rule set on its way to the engines, and the answer: what
/// each rule's state became, or why the set cannot run here.
pub struct Reload {
    pub rules: RuleSet,
    pub done: oneshot::Sender<Result<ReloadReport, String>>,
}

/// What a reload needs besides the engines.
pub struct Reloader {
    pub origin: RuleOrigin,
    /// The fingerprint of the files the running rules came from.
    pub fingerprint: u64,
    /// `None`: reload on SIGHUP only.
    pub watch: Option<Duration>,
    pub metrics: Arc<Metrics>,
    /// Shown in notifications; replaced with the rules.
    pub descriptions: Descriptions,
    /// Changed files seen on the last poll, waiting to be read the same
    /// once more.
    pub settling: Option<u64>,
}

/// Whether a poll that read `seen` should reload: the content differs from
/// the running rules' and the previous poll read it too.
fn settled(running: u64, settling: &mut Option<u64>, seen: u64) -> bool {
    if seen == running {
        *settling = None;
        return false;
    }
    settling.replace(seen) == Some(seen)
}

/// What triggered a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Signal,
    Changed,
}

impl Reloader {
    /// Runs until the engines are gone (`engines` closed).
    pub async fn run(mut self, engines: mpsc::Sender<Reload>) {
        let mut hangups = hangups();
        let mut ticks = self.watch.map(|every| {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        if self.origin.dir.is_none() {
            // The embedded rules never change.
            ticks = None;
        }
        loop {
            let trigger = tokio::select! {
                () = engines.closed() => return,
                Some(()) = recv(&mut hangups) => Trigger::Signal,
                _ = tick(&mut ticks) => Trigger::Changed,
            };
            self.reload(trigger, &engines).await;
        }
    }

    async fn reload(&mut self, trigger: Trigger, engines: &mpsc::Sender<Reload>) {
        let origin = self.origin.clone();
        let read = tokio::task::spawn_blocking(move || origin.read()).await;
        let sources = match read {
            Ok(Ok(sources)) => sources,
            Ok(Err(err)) => return self.refused(trigger, format!("{err:#}")),
            Err(err) => return self.refused(trigger, err.to_string()),
        };
        let fingerprint = sources.fingerprint();
        if trigger == Trigger::Changed && !settled(self.fingerprint, &mut self.settling, fingerprint) {
            return;
        }
        self.settling = None;
        // A refused set is not tried again until the files change again.
        self.fingerprint = fingerprint;
        let rules = match tokio::task::spawn_blocking(move || RuleSet::compile(&sources)).await {
            Ok(Ok(rules)) => rules,
            Ok(Err(diagnostics)) => {
                for d in &diagnostics.0 {
                    error!(problem = %d, "Rule error");
                }
                let count = diagnostics.0.len();
                return self.refused(trigger, format!("{count} error(s) in the rules"));
            }
            Err(err) => return self.refused(trigger, err.to_string()),
        };
        let (done, answer) = oneshot::channel();
        if engines.send(Reload { rules: rules.clone(), done }).await.is_err() {
            return;
        }
        match answer.await {
            Ok(Ok(report)) => {
                self.descriptions.replace(&rules);
                self.metrics.rules_running(&rules);
                self.metrics.reloads.with_label_values(&["success"]).inc();
                self.metrics.last_reload_successful.set(1);
                info!(
                    ?trigger,
                    rules = rules.rules.len(),
                    kept = report.kept,
                    reset = report.reset,
                    added = report.added,
                    removed = report.removed,
                    "Rules reloaded"
                );
            }
            Ok(Err(why)) => self.refused(trigger, why),
            Err(_) => {}
        }
    }

    fn refused(&self, trigger: Trigger, why: String) {
        self.metrics.reloads.with_label_values(&["failure"]).inc();
        self.metrics.last_reload_successful.set(0);
        error!(?trigger, %why, "Rule reload refused; the running rules stay");
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                warn!(%err, "SIGHUP cannot be caught; rules reload only when their files change");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn recv(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_taken_once_two_polls_read_it_and_a_half_written_file_never() {
        let (running, half_written, complete) = (1, 2, 3);
        let mut settling = None;
        assert!(!settled(running, &mut settling, running), "nothing changed");
        assert!(!settled(running, &mut settling, half_written), "caught mid-write: wait");
        assert!(!settled(running, &mut settling, complete), "it moved on: wait again");
        assert!(settled(running, &mut settling, complete), "read the same twice: reload");
        let mut settling = Some(half_written);
        assert!(!settled(running, &mut settling, running), "back to the running rules");
        assert_eq!(settling, None);
    }
}
