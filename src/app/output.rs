//! The daemon's output task: alerts through the detection stage into the
//! alert log, then a copy on stdout or `output.path`.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::wall_now;
use crate::alert::Alert;
use crate::app::stage::Stage;
use crate::config::{OutputFormat, Settings};
use crate::notify::console::{self, Style};

/// The local daemon's alert log, as the output task writes it.
pub(super) struct LocalLog {
    pub(super) stage: Stage,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) stopping: Arc<AtomicBool>,
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
pub(super) async fn write_alerts(
    settings: Settings,
    mut rx: mpsc::Receiver<Alert>,
    mut log: Option<LocalLog>,
) -> Result<()> {
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
