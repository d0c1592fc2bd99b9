//! vigil: real-time security anomaly detection and alerting.
//!
//! Data flows one way: `source` (bytes) → `event` (decode) → `detect`
//! (rules and detector state) → `alert` → `notify`. See
//! `docs/ARCHITECTURE.md` for the map and the invariants.

pub mod detect;
pub mod event;
pub mod rules;
pub mod time;
pub mod ruleset;
pub mod alert;
pub mod engine;
pub mod pipeline;
pub mod ruletest;
pub mod config;
pub mod load;
pub mod notify;
pub mod telemetry;
pub mod source;
