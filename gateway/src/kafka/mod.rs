//! Kafka clients: the shared client settings, broker health, the producer and topic checks,
//! consumer-group administration and the dead-letter vocabulary both paths write.

pub mod dead_letter;
pub mod groups;
pub mod health;
pub mod log;
pub mod manage;
pub mod producer;
pub mod topics;
pub mod transactions;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Client settings every Sluice Kafka client shares: brokers, security and the passthrough map.
///
/// The passthrough keys were checked at config load not to clash with what is set here.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", &kafka.client_id)
        .set("security.protocol", kafka.security_protocol.as_librdkafka());
    if let Some(sasl) = &kafka.sasl {
        config
            .set("sasl.mechanism", sasl.mechanism.as_librdkafka())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", &sasl.password);
    }
    if let Some(tls) = &kafka.tls {
        if let Some(ca) = &tls.ca_file {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &tls.cert_file {
            config.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &tls.key_file {
            config.set("ssl.key.location", key.display().to_string());
        }
        config.set("ssl.endpoint.identification.algorithm", if tls.verify_hostname { "https" } else { "none" });
    }
    for (key, value) in &kafka.librdkafka {
        config.set(key, value);
    }
    config
}

/// Whether the brokers take Sluice's credentials and Sluice trusts the brokers: `Err` only when
/// SASL authentication or the TLS handshake failed (a configuration mistake, so the gateway
/// should not start), not when they could not be reached (an outage ridden out with 503s).
pub async fn check_credentials(kafka: &KafkaConfig) -> Result<(), String> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseProducer, Producer as _};

    /// Keeps the authentication errors librdkafka reports through its error callback.
    #[derive(Default)]
    struct Refusals(std::sync::Mutex<Vec<String>>);
    impl rdkafka::ClientContext for Refusals {
        fn error(&self, error: KafkaError, reason: &str) {
            if matches!(
                error.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::Authentication
                        | RDKafkaErrorCode::SaslAuthenticationFailed
                        | RDKafkaErrorCode::SSL
                )
            ) {
                self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(reason.to_owned());
            }
        }
    }
    impl rdkafka::producer::ProducerContext for Refusals {
        type DeliveryOpaque = ();
        fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, (): ()) {}
    }

    let mut config = client_config(kafka);
    config.set("client.id", format!("{}-credentials-check", kafka.client_id));
    tokio::task::spawn_blocking(move || {
        let client: BaseProducer<Refusals> = config
            .create_with_context(Refusals::default())
            .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
        if client.client().fetch_metadata(None, std::time::Duration::from_secs(5)).is_ok() {
            return Ok(());
        }
        // Errors reach the context when the client's queue is served.
        client.poll(std::time::Duration::from_millis(100));
        let refusals = client.context().0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match refusals.first() {
            Some(reason) => Err(format!("cannot authenticate with Kafka ([kafka] security settings): {reason}")),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}
