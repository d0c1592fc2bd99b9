//! The detection stage every daemon shares: raised alerts on their way out.
//!
//! ```text
//! pipeline ──alerts──▶ stamp (wall clock) ──▶ alert log (append) ──sync──▶ released: console, hand-over
//!                                                └─ already there (raised again after a restart): dropped, counted
//! ```
//!
//! The local daemon and the Kafka loop both take their pipelines' alerts
//! through one [`Stage`], so the rules that keep delivery honest live in one
//! place: an alert is shown or handed on only once the alert log holds it on
//! disk, and an alert the log already holds is neither shown nor handed on
//! again.

use prometheus::IntCounter;

use crate::alert::Alert;
use crate::pipeline::{Pipeline, Watch};
use crate::state::alert_log::{AlertLog, AlertLogError};
use crate::time::Timestamp;

pub struct Stage {
    log: AlertLog,
    /// Appended, not yet synced.
    pending: Vec<Alert>,
    replayed: IntCounter,
}

impl Stage {
    /// `replayed` counts alerts the log already held.
    pub fn new(log: AlertLog, replayed: IntCounter) -> Stage {
        Stage { log, pending: Vec::new(), replayed }
    }

    /// Takes a pipeline's alerts: stamped with the wall clock `now` and
    /// appended to the log (not yet synced).
    pub fn take_from(&mut self, pipeline: &mut Pipeline<impl Watch>, now: Timestamp) {
        for alert in pipeline.drain_alerts() {
            self.take(alert, now);
        }
    }

    /// Takes one alert (see [`Stage::take_from`]).
    pub fn take(&mut self, mut alert: Alert, now: Timestamp) {
        alert.raised_at.get_or_insert(now);
        if self.log.append(&alert) {
            self.pending.push(alert);
        } else {
            self.replayed.inc();
        }
    }

    /// Whether anything waits for [`Stage::sync`].
    pub fn has_pending(&self) -> bool {
        self.log.has_pending() || !self.pending.is_empty()
    }

    /// Syncs the log; on success the alerts it now holds are released, in
    /// order. On failure nothing is released and the alerts stay pending.
    pub fn sync(&mut self) -> Result<std::vec::Drain<'_, Alert>, AlertLogError> {
        self.log.sync()?;
        Ok(self.pending.drain(..))
    }
}
