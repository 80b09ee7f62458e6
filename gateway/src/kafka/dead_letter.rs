//! The one dead-letter vocabulary of both paths: a dead-lettered record keeps its key, value and
//! headers, and gains headers saying why and from where, named as most teams' DLQ consumers
//! expect them:
//!
//! - always `dlq-reason`, `dlq-original-topic` and `dlq-timestamp` (epoch milliseconds);
//! - where they apply `dlq-original-partition`, `dlq-original-offset` (consume path),
//!   `dlq-plugin` (a plugin decided), `dlq-subscription`, `dlq-status` (the subscriber's last
//!   HTTP status) and `dlq-attempts`.

use rdkafka::message::{Header, OwnedHeaders};

pub const REASON: &str = "dlq-reason";
pub const ORIGINAL_TOPIC: &str = "dlq-original-topic";
pub const TIMESTAMP: &str = "dlq-timestamp";
pub const ORIGINAL_PARTITION: &str = "dlq-original-partition";
pub const ORIGINAL_OFFSET: &str = "dlq-original-offset";
pub const PLUGIN: &str = "dlq-plugin";
pub const SUBSCRIPTION: &str = "dlq-subscription";
pub const STATUS: &str = "dlq-status";
pub const ATTEMPTS: &str = "dlq-attempts";

/// Why and from where a record is dead-lettered.
#[derive(Debug, Clone, Default)]
pub struct DeadLetter<'a> {
    pub reason: &'a str,
    pub original_topic: &'a str,
    /// The record's place in Kafka (consume path).
    pub original: Option<(i32, i64)>,
    pub plugin: Option<&'a str>,
    pub subscription: Option<&'a str>,
    pub status: Option<u16>,
    pub attempts: Option<u32>,
}

impl DeadLetter<'_> {
    /// The record's own headers followed by the dead-letter headers.
    ///
    /// # Examples
    /// ```
    /// use rdkafka::message::Headers as _;
    /// let dead = sluice::kafka::dead_letter::DeadLetter { reason: "bad", original_topic: "orders", ..Default::default() };
    /// let headers = dead.headers([("traceparent", &b"00-ab"[..])]);
    /// let keys: Vec<&str> = headers.iter().map(|h| h.key).collect();
    /// assert_eq!(keys, ["traceparent", "dlq-reason", "dlq-original-topic", "dlq-timestamp"]);
    /// ```
    pub fn headers<'h>(&self, original: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new();
        for (key, value) in original {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        let add = |headers: OwnedHeaders, key: &str, value: &str| headers.insert(Header { key, value: Some(value) });
        headers = add(headers, REASON, self.reason);
        headers = add(headers, ORIGINAL_TOPIC, self.original_topic);
        headers = add(headers, TIMESTAMP, &crate::telemetry::now_ms().to_string());
        if let Some((partition, offset)) = self.original {
            headers = add(headers, ORIGINAL_PARTITION, &partition.to_string());
            headers = add(headers, ORIGINAL_OFFSET, &offset.to_string());
        }
        if let Some(plugin) = self.plugin {
            headers = add(headers, PLUGIN, plugin);
        }
        if let Some(subscription) = self.subscription {
            headers = add(headers, SUBSCRIPTION, subscription);
        }
        if let Some(status) = self.status {
            headers = add(headers, STATUS, &status.to_string());
        }
        if let Some(attempts) = self.attempts {
            headers = add(headers, ATTEMPTS, &attempts.to_string());
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers as _;

    use super::*;

    #[test]
    fn every_header_that_applies_after_the_records_own() {
        let dead = DeadLetter {
            reason: "gave up after 3 attempts: HTTP 503",
            original_topic: "orders",
            original: Some((2, 41)),
            plugin: None,
            subscription: Some("billing"),
            status: Some(503),
            attempts: Some(3),
        };
        let headers = dead.headers([("event-id", &b"e-1"[..])]);
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
            .collect();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "event-id",
                REASON,
                ORIGINAL_TOPIC,
                TIMESTAMP,
                ORIGINAL_PARTITION,
                ORIGINAL_OFFSET,
                SUBSCRIPTION,
                STATUS,
                ATTEMPTS
            ]
        );
        let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(value(ORIGINAL_OFFSET), Some("41"));
        let millis: i64 = value(TIMESTAMP).unwrap().parse().unwrap();
        assert!((crate::telemetry::now_ms() - millis).abs() < 60_000, "epoch milliseconds");
    }
}
