//! A producer for vigil's own topics (dead letters, alerts): idempotent,
//! acknowledged by all in-sync replicas, retried by librdkafka until the
//! broker takes the message. Deliveries are counted as they are confirmed.

use std::time::Duration;

use anyhow::{Context, Result};
use prometheus::IntCounter;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use crate::config::KafkaClient;

/// Counts confirmed and failed deliveries.
pub struct Deliveries {
    pub sent: Option<IntCounter>,
    pub failed: IntCounter,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // The producer shares the source's pass-through properties, some of
        // which only a consumer reads: librdkafka's warning about them is noise.
        if fac == "CONFWARN" {
            tracing::debug!(target: "librdkafka", "{fac}: {message}");
        } else {
            super::log(level, fac, message);
        }
    }

    fn stats(&self, _: Statistics) {}
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                if let Some(sent) = &self.sent {
                    sent.inc();
                }
            }
            Err((err, message)) => {
                use rdkafka::Message;
                self.failed.inc();
                tracing::warn!(%err, topic = message.topic(), "A message to Kafka was not delivered");
            }
        }
    }
}

pub struct Producer {
    inner: ThreadedProducer<Deliveries>,
}

/// How long a full local queue is waited on before a message is given up.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

impl Producer {
    pub fn new(client: &KafkaClient, deliveries: Deliveries) -> Result<Producer> {
        let mut config = crate::kafka::client_config(client)?;
        config.remove("statistics.interval.ms");
        for (key, value) in [("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "5")] {
            if config.get(key).is_none() {
                config.set(key, value);
            }
        }
        let inner = config.create_with_context(deliveries).context("creating a Kafka producer")?;
        Ok(Producer { inner })
    }

    /// Queues a message; waits while librdkafka's local queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.queue(record)
    }

    /// Queues a message for one partition (a re-keying control record).
    pub fn send_to(&self, topic: &str, partition: i32, headers: OwnedHeaders) -> Result<(), KafkaError> {
        self.queue(BaseRecord::to(topic).partition(partition).key(&[][..]).payload(&[][..]).headers(headers))
    }

    /// How many partitions `topic` has, from the broker's metadata.
    pub fn partitions(&self, topic: &str) -> Result<i32, KafkaError> {
        let metadata = self.inner.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
        Ok(metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len() as i32))
    }

    fn queue(&self, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        let started = std::time::Instant::now();
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < QUEUE_WAIT =>
                {
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// Messages queued or sent but not yet confirmed.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Waits up to `timeout` for every queued message to be confirmed;
    /// true if none is left in flight.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.flush(timeout).is_ok() && self.in_flight() == 0
    }
}
