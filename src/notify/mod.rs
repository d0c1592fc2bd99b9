//! Where alerts go.
//!
//! The console output (`console`) shows every alert the engine raises as it
//! raises it. Notifiers (email, digest, webhooks, Kafka, file, stdout)
//! deliver from the alert log, which is their durable outbox: one task per
//! notifier (`worker`) reads the log from its saved position, keeps the
//! alerts its routes give it (`route`), redacts (`redact`), renders
//! (`message`, `email`, `webhook`) and sends (`sink`); each notifier type's
//! folder or file (`email/`, `webhook/`, `kafka`, `file`) also holds the
//! settings it reads from the config file, retrying with
//! backoff until the receiver accepts or refuses for good.
//!
//! ```text
//! alert log ──▶ worker per notifier ──route, limit──▶ message ──▶ sink (SMTP, HTTP, Kafka, file)
//!                 └─ position saved after each accepted message
//! ```

pub mod console;
pub mod email;
pub mod file;
pub mod kafka;
pub mod message;
pub mod redact;
pub mod route;
pub mod sink;
pub mod webhook;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// How long stopped notifiers may take to end their message in flight.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

use crate::config::{NotifierKind, Settings};
use crate::ruleset::RuleSet;
use crate::state::alert_log::Outbox;
use crate::telemetry::metrics::Metrics;
use worker::{Mode, Worker, WorkerSetup};

/// The running notifiers.
pub struct Notifiers {
    mode: watch::Sender<Mode>,
    tasks: Vec<(String, JoinHandle<()>)>,
    descriptions: message::Descriptions,
}

impl Notifiers {
    /// Starts one delivery task per configured notifier. Fails if a secret
    /// or a CA file cannot be read, so a broken notifier is found at
    /// start-up, not at the first alert.
    pub fn start(
        settings: &Settings,
        rules: &RuleSet,
        outbox: Arc<Outbox>,
        metrics: &Arc<Metrics>,
    ) -> Result<Notifiers> {
        let descriptions: message::Descriptions = Arc::new(message::RuleDescriptions::of(rules));
        let router = Arc::new(route::Router::new(settings.routes.clone()));
        let (mode, _) = watch::channel(Mode::Run);
        let mut tasks = Vec::new();
        for notifier in &settings.notifiers {
            let sink = sink::Sink::new(notifier, &descriptions)
                .with_context(|| format!("starting the `{}` notifier", notifier.name))?;
            let digest = match &notifier.kind {
                NotifierKind::Digest { every, .. } => Some(*every),
                _ => None,
            };
            let worker = Worker::new(WorkerSetup {
                name: notifier.name.clone(),
                sink,
                digest,
                router: router.clone(),
                redactor: redact::Redactor::new(notifier.redact.clone()),
                policy: notifier.delivery,
                outbox: outbox.clone(),
                cursor_dir: settings.outbox_dir(),
                metrics: metrics.clone(),
            })
            .with_context(|| format!("reading the delivery position of `{}`", notifier.name))?;
            tasks.push((notifier.name.clone(), tokio::spawn(worker.run(mode.subscribe()))));
        }
        Ok(Notifiers { mode, tasks, descriptions })
    }

    /// The rule descriptions messages show; a reload replaces them.
    pub fn descriptions(&self) -> message::Descriptions {
        self.descriptions.clone()
    }

    /// Lets every notifier deliver what the log holds for up to `grace`,
    /// then stops them all after the message in flight, waiting at most
    /// [`STOP_WAIT`] more: however many notifiers hang, this returns within
    /// `grace + STOP_WAIT`. What is left is delivered at the next start.
    /// Digests go out early only when the input `ended` (not on a signal,
    /// where they wait for their time).
    pub async fn finish(self, grace: Duration, ended: bool) {
        let _ = self.mode.send(if ended { Mode::Drain } else { Mode::Finish });
        let delivered = tokio::time::Instant::now() + grace;
        let mut running = Vec::new();
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(delivered, &mut task).await.is_err() {
                running.push((name, task));
            }
        }
        if running.is_empty() {
            return;
        }
        let _ = self.mode.send(Mode::Stop);
        let stopped = tokio::time::Instant::now() + STOP_WAIT;
        for (name, mut task) in running {
            if tokio::time::timeout_at(stopped, &mut task).await.is_err() {
                task.abort();
                warn!(notifier = %name, "The notifier did not stop in time; its message in flight is sent again at the next start");
            } else {
                warn!(notifier = %name, "Undelivered alerts remain; they are sent at the next start");
            }
        }
    }
}
