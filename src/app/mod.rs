//! Wiring: the replay loop (`replay.rs`) and the daemon (`daemon.rs`: its
//! threads, signals and shutdown; `output.rs`: its output task; `stage.rs`:
//! the detection stage it shares with the Kafka loop; `reload.rs`: rule
//! reloads).
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

mod daemon;
mod output;
pub mod reload;
mod replay;
pub mod stage;

pub use daemon::{run, StartRules};
pub use replay::{open_input, replay, ReplayInput, ReplayReport, ReplaySources};

use crate::time::Timestamp;

/// The wall clock, for stamping alerts (`raised_at`) and ticking quiet
/// sources; the core itself runs on event time.
fn wall_now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}
