//! Checkpoints: an engine's state together with the source position it
//! covers, so that a restarted or rebalanced vigil resumes with its windows
//! and baselines instead of starting blind.
//!
//! One file per source partition, replaced atomically (write a temporary
//! file, fsync, rename, fsync the directory): a crash leaves the previous
//! checkpoint or the new one, never a torn file. The body is postcard (compact
//! and fast) behind a header with a format version and a checksum; a file
//! from another format version or with a bad checksum is refused with an
//! error and the caller starts that partition afresh.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::engine::{Engine, RestoreReport, Restored, Snapshot};

const MAGIC: &[u8; 8] = b"VIGILCK\0";
/// Bumped whenever the layout of detector state changes.
const FORMAT: u32 = 8;
const HEADER: usize = MAGIC.len() + 4 + 8;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a vigil checkpoint of format {FORMAT}")]
    Format { path: PathBuf },
    #[error("{path}: the checksum does not match (a damaged file)")]
    Checksum { path: PathBuf },
    /// The state could not be encoded, or the file's body decoded.
    #[error("{path}: {source}")]
    Codec { path: PathBuf, source: postcard::Error },
}

#[derive(Serialize)]
struct Body<'a> {
    /// The next source offset to read: every event before it is in the state.
    offset: i64,
    engine: Snapshot<'a>,
    marks: &'a [SourceMark],
}

#[derive(Deserialize)]
struct RestoredBody {
    offset: i64,
    engine: Restored,
    marks: Vec<SourceMark>,
}

/// For a partition of a re-keyed topic: the last offset of a source
/// partition whose event is in the state. Events re-keyed again after a
/// crash are recognised by it and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMark {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A checkpoint that was read and applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub offset: i64,
    pub report: RestoreReport,
    pub marks: Vec<SourceMark>,
}

/// A directory of checkpoints, one per source partition.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, topic: &str, partition: i32) -> PathBuf {
        // Kafka topic names are limited to [a-zA-Z0-9._-], safe as file names.
        self.dir.join(format!("{topic}-{partition}.ckpt"))
    }

    /// Writes the engine's state as of `offset`; returns the bytes written.
    pub fn save(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        engine: &Engine,
        marks: &[SourceMark],
    ) -> Result<u64, CheckpointError> {
        let path = self.path(topic, partition);
        let io_err = |source| CheckpointError::Io { path: path.clone(), source };
        let body = postcard::to_stdvec(&Body { offset, engine: engine.snapshot(), marks })
            .map_err(|source| CheckpointError::Codec { path: path.clone(), source })?;
        let mut bytes = Vec::with_capacity(HEADER + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT.to_le_bytes());
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        fs::create_dir_all(&self.dir).map_err(io_err)?;
        let temporary = path.with_extension("ckpt.tmp");
        let mut file = File::create(&temporary).map_err(io_err)?;
        file.write_all(&bytes).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        drop(file);
        fs::rename(&temporary, &path).map_err(io_err)?;
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(io_err)?;
        Ok(bytes.len() as u64)
    }

    /// Restores the partition's checkpoint into `engine`, if there is one.
    /// On an error the engine is unchanged.
    pub fn load(&self, topic: &str, partition: i32, engine: &mut Engine) -> Result<Option<Resumed>, CheckpointError> {
        let path = self.path(topic, partition);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        if bytes.len() < HEADER || &bytes[..8] != MAGIC || bytes[8..12] != FORMAT.to_le_bytes() {
            return Err(CheckpointError::Format { path });
        }
        let body = &bytes[HEADER..];
        if bytes[12..HEADER] != xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() {
            return Err(CheckpointError::Checksum { path });
        }
        let restored: RestoredBody =
            postcard::from_bytes(body).map_err(|source| CheckpointError::Codec { path, source })?;
        let report = engine.restore(restored.engine);
        Ok(Some(Resumed { offset: restored.offset, report, marks: restored.marks }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::ruleset::{RuleSet, RuleSources};
    use crate::time::Span;

    const RULE: &str = "id: auth.burst\ntitle: Burst\nseverity: critical\nfilter: {kind: login, outcome: failure}\n\
        detect: {type: threshold, group_by: [user], window: 5m, threshold: 4}\n\
        alert: {summary: burst}\n";

    fn rules(text: &str) -> RuleSet {
        let sources = RuleSources { files: vec![("r.yml".into(), text.into())], ..RuleSources::default() };
        RuleSet::compile(&sources).expect("valid rule")
    }

    fn failure(minute: u32) -> String {
        format!(r#"{{"ts":"2026-11-23T10:{minute:02}:00Z","kind":"login","user":"alice","outcome":"failure"}}"#)
    }

    fn feed(pipeline: &mut Pipeline, minutes: std::ops::Range<u32>) -> usize {
        minutes.map(|m| pipeline.feed(failure(m).as_bytes()).map(|_| pipeline.drain_alerts().count()).unwrap()).sum()
    }

    #[test]
    fn a_burst_straddling_a_restart_is_still_detected() {
        let rules = rules(RULE);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut before = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
        assert_eq!(feed(&mut before, 0..2), 0);
        let marks = [SourceMark { topic: "logins".into(), partition: 1, offset: 7 }];
        let bytes = store.save("events", 3, 42, before.engine(), &marks).unwrap();
        assert!(bytes > HEADER as u64);

        let mut after = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
        let resumed = store.load("events", 3, after.engine_mut()).unwrap().unwrap();
        let report = RestoreReport { rules: 1, dropped: 0 };
        assert_eq!(resumed, Resumed { offset: 42, report, marks: marks.to_vec() });
        assert_eq!(feed(&mut after, 2..4), 1, "the two failures before the restart count");

        let mut blind = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
        assert_eq!(feed(&mut blind, 2..4), 0, "without the checkpoint the burst is missed");
        assert!(store.load("events", 4, blind.engine_mut()).unwrap().is_none());
    }

    #[test]
    fn an_open_incident_survives_a_restart_and_its_update_keeps_the_alert_id() {
        let rules = rules(RULE);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut before = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
        let mut first = Vec::new();
        for minute in 0..4 {
            before.feed(failure(minute).as_bytes()).unwrap();
            first.extend(before.drain_alerts());
        }
        assert_eq!(first.len(), 1);
        store.save("events", 0, 4, before.engine(), &[]).unwrap();

        let mut after = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
        store.load("events", 0, after.engine_mut()).unwrap().unwrap();
        for minute in 4..6 {
            after.feed(failure(minute).as_bytes()).unwrap();
        }
        after.finish();
        let updates: Vec<_> = after.drain_alerts().collect();
        assert_eq!(updates.len(), 1, "the two failures after the restart update the alert");
        assert_eq!((updates[0].id.as_str(), updates[0].update), (first[0].id.as_str(), 1));
        assert_eq!(updates[0].events, Some(6));
    }

    #[test]
    fn a_changed_rule_starts_afresh_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut pipeline = Pipeline::new(&rules(RULE), Span::from_secs(60), 1 << 20);
        feed(&mut pipeline, 0..3);
        store.save("events", 0, 3, pipeline.engine(), &[]).unwrap();

        let changed = rules(&RULE.replace("threshold: 4", "threshold: 5"));
        let mut other = Pipeline::new(&changed, Span::from_secs(60), 1 << 20);
        let resumed = store.load("events", 0, other.engine_mut()).unwrap().unwrap();
        assert_eq!(resumed.report, RestoreReport { rules: 0, dropped: 1 });

        let path = dir.path().join("events-0.ckpt");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(store.load("events", 0, other.engine_mut()), Err(CheckpointError::Checksum { .. })));
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(store.load("events", 0, other.engine_mut()), Err(CheckpointError::Format { .. })));
    }

    /// Every shipped detector, through two weeks of demo traffic and the
    /// attacks: checkpointing and restoring at several points gives exactly
    /// the alerts of an uninterrupted run.
    #[test]
    fn restoring_is_transparent_for_every_detector() {
        let rules = RuleSet::compile(&crate::config::load::embedded_rules()).unwrap();
        let spec = crate::source::demo::DemoSpec { history_days: 7, users: 12, tokens: 6, ..Default::default() };
        let stream = crate::source::demo::generate(&spec);
        let run = |cuts: &[usize]| -> Vec<String> {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::new(dir.path());
            let mut pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
            let mut ids = Vec::new();
            for (i, (_, line)) in stream.events.iter().enumerate() {
                if cuts.contains(&i) {
                    store.save("t", 0, i as i64, pipeline.engine(), &[]).unwrap();
                    pipeline = Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
                    let resumed = store.load("t", 0, pipeline.engine_mut()).unwrap().unwrap();
                    assert_eq!(resumed.offset, i as i64);
                    assert_eq!(resumed.report.dropped, 0);
                }
                let _ = pipeline.feed(line.as_bytes());
                ids.extend(pipeline.drain_alerts().map(|a| a.id));
            }
            ids
        };
        let uninterrupted = run(&[]);
        assert!(uninterrupted.len() > 5, "the demo raises alerts: {}", uninterrupted.len());
        let n = stream.events.len();
        assert_eq!(run(&[n / 5, n / 2, n - n / 20, n - 200]), uninterrupted);
    }
}
