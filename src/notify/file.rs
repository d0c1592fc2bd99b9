//! The file and stdout notifiers (`type: file`, `type: stdout`): alert
//! lines appended to a file or written to stdout; their settings and sink.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::console::{self, Style};
use super::message::Message;
use super::sink::Failure;
use crate::config::OutputFormat;
use crate::rules::fields::FieldReader;

/// Reads a `type: file` (`to_file`) or `type: stdout` notifier.
pub fn read(r: &mut FieldReader<'_>, to_file: bool, base: &Path) -> Option<(Option<PathBuf>, OutputFormat)> {
    let format = match r.get::<String>("format") {
        None => OutputFormat::Json,
        Some(f) => match f.value.as_str() {
            "json" => OutputFormat::Json,
            "text" => OutputFormat::Text,
            other => {
                r.sink.error(&f, format!("unknown format `{other}` (json, text)"));
                OutputFormat::Json
            }
        },
    };
    if !to_file {
        return Some((None, format));
    }
    let path = r.require::<String>("path", || "a `file` notifier needs a `path`".into())?;
    Some((Some(base.join(path.value)), format))
}

/// Alerts appended to a file (or stdout), one line each. A message's lines
/// are rendered first and written in one `write` call, so a process killed
/// mid-delivery leaves whole lines or a torn tail that the next start
/// removes, never a fragment with the next line glued to it.
pub struct FileSink {
    out: Box<dyn Write + Send>,
    file: Option<std::fs::File>,
    style: Style,
    rendered: Vec<u8>,
}

impl FileSink {
    pub fn new(path: Option<&std::path::Path>, format: OutputFormat) -> Result<FileSink> {
        let style = match format {
            OutputFormat::Text => Style::Text { color: false },
            _ => Style::Json,
        };
        match path {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let torn = cut_torn_tail(&file).with_context(|| format!("checking the end of {}", path.display()))?;
                if torn > 0 {
                    tracing::warn!(path = %path.display(), bytes = torn,
                        "Removed a torn last line (vigil was stopped mid-write); its alerts are delivered again");
                }
                Ok(FileSink::to(Box::new(file.try_clone()?), Some(file), style))
            }
            None => Ok(FileSink::to(Box::new(std::io::stdout()), None, style)),
        }
    }

    fn to(out: Box<dyn Write + Send>, file: Option<std::fs::File>, style: Style) -> FileSink {
        FileSink { out, file, style, rendered: Vec::new() }
    }

    pub fn send(&mut self, message: &Message) -> Result<(), Failure> {
        let retry = |e: std::io::Error| Failure::Retry(e.to_string());
        self.rendered.clear();
        for alert in &message.alerts {
            console::write(&mut self.rendered, alert, self.style).map_err(retry)?;
        }
        self.out.write_all(&self.rendered).map_err(retry)?;
        self.out.flush().map_err(retry)?;
        if let Some(file) = &self.file {
            file.sync_data().map_err(retry)?;
        }
        Ok(())
    }
}

/// Truncates `file` after its last newline; returns the bytes removed.
fn cut_torn_tail(file: &std::fs::File) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut chunk = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.read_exact_at(part, start)?;
        if let Some(at) = part.iter().rposition(|b| *b == b'\n') {
            end = start + at as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end)?;
        file.sync_data()?;
    }
    Ok(len - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::alert;
    use crate::rules::Severity;
    use std::sync::{Arc, Mutex};

    /// Records each `write` call it gets.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_message_is_written_in_one_call() {
        let calls = Calls::default();
        let mut sink = FileSink::to(Box::new(calls.clone()), None, Style::Json);
        let alerts = vec![alert("a1", Severity::Critical, "alice"), alert("a2", Severity::Warning, "bob")];
        sink.send(&Message::records(alerts)).unwrap();
        let calls = calls.0.lock().unwrap();
        assert_eq!(calls.len(), 1);
        let text = String::from_utf8(calls[0].clone()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{text}");
    }

    #[test]
    fn a_torn_last_line_is_cut_at_start_and_whole_lines_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.jsonl");
        let whole = "{\"id\":\"a\"}\n".repeat(2000);
        std::fs::write(&path, format!("{whole}{{\"id\":\"b\",\"sum")).unwrap();
        let mut sink = FileSink::new(Some(&path), OutputFormat::Json).unwrap();
        sink.send(&Message::single(alert("a3", Severity::Critical, "carol"))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&whole));
        assert_eq!(text.lines().count(), 2001);
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));

        // No newline at all: all of it is a torn line.
        std::fs::write(&path, "{\"id\":").unwrap();
        drop(FileSink::new(Some(&path), OutputFormat::Json).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // A file ending in a newline is left as it is.
        std::fs::write(&path, &whole).unwrap();
        drop(FileSink::new(Some(&path), OutputFormat::Json).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
    }
}
