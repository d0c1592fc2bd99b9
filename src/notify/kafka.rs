//! The Kafka notifier (`type: kafka`): alerts as JSON records on a topic,
//! keyed by rule and group; its settings and its sink.

use std::time::Duration;

use prometheus::IntCounter;

use super::message::Message;
use super::sink::Failure;
use crate::config::values::{brokers_of, properties_of, KafkaClient};
use crate::kafka::producer::{Deliveries, Producer};
use crate::rules::fields::FieldReader;

/// Reads a `type: kafka` notifier: its topic and, unless it shares the
/// source's cluster (`source`), how to reach its own.
pub fn read(r: &mut FieldReader<'_>, source: Option<&KafkaClient>) -> Option<(KafkaClient, String)> {
    let at = r.at();
    let topic = r.require::<String>("topic", || "a `kafka` notifier needs a `topic`".into());
    let brokers = brokers_of(r);
    let mut client = match (brokers, source) {
        (Some(brokers), _) => KafkaClient { brokers, ..KafkaClient::default() },
        (None, Some(source)) => source.clone(),
        (None, None) => {
            if r.given("brokers").is_none() {
                r.sink.error_at(at, "a `kafka` notifier needs `brokers` unless the source is kafka");
            }
            return None;
        }
    };
    client.properties.extend(properties_of(r));
    Some((client, topic?.value))
}

impl KafkaSink {
    pub fn new(client: &KafkaClient, topic: &str) -> anyhow::Result<KafkaSink> {
        // The producer reports refused copies on a counter; this one is
        // only read here (attempts are counted per notifier by the
        // worker), so it is not registered.
        let failed = IntCounter::new("vigil_kafka_notifier_failed", "unregistered").expect("valid");
        let producer = Producer::new(client, Deliveries { sent: None, failed: failed.clone() })?;
        Ok(KafkaSink { producer: std::sync::Arc::new(producer), topic: topic.to_owned(), failed, awaiting: None })
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
    pub async fn send(&mut self, message: &Message, timeout: Duration) -> Result<(), Failure> {
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
