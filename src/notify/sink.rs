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
use super::Failure;
use crate::config::{Notifier, NotifierKind, OutputFormat};
use crate::kafka::producer::{Deliveries, Producer};

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

pub struct FileSink {
    out: Box<dyn Write + Send>,
    file: Option<std::fs::File>,
    style: Style,
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
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                Ok(FileSink { out: Box::new(file.try_clone()?), file: Some(file), style })
            }
            None => Ok(FileSink { out: Box::new(std::io::stdout()), file: None, style }),
        }
    }

    fn send(&mut self, message: &Message) -> Result<(), Failure> {
        let retry = |e: std::io::Error| Failure::Retry(e.to_string());
        for alert in &message.alerts {
            console::write(&mut self.out, alert, self.style).map_err(retry)?;
        }
        self.out.flush().map_err(retry)?;
        if let Some(file) = &self.file {
            file.sync_data().map_err(retry)?;
        }
        Ok(())
    }
}
