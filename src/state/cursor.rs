//! Each notifier's delivery position in the alert log and what it must
//! remember across restarts (when its digest is due, which incidents it
//! holds open): `<state>/outbox/<notifier>.json`, replaced atomically
//! (write, fsync, rename), so a crash leaves the old position or the new.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::alert_log::Position;

/// Persisted delivery state of one notifier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub delivered: Position,
    /// The alert log `delivered` is a position in ([`super::alert_log::Outbox::id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Unix seconds at which the next digest is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_digest: Option<i64>,
    /// Open incidents (fingerprint) and the unix second they resolve at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolves: BTreeMap<String, i64>,
}

/// Why a saved position could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error(transparent)]
    Io(std::io::Error),
    /// The file is there but does not hold a position.
    #[error(transparent)]
    Unreadable(serde_json::Error),
}

/// The file that holds one notifier's [`Cursor`].
#[derive(Debug)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    /// The file of notifier `name` in `dir`, which is created if missing.
    pub fn new(dir: &Path, name: &str) -> std::io::Result<CursorFile> {
        std::fs::create_dir_all(dir)?;
        Ok(CursorFile { path: dir.join(format!("{name}.json")) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved cursor; none if there is no file yet.
    pub fn read(&self) -> Result<Option<Cursor>, CursorError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(CursorError::Unreadable),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(CursorError::Io(err)),
        }
    }

    /// Replaces the saved cursor: write, fsync, rename.
    pub fn write(&self, cursor: &Cursor) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut file, cursor)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_state_round_trips_and_stays_small_when_empty() {
        let empty = Cursor::default();
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#"{"delivered":{"segment":0,"offset":0}}"#);
        let cursor = Cursor {
            delivered: Position { segment: 3, offset: 1200 },
            log: Some("0123abcd".into()),
            next_digest: Some(1_800_000_000),
            resolves: BTreeMap::from([("f00".to_owned(), 1_800_000_100)]),
        };
        let text = serde_json::to_string(&cursor).unwrap();
        assert_eq!(serde_json::from_str::<Cursor>(&text).unwrap(), cursor);
        assert!(serde_json::from_str::<Cursor>(r#"{"delivered":{"segment":1,"offset":0},"x":1}"#).is_err());
    }

    #[test]
    fn a_written_cursor_reads_back_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = CursorFile::new(&dir.path().join("outbox"), "pager").unwrap();
        assert!(file.read().unwrap().is_none());
        let cursor = Cursor { delivered: Position { segment: 1, offset: 7 }, ..Cursor::default() };
        file.write(&cursor).unwrap();
        assert_eq!(file.read().unwrap(), Some(cursor));
        std::fs::write(file.path(), "{").unwrap();
        assert!(matches!(file.read(), Err(CursorError::Unreadable(_))));
    }
}
