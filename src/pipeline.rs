//! Bytes to alerts: the decoder and the engine, with the bookkeeping every
//! front end needs (rejections by reason, events by kind). `vigil replay`,
//! `vigil test`, the daemon and the benchmarks all drive this one type.

use crate::alert::Alert;
use crate::engine::{Disposition, Engine};
use crate::event::{DecodeError, Decoder, Reason};
use crate::ruleset::RuleSet;
use crate::time::Span;

/// Event kinds counted by name; any other kind is counted as `other`, so
/// the metric's labels stay bounded whatever producers send.
pub const KNOWN_KINDS: &[&str] =
    &["login", "api_call", "message_volume", "setting_change", "data_access", "user_admin"];

pub struct Pipeline {
    decoder: Decoder,
    engine: Engine,
    alerts: Vec<Alert>,
    rejected: [u64; Reason::ALL.len()],
    by_kind: [u64; KNOWN_KINDS.len() + 1],
}

impl Pipeline {
    pub fn new(rules: &RuleSet, lateness: Span, max_event_bytes: usize) -> Pipeline {
        Pipeline {
            decoder: Decoder::with_max_bytes(rules.schema.clone(), max_event_bytes),
            engine: Engine::new(rules, lateness),
            alerts: Vec::new(),
            rejected: [0; Reason::ALL.len()],
            by_kind: [0; KNOWN_KINDS.len() + 1],
        }
    }

    /// Decodes and processes one event; its alerts wait for [`Pipeline::drain_alerts`].
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Disposition, DecodeError> {
        self.feed_or_kind(bytes, None)
    }

    /// Like [`Pipeline::feed`], with the `kind` of events that carry none.
    pub fn feed_or_kind(&mut self, bytes: &[u8], default_kind: Option<&str>) -> Result<Disposition, DecodeError> {
        match self.decoder.decode_bytes_or_kind(bytes, default_kind) {
            Ok(event) => {
                let kind = KNOWN_KINDS.iter().position(|k| *k == event.kind).unwrap_or(KNOWN_KINDS.len());
                self.by_kind[kind] += 1;
                Ok(self.engine.process(&event, &mut self.alerts))
            }
            Err(err) => {
                if let Some(i) = Reason::ALL.iter().position(|r| *r == err.reason) {
                    self.rejected[i] += 1;
                }
                Err(err)
            }
        }
    }

    /// Counts an event the source rejected before decoding (too large).
    pub fn reject(&mut self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i] += 1;
        }
    }

    /// The alerts raised since the last drain, in order.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, Alert> {
        self.alerts.drain(..)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn alerts_mut(&mut self) -> &mut Vec<Alert> {
        &mut self.alerts
    }

    /// Rejected events per reason.
    pub fn rejected(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL.iter().copied().zip(self.rejected.iter().copied())
    }

    /// Accepted events per kind label.
    pub fn by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KNOWN_KINDS.iter().copied().chain(["other"]).zip(self.by_kind.iter().copied())
    }
}
