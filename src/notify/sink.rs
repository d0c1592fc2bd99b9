//! The receivers a notifier sends to, behind one `send`: email, webhook,
//! Kafka topic, file or stdout. Kafka and file sinks take every alert on its
//! own (they are records, not people), so route rate limits do not apply
//! to them.

use std::time::Duration;

use anyhow::Result;

use super::email::Mailer;
use super::file::FileSink;
use super::kafka::KafkaSink;
use super::message::Descriptions;
use super::message::Message;
use super::webhook::Poster;
use crate::config::{Notifier, NotifierKind};

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
            NotifierKind::Kafka { client, topic } => Sink::Kafka(KafkaSink::new(client, topic)?),
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
