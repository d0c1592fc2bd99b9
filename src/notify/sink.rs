//! The receivers a notifier sends to, behind one `send`: email, webhook,
//! Kafka topic, file or stdout. Kafka and file sinks take every alert on its
//! own (they are records, not people), so route rate limits do not apply
//! to them.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus::IntCounter;

use super::console::{self, Style};
use super::email::Mailer;
use super::message::Descriptions;
use super::message::Message;
use super::webhook::Poster;
use crate::config::{Notifier, NotifierKind, OutputFormat};
use crate::kafka::producer::{Deliveries, Producer};

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try: a timeout, a refused connection, a 5xx, 408, 429.
    Retry(String),
    /// The receiver refused the message itself (another 4xx, a 5xx SMTP
    /// reply): reported, not retried.
    Permanent(String),
}

pub enum Sink {
    Email(Mailer),
    Webhook(Poster),
    Kafka(KafkaSink),
    File(FileSink),
}

impl Sink {
    pub fn new(notifier: &Notifier, descriptions: &Descriptions) -> Result<Sink> {
        let policy = &notifier.delivery;
        Ok(match &notifier.kind {
            NotifierKind::Email(email) | NotifierKind::Digest { email, .. } => {
                Sink::Email(Mailer::new(email, policy, descriptions.clone())?)
            }
            NotifierKind::Webhook(webhook) => Sink::Webhook(Poster::new(webhook, policy, descriptions.clone())?),
            NotifierKind::Kafka { client, topic } => {
                // The producer reports refused copies on a counter; this one
                // is only read here (attempts are counted per notifier by
                // the worker), so it is not registered.
                let failed = IntCounter::new("vigil_kafka_notifier_failed", "unregistered").expect("valid");
                let producer = Producer::new(client, Deliveries { sent: None, failed: failed.clone() })?;
                Sink::Kafka(KafkaSink {
                    producer: std::sync::Arc::new(producer),
                    topic: topic.clone(),
                    failed,
                    awaiting: None,
                })
            }
            NotifierKind::File { path, format } => Sink::File(FileSink::new(path.as_deref(), *format)?),
        })
    }

    /// How long after its last alert an incident is resolved, for sinks
    /// that keep incidents open (PagerDuty).
    pub fn resolves_after(&self) -> Option<Duration> {
        match self {
            Sink::Webhook(poster) => poster.resolves_after(),
            _ => None,
        }
    }

    /// Whether several alerts may share one message (rate limits, digests).
    pub fn batches(&self) -> bool {
        matches!(self, Sink::Email(_) | Sink::Webhook(_))
    }

    pub async fn send(&mut self, message: &Message, timeout: Duration) -> Result<(), Failure> {
        match self {
            Sink::Email(mailer) => mailer.send(message).await,
            Sink::Webhook(poster) => poster.send(message).await,
            Sink::Kafka(kafka) => kafka.send(message, timeout).await,
            Sink::File(file) => file.send(message),
        }
    }
}

pub struct KafkaSink {
    producer: std::sync::Arc<Producer>,
    topic: String,
    failed: IntCounter,
    /// The failure count before the message now in librdkafka's hands:
    /// set while a send waits for confirmation, so a retry waits on the
    /// same copies instead of producing the alerts again.
    awaiting: Option<u64>,
}

impl KafkaSink {
    /// Sends each alert keyed by rule and group, and waits until the
    /// broker confirms them. librdkafka retries on its own (idempotent
    /// producer) until `message.timeout.ms`; only copies it gave up on
    /// are produced again.
    async fn send(&mut self, message: &Message, timeout: Duration) -> Result<(), Failure> {
        let before = match self.awaiting {
            Some(before) => before,
            None => {
                let before = self.failed.get();
                for alert in &message.alerts {
                    let key = format!("{}/{}", alert.rule, alert.group_text());
                    let body = serde_json::to_vec(alert).expect("alerts serialize");
                    self.producer
                        .send(&self.topic, key.as_bytes(), &body, None)
                        .map_err(|e| Failure::Retry(e.to_string()))?;
                }
                self.awaiting = Some(before);
                before
            }
        };
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await.unwrap_or(false);
        if !flushed {
            return Err(Failure::Retry("the broker has not confirmed the alerts yet".into()));
        }
        self.awaiting = None;
        if self.failed.get() > before {
            return Err(Failure::Retry("the broker refused an alert".into()));
        }
        Ok(())
    }
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
    fn new(path: Option<&std::path::Path>, format: OutputFormat) -> Result<FileSink> {
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

    fn send(&mut self, message: &Message) -> Result<(), Failure> {
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
