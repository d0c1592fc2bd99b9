//! vigil's own durable records: the alert log (the outbox every notifier
//! reads) and the engine's checkpoints. Both are written atomically and
//! read back only by vigil; a notifier's delivery position is kept beside
//! its worker (`notify/worker.rs`).

pub mod alert_log;
pub mod checkpoint;
