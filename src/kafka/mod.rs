//! Kafka: the production source, the dead-letter topic and the alerts
//! topic, on librdkafka (rdkafka).
//!
//! [`consumer`] runs the consume-detect-log-commit loop on its own thread;
//! this module turns the validated settings into librdkafka configuration,
//! reading secrets from the environment or files when vigil starts.

mod commit;
pub mod consumer;
pub mod merge;
pub mod producer;
pub mod rekey;

use anyhow::{Context, Result};
use rdkafka::ClientConfig;

use crate::config::{KafkaClient, Secret};

/// The librdkafka configuration of a client: brokers, TLS, SASL, then the
/// user's pass-through properties (which win).
pub fn client_config(client: &KafkaClient) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &client.brokers);
    let protocol = match (&client.tls, &client.sasl) {
        (Some(_), Some(_)) => "SASL_SSL",
        (Some(_), None) => "SSL",
        (None, Some(_)) => "SASL_PLAINTEXT",
        (None, None) => "PLAINTEXT",
    };
    config.set("security.protocol", protocol);
    if let Some(tls) = &client.tls {
        for (key, path) in
            [("ssl.ca.location", &tls.ca), ("ssl.certificate.location", &tls.cert), ("ssl.key.location", &tls.key)]
        {
            if let Some(path) = path {
                config.set(key, path.display().to_string());
            }
        }
        if let Some(password) = &tls.key_password {
            config.set("ssl.key.password", Secret::read(password).context("the TLS key password")?);
        }
    }
    if let Some(sasl) = &client.sasl {
        config.set("sasl.mechanisms", &sasl.mechanism);
        config.set("sasl.username", Secret::read(&sasl.username).context("the SASL user name")?);
        config.set("sasl.password", Secret::read(&sasl.password).context("the SASL password")?);
    }
    for (key, value) in &client.properties {
        config.set(key, value);
    }
    Ok(config)
}

/// librdkafka's own log lines. Its connection failures (`FAIL`, `ERROR`:
/// "Connect to … failed", "3/3 brokers are down") repeat every few seconds
/// of an outage and are reported once by vigil (see the consumer's
/// `error`), so they go to DEBUG; other warnings and errors are WARN,
/// since vigil keeps ERROR for what is lost or refused.
pub(crate) fn log(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    let connection = matches!(fac, "FAIL" | "ERROR" | "BROKERFAIL" | "REQTMOUT" | "RETRY");
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error | L::Warning if !connection => {
            tracing::warn!(target: "librdkafka", "{fac}: {message}")
        }
        _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}

/// The fixed label of a client error, for `vigil_kafka_client_errors_total`.
pub(crate) fn error_kind(code: Option<rdkafka::types::RDKafkaErrorCode>) -> &'static str {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code {
        Some(C::AllBrokersDown) => "all_brokers_down",
        Some(
            C::BrokerTransportFailure
            | C::Resolve
            | C::RequestTimedOut
            | C::NetworkException
            | C::OperationTimedOut
            | C::BrokerNotAvailable,
        ) => "transport",
        Some(C::Authentication | C::SaslAuthenticationFailed | C::SSL) => "auth",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Sasl, Tls};

    #[test]
    fn secrets_come_from_the_environment_or_files_and_properties_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let client = KafkaClient {
            brokers: "a:9092,b:9092".into(),
            tls: Some(Tls { ca: Some("/ca.pem".into()), ..Tls::default() }),
            sasl: Some(Sasl {
                mechanism: "SCRAM-SHA-512".into(),
                username: Secret::Value("vigil".into()),
                password: Secret::File(file),
            }),
            properties: vec![("fetch.wait.max.ms".into(), "20".into())],
        };
        let config = client_config(&client).unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("20"));

        let missing = KafkaClient {
            sasl: Some(Sasl {
                mechanism: "PLAIN".into(),
                username: Secret::Value("vigil".into()),
                password: Secret::Env("VIGIL_TEST_UNSET_VARIABLE".into()),
            }),
            ..client
        };
        let err = format!("{:#}", client_config(&missing).unwrap_err());
        assert!(err.contains("VIGIL_TEST_UNSET_VARIABLE"), "{err}");
    }
}
