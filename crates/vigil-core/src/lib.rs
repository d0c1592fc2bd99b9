//! vigil's detection core: everything between a line of bytes and an
//! alert, with no IO, no clock and no metrics.
//!
//! Data flows one way: `event` (decode) → `detect` (rules and detector
//! state) → `alert`, driven by `engine` and `pipeline`. The daemon (the
//! `vigil` crate) feeds it bytes and event-time ticks and takes alerts out;
//! whatever touches files, sockets, the wall clock or a metrics registry
//! lives there. See `docs/ARCHITECTURE.md` for the map and the invariants.

#![warn(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod alert;
pub mod detect;
pub mod engine;
pub mod event;
pub mod incident;
pub mod pipeline;
pub mod rules;
pub mod ruleset;
pub mod ruletest;
pub mod shipped;
pub mod time;
