//! vigil: real-time security anomaly detection and alerting.
//!
//! Data flows one way: `source` (bytes) → `event` (decode) → `detect`
//! (rules and detector state) → `alert` → `notify`. See
//! `docs/ARCHITECTURE.md` for the map and the invariants.

pub mod alert;
pub mod alert_log;
pub mod app;
pub mod checkpoint;
pub mod config;
pub mod detect;
pub mod engine;
pub mod event;
pub mod incident;
pub mod kafka;
pub mod load;
pub mod notify;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod ruleset;
pub mod ruletest;
pub mod source;
pub mod stage;
pub mod telemetry;
pub mod time;
