//! `sluice dev`: the gateway with an in-memory Kafka, the embedded registry and two example
//! routes (Avro and Protobuf), for trying Sluice with nothing installed.
//!
//! The in-memory Kafka is librdkafka's mock cluster: real Kafka protocol, real idempotent
//! producer, but everything lives in this process and is gone when it exits.
//!
//! A webhook inbox at `/dev/inbox` lets subscriptions be tried without a receiver of one's own:
//! it keeps the last deliveries it got, with their headers, for `GET /dev/inbox` to show.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::{Value, json};

use crate::codec::SchemaType;
use crate::config::{Config, Format, HttpConfig, KafkaConfig, RegistryConfig, TopicConfig};
use crate::registry::Schema;
use crate::server::{Gateway, Prepared};

/// The example route's topic.
pub const TOPIC: &str = "orders.placed";
/// The example route's dead letter topic, for subscriptions tried in dev mode.
pub const DEAD_LETTER_TOPIC: &str = "orders.placed.dlq";
/// Deliveries the inbox keeps.
const INBOX_SIZE: usize = 100;
/// The example route's Avro schema.
pub const ORDER_PLACED_V1: &str = include_str!("../../deploy/examples/schemas/order-placed-v1.avsc");
/// The Protobuf example route's topic.
pub const PROTOBUF_TOPIC: &str = "payments.confirmed";
/// The example `bytes` route's topic: any body, as it is.
pub const BYTES_TOPIC: &str = "raw.logs";
/// The Protobuf example route's schema.
pub const PAYMENT_CONFIRMED_V1: &str = include_str!("../../deploy/examples/schemas/payment-confirmed-v1.proto");

/// A running dev environment; dropping it stops the in-memory cluster.
#[allow(missing_debug_implementations)] // the mock cluster has no Debug
pub struct Dev {
    pub gateway: Gateway,
    /// The in-memory cluster's bootstrap address for other Kafka clients (kcat, consumers).
    pub kafka: SocketAddr,
    _bootstrap: Forwarding,
    // Declared after the gateway so it is dropped after the clients that use it.
    _cluster: MockCluster<'static, DefaultProducerContext>,
}

/// The bootstrap address's forwarding task, stopped with the environment.
struct Forwarding(tokio::task::JoinHandle<()>);

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the in-memory cluster (its bootstrap address on `kafka`), the gateway on `listen`,
/// and registers the example schemas.
pub async fn start(listen: SocketAddr, kafka: SocketAddr) -> anyhow::Result<Dev> {
    // The mock cluster's broker listens on a port of its own choosing; a stable bootstrap
    // address forwards to it. Clients then reach the broker at the address its metadata
    // gives (on this machine), as with any Kafka cluster.
    let bootstrap = tokio::net::TcpListener::bind(kafka).await.with_context(|| {
        format!("cannot listen on {kafka} for the in-memory Kafka (a Kafka already there? pass --kafka 127.0.0.1:9093)")
    })?;
    let kafka = bootstrap.local_addr()?;
    let cluster = MockCluster::new(1).context("cannot start the in-memory Kafka cluster")?;
    let broker = cluster.bootstrap_servers().split(',').next().unwrap_or_default().to_owned();
    let registry = RegistryConfig::default();
    cluster.create_topic(TOPIC, 3, 1).context("cannot create the example topic")?;
    cluster.create_topic(PROTOBUF_TOPIC, 3, 1).context("cannot create the Protobuf example topic")?;
    cluster.create_topic(BYTES_TOPIC, 1, 1).context("cannot create the bytes example topic")?;
    cluster.create_topic(DEAD_LETTER_TOPIC, 1, 1).context("cannot create the dead letter topic")?;
    cluster.create_topic(&registry.topic, 1, 1).context("cannot create the registry topic")?;
    cluster
        .create_topic(&crate::config::DeliveryConfig::default().topic, 1, 1)
        .context("cannot create the subscriptions topic")?;
    let config = config(cluster.bootstrap_servers(), listen, registry);
    // The schemas are registered before the listener opens, so the first request finds them.
    let prepared = Prepared::new(config).await?;
    let registry = &prepared.state().registry;
    registry
        .register(&format!("{TOPIC}-value"), Schema::new(SchemaType::Avro, ORDER_PLACED_V1))
        .await
        .context("cannot register the example schema")?;
    registry
        .register(&format!("{PROTOBUF_TOPIC}-value"), Schema::new(SchemaType::Protobuf, PAYMENT_CONFIRMED_V1))
        .await
        .context("cannot register the Protobuf example schema")?;
    let gateway = prepared.listen_with(inbox()).await?;
    let forwarding = Forwarding(tokio::spawn(forward(bootstrap, broker)));
    Ok(Dev { gateway, kafka, _bootstrap: forwarding, _cluster: cluster })
}

/// Forwards every connection to `listener` to the broker.
async fn forward(listener: tokio::net::TcpListener, broker: String) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            // Out of file descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            if let Ok(mut upstream) = tokio::net::TcpStream::connect(&broker).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

type Inbox = Arc<Mutex<VecDeque<Value>>>;

/// `POST /dev/inbox` keeps a delivery; `GET /dev/inbox` lists the kept ones, oldest first.
fn inbox() -> axum::Router {
    async fn keep(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(name, _)| {
                let name = name.as_str();
                name.starts_with("webhook-") || name.starts_with("sluice-") || name == crate::produce::EVENT_ID
            })
            .map(|(name, value)| (name.as_str().to_owned(), json!(value.to_str().unwrap_or_default())))
            .collect();
        let body = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
        let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if inbox.len() == INBOX_SIZE {
            inbox.pop_front();
        }
        inbox.push_back(json!({ "headers": headers, "body": body }));
        StatusCode::NO_CONTENT
    }
    async fn list(State(inbox): State<Inbox>) -> axum::Json<Value> {
        let inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
        axum::Json(json!({ "received": *inbox }))
    }
    axum::Router::new().route("/dev/inbox", post(keep).get(list)).with_state(Inbox::default())
}

fn config(bootstrap_servers: String, listen: SocketAddr, registry: RegistryConfig) -> Config {
    Config {
        http: HttpConfig { listen, ..HttpConfig::default() },
        kafka: KafkaConfig {
            bootstrap_servers,
            security_protocol: Default::default(),
            sasl: None,
            tls: None,
            client_id: "sluice-dev".into(),
            linger_ms: 5,
            delivery_timeout_ms: 10_000,
            max_in_flight_events: 100_000,
            compression: Default::default(),
            topic_checks: Default::default(),
            librdkafka: Default::default(),
        },
        registry,
        topics: vec![
            example_route(TOPIC, Format::Avro, "/order_id"),
            example_route(PROTOBUF_TOPIC, Format::Protobuf, "/payment_id"),
            TopicConfig { key: None, ..example_route(BYTES_TOPIC, Format::Bytes, "") },
        ],
        plugins: Vec::new(),
        plugin_host: Default::default(),
        admin: None,
        subscriptions: Vec::new(),
        // The inbox is on this machine; dev mode lets webhooks reach it.
        delivery: crate::config::DeliveryConfig {
            allow_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            ..Default::default()
        },
        auth: None,
        limits: Default::default(),
        telemetry: Default::default(),
        // librdkafka's mock cluster has transactions but no last stable offset, which the
        // cluster-wide claim protocol waits on: keys are remembered by this one process.
        exactly_once: crate::config::ExactlyOnceConfig {
            idempotency: crate::config::IdempotencyScope::Replica,
            ..Default::default()
        },
        transforms: Vec::new(),
    }
}

pub(crate) fn example_route(name: &str, format: Format, key: &str) -> TopicConfig {
    TopicConfig {
        name: name.into(),
        format,
        subject: None,
        subject_strategy: Default::default(),
        record: None,
        schema_version: Default::default(),
        key: Some(key.into()),
        key_format: None,
        key_subject: None,
        event_id: None,
        ack: Default::default(),
        unknown_fields: Default::default(),
        plugins: Vec::new(),
        on_plugin_error: Default::default(),
        dead_letter_topic: None,
        create: None,
    }
}

/// The request the banner suggests; the README shows the same one.
pub fn curl_example(addr: SocketAddr) -> String {
    format!(
        "curl -s -X POST http://{addr}/v1/topics/{TOPIC}/events \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"order_id\":\"o-1001\",\"customer_id\":\"c-42\",\"total_cents\":1999,\"currency\":\"EUR\",\"placed_at\":\"2026-11-27T10:00:00Z\"}}'"
    )
}

/// The Protobuf route's request the banner suggests; the README shows the same one.
pub fn protobuf_curl_example(addr: SocketAddr) -> String {
    format!(
        "curl -s -X POST http://{addr}/v1/topics/{PROTOBUF_TOPIC}/events \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"payment_id\":\"pay-7\",\"order_id\":\"o-1001\",\"amount_cents\":\"1999\",\"currency\":\"EUR\",\"method\":\"CARD\",\"confirmed_at\":\"2026-11-27T10:00:05Z\"}}'"
    )
}
