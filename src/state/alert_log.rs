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
//! Disk use is bounded: past `max_bytes` the oldest segment is deleted. A
//! reader keeps reading a segment it has open (the file lives on until it
//! is closed); a segment it had not reached yet is lost to it, and the
//! reader counts its alerts ([`LogReader::take_lost`]).
//!
//! Alert ids are deterministic (rule, group, event times), so after a crash
//! or a restart the events read again raise the same ids; the log remembers
//! the id of every alert it holds (read back from all its segments when
//! opened, forgotten with the segment the size limit deletes) and refuses
//! them a second time. A file read again from its start after a restart
//! thus raises, prints and delivers nothing twice, and the memory this
//! takes is bounded by the log's own size (about 18 bytes per alert). A
//! line torn by a crash is cut off when the log is opened; its alert comes
//! back when its events are read again, since their offsets were never
//! committed.

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

/// Deleted segments remembered with their size, for readers that had not
/// reached them.
const REMEMBERED_DELETIONS: usize = 4096;

/// What the writer and the readers share: where the fsynced log ends and
/// which segments the size limit deleted.
pub struct Outbox {
    dir: PathBuf,
    /// Names this log for good (`alerts/log.id`): a delivery position saved
    /// for another log (one wiped and started again) is not taken for one
    /// in this log.
    id: String,
    end: watch::Sender<Position>,
    /// Segment → (lines, bytes) of deleted segments.
    deleted: Mutex<BTreeMap<u64, (u64, u64)>>,
}

impl Outbox {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the oldest alert on disk starts.
    pub fn start(&self) -> Position {
        let first = segments(&self.dir).ok().and_then(|s| s.first().copied()).unwrap_or(1);
        Position { segment: first, offset: 0 }
    }

    /// The end of what is on disk.
    pub fn end(&self) -> Position {
        *self.end.borrow()
    }

    /// Changes whenever more of the log is on disk.
    pub fn watch_end(&self) -> watch::Receiver<Position> {
        self.end.subscribe()
    }

    /// The alerts of a deleted segment from `offset` on: exact for a
    /// whole segment, proportional to the bytes for a part of one; `None`
    /// if the deletion was before this process started.
    fn lost_in(&self, segment: u64, offset: u64) -> Option<u64> {
        let deleted = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        let &(lines, bytes) = deleted.get(&segment)?;
        if offset == 0 || bytes == 0 {
            return Some(lines);
        }
        Some((lines as f64 * bytes.saturating_sub(offset) as f64 / bytes as f64).round() as u64)
    }

    fn segment_path(&self, segment: u64) -> PathBuf {
        segment_path(&self.dir, segment)
    }
}

const LOG_ID: &str = "log.id";

/// The log's id, made up when the log is first opened.
fn log_id(dir: &Path) -> io::Result<String> {
    let path = dir.join(LOG_ID);
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let seed = format!("{:?}/{}/{}", std::time::SystemTime::now(), std::process::id(), dir.display());
    let id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()));
    let tmp = dir.join("log.id.tmp");
    fs::write(&tmp, format!("{id}\n"))?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(id)
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
    /// The ids (hashed) of every alert in the log's segments and buffer.
    remembered: HashSet<u64>,
    /// The ids of each segment, in step with `segments`: forgotten with it.
    ids: VecDeque<Vec<u64>>,
    /// The ids of the alerts in `buffer`, in order.
    buffered: VecDeque<u64>,
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
        let id = log_id(dir).map_err(|source| AlertLogError { path: dir.join(LOG_ID), source })?;
        let outbox = Arc::new(Outbox { dir: dir.to_owned(), id, end, deleted: Mutex::new(BTreeMap::new()) });
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(err)?;
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            tracing::warn!(path = %path.display(), bytes = text.len() - complete, "Cutting off a torn last line");
            file.set_len(complete as u64).map_err(err)?;
        }
        text.truncate(complete);
        if let Some(last) = sizes.back_mut() {
            last.1 = complete as u64;
        }
        let mut log = AlertLog {
            outbox,
            limits,
            file,
            segments: sizes,
            buffer: Vec::new(),
            remembered: HashSet::new(),
            ids: VecDeque::new(),
            buffered: VecDeque::new(),
        };
        let older: Vec<u64> = log.segments.iter().take(log.segments.len() - 1).map(|&(n, _)| n).collect();
        for number in older {
            let ids = match fs::read(segment_path(dir, number)) {
                Ok(older) => log.remember_lines(&older),
                Err(_) => Vec::new(),
            };
            log.ids.push_back(ids);
        }
        let ids = log.remember_lines(&text);
        log.ids.push_back(ids);
        log.outbox.end.send_replace(Position { segment: active, offset: complete as u64 });
        Ok(log)
    }

    /// Shared with the notifiers that read this log.
    pub fn outbox(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    /// Remembers the ids of a segment's lines and returns them.
    fn remember_lines(&mut self, text: &[u8]) -> Vec<u64> {
        let mut ids = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            if let Some(id) = id_of(line) {
                let id = xxh3_64(id.as_bytes());
                self.remembered.insert(id);
                ids.push(id);
            }
        }
        ids
    }

    /// Queues an alert for the next [`AlertLog::sync`]; false if the log
    /// already holds an alert with its id (a replayed duplicate).
    pub fn append(&mut self, alert: &Alert) -> bool {
        let id = xxh3_64(alert.notice_id().as_bytes());
        if !self.remembered.insert(id) {
            return false;
        }
        self.buffered.push_back(id);
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
    /// the readers. Segments are cut at line ends once they reach
    /// `segment_bytes`, so the size limit deletes old alerts, not a burst
    /// just written.
    pub fn sync(&mut self) -> Result<(), AlertLogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let mut written = 0;
        while written < buffer.len() {
            let (active, len) = *self.segments.back().expect("an active segment");
            let rest = &buffer[written..];
            let cut = cut_at_line(rest, self.limits.segment_bytes.saturating_sub(len) as usize);
            let path = self.outbox.segment_path(active);
            let result = self.file.write_all(&rest[..cut]).and_then(|()| self.file.sync_data());
            if let Err(source) = result {
                // Whatever part was written goes, so the retry leaves no
                // torn line in the middle of the segment.
                let _ = self.file.set_len(len);
                self.buffer = rest.to_vec();
                return Err(AlertLogError { path, source });
            }
            written += cut;
            let lines = rest[..cut].iter().filter(|&&b| b == b'\n').count();
            let moved = self.buffered.drain(..lines.min(self.buffered.len()));
            self.ids.back_mut().expect("ids for the active segment").extend(moved);
            let len = len + cut as u64;
            if let Some(last) = self.segments.back_mut() {
                last.1 = len;
            }
            if len >= self.limits.segment_bytes {
                if let Err(err) = self.rotate() {
                    self.buffer = buffer[written..].to_vec();
                    return Err(err);
                }
            }
        }
        self.buffer = buffer;
        self.buffer.clear();
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
        self.ids.push_back(Vec::new());
        Ok(())
    }

    /// Deletes the oldest segments while the log is over its size limit.
    fn enforce_limit(&mut self) {
        let mut total: u64 = self.segments.iter().map(|(_, len)| len).sum();
        while total > self.limits.max_bytes && self.segments.len() > 1 {
            let Some((segment, len)) = self.segments.pop_front() else { break };
            for id in self.ids.pop_front().unwrap_or_default() {
                self.remembered.remove(&id);
            }
            total -= len;
            let path = self.outbox.segment_path(segment);
            let lines = count_lines(&path);
            {
                let mut deleted = self.outbox.deleted.lock().unwrap_or_else(|p| p.into_inner());
                deleted.insert(segment, (lines, len));
                while deleted.len() > REMEMBERED_DELETIONS {
                    deleted.pop_first();
                }
            }
            tracing::debug!(segment, lines, "Deleting the oldest alert log segment (state.alert_log.max_bytes)");
            if let Err(err) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %err, "Could not delete an old alert log segment");
            }
        }
    }
}

/// How much of `bytes` (whole lines) fits in `room`; at least one line.
fn cut_at_line(bytes: &[u8], room: usize) -> usize {
    if bytes.len() <= room {
        return bytes.len();
    }
    match bytes[..room].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1),
    }
}

fn count_lines(path: &Path) -> u64 {
    let Ok(mut file) = File::open(path) else { return 0 };
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

/// The notice id of a logged alert line (see [`Alert::notice_id`]).
fn id_of(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
        #[serde(default)]
        update: u32,
    }
    let Id { id, update } = serde_json::from_slice::<Id>(line).ok()?;
    Some(if update == 0 { id } else { format!("{id}.{update}") })
}

/// Reads the log from a position, line by line, never past what is fsynced.
pub struct LogReader {
    outbox: Arc<Outbox>,
    at: Position,
    file: Option<(u64, BufReader<File>)>,
    lost: Lost,
}

/// Alerts a reader skipped because the size limit deleted their segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    pub alerts: u64,
    /// Segments deleted before this process started: their count is unknown.
    pub uncounted_segments: u64,
}

impl LogReader {
    pub fn new(outbox: Arc<Outbox>, at: Position) -> LogReader {
        LogReader { outbox, at, file: None, lost: Lost::default() }
    }

    /// What was skipped since the last call.
    pub fn take_lost(&mut self) -> Lost {
        std::mem::take(&mut self.lost)
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
                        let Some(next) = next else { return Ok(false) };
                        for skipped in self.at.segment..next {
                            let offset = if skipped == self.at.segment { self.at.offset } else { 0 };
                            match self.outbox.lost_in(skipped, offset) {
                                Some(alerts) => self.lost.alerts += alerts,
                                None => self.lost.uncounted_segments += 1,
                            }
                        }
                        self.at = Position { segment: next, offset: 0 };
                        continue;
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
            events: None,
            top: Vec::new(),
            update: 0,
            score: None,
            value: None,
            observed: None,
            baseline: None,
            tags: Vec::new().into(),
            runbook: None,
            fingerprint: String::new(),
            evidence: vec![],
            raised_at: None,
            status: Default::default(),
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
    fn an_update_is_a_notice_of_its_own_and_is_refused_only_when_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AlertLog::open(dir.path(), LogLimits::default()).unwrap();
        let first = alert("a1");
        let mut update = alert("a1");
        update.update = 1;
        assert!(log.append(&first));
        assert!(log.append(&update), "same alert id, next update");
        log.sync().unwrap();
        drop(log);
        let mut log = AlertLog::open(dir.path(), LogLimits::default()).unwrap();
        assert!(!log.append(&update), "the update read back from the file");
        assert!(!log.append(&first));
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
        assert!(!log.append(&alert("x19")), "ids of the last segment are remembered");
        assert!(!log.append(&alert("x0")), "and of the first");
    }

    #[test]
    fn the_size_limit_deletes_old_segments_and_a_reader_counts_what_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits { segment_bytes: 300, max_bytes: 1000 };
        let mut log = AlertLog::open(dir.path(), limits).unwrap();
        let outbox = log.outbox();
        let mut early = LogReader::new(outbox.clone(), outbox.end());
        let mut first = Vec::new();
        log.append(&alert("y0"));
        log.sync().unwrap();
        assert!(early.next_line(&mut first).unwrap(), "the early reader has the first segment open");
        for i in 1..40 {
            log.append(&alert(&format!("y{i}")));
            if i % 2 == 1 || i >= 30 {
                log.sync().unwrap();
            }
        }
        for i in 40..60 {
            log.append(&alert(&format!("y{i}")));
        }
        log.sync().unwrap();
        let on_disk: u64 = segments(dir.path())
            .unwrap()
            .iter()
            .map(|&s| fs::metadata(segment_path(dir.path(), s)).unwrap().len())
            .sum();
        assert!(on_disk <= 1000 + 300, "{on_disk} bytes kept");

        let mut late = LogReader::new(outbox, Position { segment: 1, offset: 0 });
        let ids = read_all(&mut late);
        let lost = late.take_lost();
        assert_eq!(lost.uncounted_segments, 0);
        assert!(lost.alerts > 0);
        assert_eq!(ids.len() as u64 + lost.alerts, 60, "every alert is either readable or counted lost");
        assert!(ids.len() > 3, "a burst written at once keeps its newest alerts: {ids:?}");
        assert_eq!(ids.last().map(String::as_str), Some("y59"));

        let rest = read_all(&mut early);
        let lost = early.take_lost();
        assert!(rest.starts_with(&["y1".to_owned()]), "an open segment is read to its end after deletion: {rest:?}");
        assert_eq!(1 + rest.len() as u64 + lost.alerts, 60);

        // The ids of deleted segments are forgotten, those kept are not,
        // also after reopening: memory follows the log's size.
        assert_eq!(log.remembered.len(), ids.len());
        assert!(!log.append(&alert("y59")));
        drop(log);
        let log = AlertLog::open(dir.path(), limits).unwrap();
        assert_eq!(log.remembered.len(), ids.len());
    }
}
