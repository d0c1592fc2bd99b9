//! The alert log: every alert as a JSON line, appended and fsynced before
//! the source position that raised it is acknowledged (SPEC: "Alerts").
//!
//! It is also the notifiers' durable outbox. Each notifier reads the log
//! with its own [`LogReader`] from a [`Position`] it persists once a
//! delivery is confirmed, so a crash or a restart resumes where delivery
//! stopped and a notifier that is down only falls behind. Readers see only
//! what is fsynced ([`Outbox::end`]).
//!
//! The log is a directory of numbered segments (`000001.jsonl`, ...), never
//! renamed, so a reader's position stays valid while the writer rotates.
//! Disk use is bounded: past `max_bytes` the oldest segment is deleted,
//! and a notifier that had not yet delivered from it is told how many
//! alerts it lost ([`Outbox`]'s drop handler).
//!
//! Alert ids are deterministic (rule, group, event times), so after a crash
//! the events read again raise the same ids; the log remembers the latest
//! ids it holds and refuses them a second time. A line torn by a crash is
//! cut off when the log is opened; its alert comes back when its events are
//! read again, since their offsets were never committed.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
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

/// A place in the log: a segment and a byte offset in it. Ordered, so
/// "delivered up to" and "written up to" compare directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// How large the log may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// The oldest segments are deleted while the log is larger.
    pub max_bytes: u64,
}

impl Default for LogLimits {
    fn default() -> LogLimits {
        LogLimits { segment_bytes: 16 << 20, max_bytes: 1 << 30 }
    }
}

/// Called with a notifier's name and the number of its undelivered alerts
/// in a segment that the size limit deleted.
pub type DropHandler = Box<dyn Fn(&str, u64) + Send + Sync>;

/// What the writer and the readers share: where the fsynced log ends and
/// where each reader has delivered up to.
pub struct Outbox {
    dir: PathBuf,
    end: watch::Sender<Position>,
    readers: Mutex<BTreeMap<String, Position>>,
    on_drop: Mutex<Option<DropHandler>>,
}

impl Outbox {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The end of what is on disk.
    pub fn end(&self) -> Position {
        *self.end.borrow()
    }

    /// Changes whenever more of the log is on disk.
    pub fn watch_end(&self) -> watch::Receiver<Position> {
        self.end.subscribe()
    }

    /// Records how far a reader has delivered, so the size limit can tell
    /// what deleting a segment costs it.
    pub fn set_reader(&self, name: &str, delivered: Position) {
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), delivered);
    }

    pub fn on_drop(&self, handler: DropHandler) {
        *self.on_drop.lock().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    fn segment_path(&self, segment: u64) -> PathBuf {
        segment_path(&self.dir, segment)
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:06}.jsonl"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name.strip_suffix(".jsonl").and_then(|n| n.parse::<u64>().ok()) {
            found.push(number);
        }
    }
    found.sort_unstable();
    Ok(found)
}

pub struct AlertLog {
    outbox: Arc<Outbox>,
    limits: LogLimits,
    file: File,
    /// Segments on disk with their sizes, oldest first; the last is written.
    segments: VecDeque<(u64, u64)>,
    buffer: Vec<u8>,
    remembered: HashSet<u64>,
    order: VecDeque<u64>,
}

impl AlertLog {
    /// Opens (or creates) the log in `dir` and remembers the ids at its end.
    pub fn open(dir: &Path, limits: LogLimits) -> Result<AlertLog, AlertLogError> {
        let err = |source| AlertLogError { path: dir.to_owned(), source };
        fs::create_dir_all(dir).map_err(err)?;
        let mut numbers = segments(dir).map_err(err)?;
        if numbers.is_empty() {
            numbers.push(1);
        }
        let mut sizes = VecDeque::new();
        for &number in &numbers {
            let len = fs::metadata(segment_path(dir, number)).map_or(0, |m| m.len());
            sizes.push_back((number, len));
        }
        let (active, _) = *sizes.back().expect("at least one segment");
        let path = segment_path(dir, active);
        let err = |source| AlertLogError { path: path.clone(), source };
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(err)?;
        let (end, _) = watch::channel(Position::default());
        let outbox = Arc::new(Outbox {
            dir: dir.to_owned(),
            end,
            readers: Mutex::new(BTreeMap::new()),
            on_drop: Mutex::new(None),
        });
        let len = file.metadata().map_err(err)?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(err)?;
        let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < tail.len() {
            tracing::warn!(path = %path.display(), bytes = tail.len() - complete, "Cutting off a torn last line");
            file.set_len(start + complete as u64).map_err(err)?;
        }
        let active_len = start + complete as u64;
        if let Some(last) = sizes.back_mut() {
            last.1 = active_len;
        }
        let mut log = AlertLog {
            outbox,
            limits,
            file,
            segments: sizes,
            buffer: Vec::new(),
            remembered: HashSet::new(),
            order: VecDeque::new(),
        };
        // Ids from the segment before, if the active one is young.
        if active_len < TAIL_BYTES && log.segments.len() > 1 {
            let (previous, _) = log.segments[log.segments.len() - 2];
            if let Ok(text) = fs::read(segment_path(dir, previous)) {
                log.remember_lines(&text);
            }
        }
        // The first line of a tail that starts mid-file may be partial.
        let skip = if start > 0 { tail.iter().position(|&b| b == b'\n').map_or(complete, |i| i + 1) } else { 0 };
        log.remember_lines(&tail[skip.min(complete)..complete]);
        log.outbox.end.send_replace(Position { segment: active, offset: active_len });
        Ok(log)
    }

    /// Shared with the notifiers that read this log.
    pub fn outbox(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.outbox.dir
    }

    fn remember_lines(&mut self, text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            if let Some(id) = id_of(line) {
                self.remember(xxh3_64(id.as_bytes()));
            }
        }
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

    /// Writes the queued alerts, waits until they are on disk, then tells
    /// the readers.
    pub fn sync(&mut self) -> Result<(), AlertLogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let (active, len) = *self.segments.back().expect("an active segment");
        let path = self.outbox.segment_path(active);
        let err = |source| AlertLogError { path: path.clone(), source };
        self.file.write_all(&self.buffer).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        let len = len + self.buffer.len() as u64;
        self.buffer.clear();
        if let Some(last) = self.segments.back_mut() {
            last.1 = len;
        }
        if len >= self.limits.segment_bytes {
            self.rotate()?;
        }
        self.enforce_limit();
        let (segment, offset) = *self.segments.back().expect("an active segment");
        self.outbox.end.send_replace(Position { segment, offset });
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AlertLogError> {
        let (active, _) = *self.segments.back().expect("an active segment");
        let next = active + 1;
        let path = self.outbox.segment_path(next);
        let err = |source| AlertLogError { path: path.clone(), source };
        self.file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(err)?;
        // The new name must survive a crash before anything is written to it.
        File::open(&self.outbox.dir).and_then(|d| d.sync_all()).map_err(err)?;
        self.segments.push_back((next, 0));
        Ok(())
    }

    /// Deletes the oldest segments while the log is over its size limit.
    fn enforce_limit(&mut self) {
        let mut total: u64 = self.segments.iter().map(|(_, len)| len).sum();
        while total > self.limits.max_bytes && self.segments.len() > 1 {
            let Some((segment, len)) = self.segments.pop_front() else { break };
            total -= len;
            let path = self.outbox.segment_path(segment);
            let readers = self.outbox.readers.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for (name, delivered) in readers.iter().filter(|(_, at)| at.segment <= segment) {
                let from = if delivered.segment == segment { delivered.offset } else { 0 };
                let lost = count_lines(&path, from);
                if lost > 0 {
                    if let Some(handler) = &*self.outbox.on_drop.lock().unwrap_or_else(|p| p.into_inner()) {
                        handler(name, lost);
                    }
                }
            }
            if let Err(err) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %err, "Could not delete an old alert log segment");
            }
        }
    }
}

fn count_lines(path: &Path, from: u64) -> u64 {
    let Ok(mut file) = File::open(path) else { return 0 };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return 0;
    }
    let mut count = 0;
    let mut chunk = [0u8; 1 << 16];
    while let Ok(n) = file.read(&mut chunk) {
        if n == 0 {
            break;
        }
        count += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    count
}

/// The `id` of a logged alert line.
fn id_of(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(line).ok().map(|i| i.id)
}

/// Reads the log from a position, line by line, never past what is fsynced.
pub struct LogReader {
    outbox: Arc<Outbox>,
    at: Position,
    file: Option<(u64, BufReader<File>)>,
    /// Segments deleted by the size limit before this reader got to them.
    pub skipped_segments: u64,
}

impl LogReader {
    pub fn new(outbox: Arc<Outbox>, at: Position) -> LogReader {
        LogReader { outbox, at, file: None, skipped_segments: 0 }
    }

    /// The position after the last line read.
    pub fn position(&self) -> Position {
        self.at
    }

    /// Reads the next line into `line` (without its newline); false when
    /// the reader has caught up with the fsynced end.
    pub fn next_line(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            let end = self.outbox.end();
            if self.at >= end {
                return Ok(false);
            }
            let reader = match &mut self.file {
                Some((segment, reader)) if *segment == self.at.segment => reader,
                _ => match File::open(self.outbox.segment_path(self.at.segment)) {
                    Ok(mut file) => {
                        file.seek(SeekFrom::Start(self.at.offset))?;
                        &mut self.file.insert((self.at.segment, BufReader::new(file))).1
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        let next = segments(&self.outbox.dir)?.into_iter().find(|&s| s > self.at.segment);
                        match next {
                            Some(segment) => {
                                self.skipped_segments += 1;
                                self.at = Position { segment, offset: 0 };
                                continue;
                            }
                            None => return Ok(false),
                        }
                    }
                    Err(err) => return Err(err),
                },
            };
            line.clear();
            let limit = if self.at.segment == end.segment { end.offset - self.at.offset } else { u64::MAX };
            let n = reader.by_ref().take(limit).read_until(b'\n', line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                if self.at.segment < end.segment {
                    // A closed segment is read to its end: on to the next.
                    self.file = None;
                    self.at = Position { segment: self.at.segment + 1, offset: 0 };
                    continue;
                }
                // Not fsynced yet (cannot happen with the limit above).
                self.file = None;
                return Ok(false);
            }
            self.at.offset += n as u64;
            line.pop();
            return Ok(true);
        }
    }
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
            group: vec![("user".into(), "alice".into())],
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

    fn read_all(reader: &mut LogReader) -> Vec<String> {
        let mut line = Vec::new();
        let mut ids = Vec::new();
        while reader.next_line(&mut line).unwrap() {
            let alert: Alert = serde_json::from_slice(&line).unwrap();
            ids.push(alert.id);
        }
        ids
    }

    #[test]
    fn refuses_ids_it_holds_across_reopening_and_cuts_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/alerts");
        let mut log = AlertLog::open(&path, LogLimits::default()).unwrap();
        assert!(log.append(&alert("a1")));
        assert!(log.append(&alert("a2")));
        assert!(!log.append(&alert("a1")));
        log.sync().unwrap();
        assert!(!log.has_pending());
        drop(log);

        let segment = segment_path(&path, 1);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(br#"{"id":"torn","ru"#).unwrap();
        drop(file);
        let mut log = AlertLog::open(&path, LogLimits::default()).unwrap();
        assert!(!log.append(&alert("a2")), "remembered from the file");
        assert!(log.append(&alert("torn")), "a torn line was never logged");
        log.sync().unwrap();
        let text = fs::read_to_string(&segment).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        let mut reader = LogReader::new(log.outbox(), Position::default());
        assert_eq!(read_all(&mut reader), ["a1", "a2", "torn"]);
    }

    #[test]
    fn readers_see_only_synced_lines_and_follow_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits { segment_bytes: 400, max_bytes: 1 << 20 };
        let mut log = AlertLog::open(dir.path(), limits).unwrap();
        let mut reader = LogReader::new(log.outbox(), log.outbox().end());
        log.append(&alert("x0"));
        assert!(read_all(&mut reader).is_empty(), "not fsynced yet");
        log.sync().unwrap();
        for i in 1..20 {
            log.append(&alert(&format!("x{i}")));
            log.sync().unwrap();
        }
        assert!(segments(dir.path()).unwrap().len() > 3, "rotated");
        let expected: Vec<String> = (0..20).map(|i| format!("x{i}")).collect();
        assert_eq!(read_all(&mut reader), expected);
        assert_eq!(reader.position(), log.outbox().end());

        drop(log);
        let mut log = AlertLog::open(dir.path(), limits).unwrap();
        assert!(!log.append(&alert("x19")), "ids of the last segments are remembered");
    }

    #[test]
    fn the_size_limit_deletes_old_segments_and_reports_what_a_reader_lost() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits { segment_bytes: 300, max_bytes: 1000 };
        let mut log = AlertLog::open(dir.path(), limits).unwrap();
        let outbox = log.outbox();
        let lost = Arc::new(Mutex::new(Vec::new()));
        let sink = lost.clone();
        outbox.on_drop(Box::new(move |name, n| sink.lock().unwrap().push((name.to_owned(), n))));
        outbox.set_reader("slow", Position::default());
        outbox.set_reader("fast", Position { segment: u64::MAX, offset: 0 });
        for i in 0..40 {
            log.append(&alert(&format!("y{i}")));
            log.sync().unwrap();
        }
        let on_disk: u64 = segments(dir.path())
            .unwrap()
            .iter()
            .map(|&s| fs::metadata(segment_path(dir.path(), s)).unwrap().len())
            .sum();
        assert!(on_disk <= 1000 + 300, "{on_disk} bytes kept");
        let lost = lost.lock().unwrap();
        assert!(lost.iter().all(|(name, _)| name == "slow"), "{lost:?}");
        let dropped: u64 = lost.iter().map(|(_, n)| n).sum();

        let mut reader = LogReader::new(outbox, Position::default());
        let ids = read_all(&mut reader);
        assert!(reader.skipped_segments > 0);
        assert_eq!(ids.len() as u64 + dropped, 40, "every alert is either readable or reported lost");
        assert_eq!(ids.last().map(String::as_str), Some("y39"));
    }
}
