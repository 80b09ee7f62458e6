//! Kafka clients: the shared client settings, broker health, the producer and topic checks.

pub mod health;
pub mod log;
pub mod producer;
pub mod topics;

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
