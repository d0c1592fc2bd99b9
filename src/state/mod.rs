//! vigil's own durable records: the alert log (the outbox every notifier
//! reads), the engine's checkpoints, and each notifier's delivery position
//! in the log (`cursor`). All are written atomically and read back only by
//! vigil.

pub mod alert_log;
pub mod checkpoint;
pub mod cursor;
