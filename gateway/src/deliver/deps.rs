//! What a replica needs to deliver, shared by the consume path's stages.

use std::sync::Arc;

use crate::config::{InternalTopics, KafkaConfig};
use crate::kafka::producer::Producer;
use crate::plugin::store::Plugins;
use crate::registry::SchemaCache;
use crate::telemetry::trace;

#[derive(Debug, Clone)]
pub struct Deps {
    pub kafka: KafkaConfig,
    pub guard: super::guard::Guard,
    pub producer: Producer,
    pub schemas: Arc<SchemaCache>,
    pub plugins: Arc<Plugins>,
    pub http: reqwest::Client,
    /// Records buffered per subscription before the worker stops taking more from the consumer.
    pub max_buffered: usize,
    /// Bytes of record values buffered per subscription, likewise.
    pub max_buffered_bytes: usize,
    /// Kilobytes librdkafka may prefetch per subscription consumer.
    pub max_prefetch_kbytes: usize,
    /// Spans for delivery attempts, and the trace context passed to subscribers.
    pub tracing: trace::Tracing,
    /// Encrypts the signing secrets of API-created subscriptions in the store.
    pub sealer: Arc<super::seal::Sealer>,
    /// Topics no subscription may read or dead-letter to.
    pub internal: InternalTopics,
    /// Subscriptions the API may create.
    pub max_subscriptions: usize,
}
