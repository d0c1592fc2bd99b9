//! vigil: real-time security anomaly detection and alerting.
//!
//! Data flows one way: `source` (bytes) → `event` (decode) → `detect`
//! (rules and detector state) → `alert` → `notify`. The pure part, from
//! decoding to alerts, is the `vigil-core` crate, re-exported here under
//! its module names; this crate holds what touches the world. See
//! `docs/ARCHITECTURE.md` for the map and the invariants.

pub use vigil_core::{alert, detect, engine, event, incident, pipeline, rules, ruleset, ruletest, time};

pub mod alert_log;
pub mod app;
pub mod checkpoint;
pub mod config;
pub mod kafka;
pub mod load;
pub mod notify;
pub mod reload;
pub mod source;
pub mod stage;
pub mod telemetry;
