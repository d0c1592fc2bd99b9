//! The alert log: every alert as a JSON line, appended and fsynced before
//! the source position that raised it is acknowledged (SPEC: "Alerts").
//!
//! It is also what makes at-least-once input safe to replay: alert ids are
//! deterministic (rule, group, event times), so after a crash the events
//! read again raise the same ids, and the log remembers the latest ids it
//! holds and refuses them a second time. A line torn by a crash is cut off
//! when the log is opened; its alert comes back when its events are read
//! again, since their offsets were never committed.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64;

use crate::alert::Alert;

/// Alert ids remembered for deduplication: far more than a replay from the
/// last checkpoint can raise again.
const REMEMBERED: usize = 1 << 16;
/// How much of the end of an existing log is read for ids at start-up.
const TAIL_BYTES: u64 = 64 << 20;

#[derive(Debug, Error)]
#[error("alert log {path}: {source}")]
pub struct AlertLogError {
    path: PathBuf,
    source: io::Error,
}

pub struct AlertLog {
    path: PathBuf,
    file: File,
    buffer: Vec<u8>,
    remembered: HashSet<u64>,
    order: VecDeque<u64>,
}

impl AlertLog {
    /// Opens (or creates) the log and remembers the ids at its end.
    pub fn open(path: &Path) -> Result<AlertLog, AlertLogError> {
        let err = |source| AlertLogError { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(path).map_err(err)?;
        let mut log = AlertLog {
            path: path.to_owned(),
            file: file.try_clone().map_err(err)?,
            buffer: Vec::new(),
            remembered: HashSet::new(),
            order: VecDeque::new(),
        };
        let len = file.metadata().map_err(err)?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(err)?;
        let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < tail.len() {
            tracing::warn!(path = %path.display(), bytes = tail.len() - complete, "Cutting off a torn last line");
            log.file.set_len(start + complete as u64).map_err(err)?;
        }
        // The first line of a tail that starts mid-file may be partial.
        let skip = if start > 0 { tail.iter().position(|&b| b == b'\n').map_or(complete, |i| i + 1) } else { 0 };
        for line in tail[skip.min(complete)..complete].split(|&b| b == b'\n') {
            if let Some(id) = id_of(line) {
                log.remember(xxh3_64(id.as_bytes()));
            }
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn remember(&mut self, id: u64) -> bool {
        if !self.remembered.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.remembered.remove(&old);
            }
        }
        true
    }

    /// Queues an alert for the next [`AlertLog::sync`]; false if the log
    /// already holds an alert with its id (a replayed duplicate).
    pub fn append(&mut self, alert: &Alert) -> bool {
        if !self.remember(xxh3_64(alert.id.as_bytes())) {
            return false;
        }
        // An `Alert` is plain data: serializing it cannot fail.
        serde_json::to_writer(&mut self.buffer, alert).expect("alerts serialize");
        self.buffer.push(b'\n');
        true
    }

    /// Whether alerts wait for [`AlertLog::sync`].
    pub fn has_pending(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Writes the queued alerts and waits until they are on disk.
    pub fn sync(&mut self) -> Result<(), AlertLogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let err = |source| AlertLogError { path: self.path.clone(), source };
        self.file.write_all(&self.buffer).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.buffer.clear();
        Ok(())
    }
}

/// The `id` of a logged alert line.
fn id_of(line: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    value.get("id")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            rule: "r".into(),
            title: "t".into(),
            severity: crate::rules::Severity::Warning,
            group: vec![],
            summary: String::new(),
            ts: crate::time::Timestamp(0),
            first_ts: crate::time::Timestamp(0),
            count: None,
            score: None,
            value: None,
            observed: None,
            baseline: None,
            tags: Vec::new().into(),
            runbook: None,
            fingerprint: String::new(),
            evidence: vec![],
            raised_at: None,
        }
    }

    #[test]
    fn refuses_ids_it_holds_across_reopening_and_cuts_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/alerts.jsonl");
        let mut log = AlertLog::open(&path).unwrap();
        assert!(log.append(&alert("a1")));
        assert!(log.append(&alert("a2")));
        assert!(!log.append(&alert("a1")));
        log.sync().unwrap();
        assert!(!log.has_pending());
        drop(log);

        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"id":"torn","ru"#).unwrap();
        drop(file);
        let mut log = AlertLog::open(&path).unwrap();
        assert!(!log.append(&alert("a2")), "remembered from the file");
        assert!(log.append(&alert("torn")), "a torn line was never logged");
        log.sync().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{text}");
    }
}
