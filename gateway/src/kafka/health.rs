//! Whether the brokers are reachable, as librdkafka sees it, so that requests during an outage
//! get a quick 503 instead of waiting out the delivery timeout.
//!
//! librdkafka reports "all brokers down" through its error callback and broker states through
//! its statistics. With sparse connections a healthy but idle client may have no broker `UP`, so
//! only the error callback turns health down; a broker seen `UP` or a successful delivery turns
//! it back up. While down, one request per probe interval is still let through: it gives
//! librdkafka a reason to reconnect, and its success ends the outage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

/// Shared broker health, updated from librdkafka callbacks.
#[derive(Debug)]
pub struct BrokerHealth {
    up: AtomicBool,
    /// Milliseconds since `epoch` of the last request let through while down.
    last_probe_ms: AtomicU64,
    epoch: Instant,
    probe_interval: Duration,
}

impl Default for BrokerHealth {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl BrokerHealth {
    pub fn new(probe_interval: Duration) -> Self {
        Self { up: AtomicBool::new(true), last_probe_ms: AtomicU64::new(0), epoch: Instant::now(), probe_interval }
    }

    /// Whether the brokers were reachable when last heard of.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("Kafka brokers reachable again");
        }
    }

    pub fn mark_down(&self, reason: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(reason, "all Kafka brokers are down; answering 503 until one is back");
        }
    }

    /// Whether to send a request to Kafka now: always when up, once per probe interval when down.
    pub fn admit(&self) -> bool {
        if self.is_up() {
            return true;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_probe_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(self.probe_interval.as_millis()).unwrap_or(u64::MAX);
        // 0 means no probe yet; a probe at time 0 is stored as 1.
        (last == 0 || now.saturating_sub(last) >= interval)
            && self.last_probe_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// A librdkafka client context that feeds [`BrokerHealth`] and routes librdkafka logs to tracing.
#[derive(Debug, Clone)]
pub struct HealthContext {
    pub health: std::sync::Arc<BrokerHealth>,
}

impl ClientContext for HealthContext {
    fn stats(&self, statistics: Statistics) {
        if statistics.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP") {
            self.health.mark_up();
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.mark_down(reason);
        } else {
            tracing::warn!(error = %error, reason, "Kafka client error");
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}")
            }
            L::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            L::Notice | L::Info => tracing::info!(facility = fac, "librdkafka: {log_message}"),
            L::Debug => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_one_probe_per_interval_while_down() {
        let health = BrokerHealth::new(Duration::from_secs(3600));
        assert!(health.admit() && health.admit(), "up admits everything");
        health.mark_down("test");
        assert!(health.admit(), "the first request while down is a probe");
        assert!(!health.admit(), "the rest wait for the next interval");
        health.mark_up();
        assert!(health.admit());
    }
}
