//! vigil: real-time security anomaly detection and alerting.
//!
//! Data flows one way: `source` (bytes) → `event` (decode) → `detect`
//! (rules and detector state) → `alert` → `notify`. The pure part, from
//! decoding to alerts, is the `vigil-core` crate, re-exported here under
//! its module names; this crate holds what touches the world. See
//! `docs/ARCHITECTURE.md` for the map and the invariants.

pub use vigil_core::{alert, detect, engine, event, incident, pipeline, rules, ruleset, ruletest, shipped, time};

pub mod app;
pub mod config;
pub mod kafka;
pub mod notify;
pub mod source;
pub mod state;
pub mod telemetry;
