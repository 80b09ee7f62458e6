//! What the benchmark binaries share: the ~300-byte `OrderPlaced` workload and the producer
//! settings the gateway uses, so that figures from different benchmarks describe the same events.

pub mod load;

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde_json::{Value, json};

use crate::Kafka;

/// Runs a benchmark's `body` with a broker (the one at `bootstrap`, or one the harness starts)
/// and two runtimes of two threads: the client side, which `body` runs on, and the gateway's,
/// whose handle it gets — so the load's work is not queued behind the gateway's.
pub fn with_broker<T>(
    bootstrap: Option<&str>,
    body: impl AsyncFnOnce(&Kafka, &tokio::runtime::Handle) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let server =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("gateway").enable_all().build()?;
    // Started and dropped outside the async context: dropping the harness's broker blocks.
    let kafka = client.block_on(async {
        match bootstrap {
            Some(bootstrap) => Kafka::external(bootstrap.to_owned()).await,
            None => Kafka::start().await,
        }
    })?;
    let result = client.block_on(body(&kafka, server.handle()));
    drop(kafka);
    result
}

/// Events per HTTP request in the batch scenarios.
pub const BATCH: usize = 100;
/// Partitions of the benchmark topics.
pub const PARTITIONS: i32 = 3;

/// ~300-byte events with the fields a real order carries.
pub const SCHEMA: &str = r#"{
  "type": "record", "name": "OrderPlaced", "namespace": "dev.sluice.bench",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "customer_id", "type": "string"},
    {"name": "total_cents", "type": "long"},
    {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD", "GBP"]}},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "channel", "type": ["null", "string"], "default": null},
    {"name": "shipping_method", "type": "string", "default": "standard"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
      {"name": "sku", "type": "string"}, {"name": "quantity", "type": "int"}, {"name": "price_cents", "type": "long"}
    ]}}}
  ]
}"#;

const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

pub fn event(i: usize) -> Value {
    json!({
        "order_id": format!("order-{i:08}"),
        "customer_id": format!("customer-{:06}", i % 50_000),
        "total_cents": 1999 + i % 1000,
        "currency": CURRENCIES[i % 3],
        "placed_at": 1_795_773_600_000_i64 + i as i64,
        "channel": if i.is_multiple_of(2) { json!("web") } else { json!(null) },
        "shipping_method": "express",
        "items": [
            {"sku": format!("sku-{:05}", i % 9973), "quantity": 1 + i % 3, "price_cents": 999},
            {"sku": format!("sku-{:05}", (i * 7) % 9973), "quantity": 1, "price_cents": 1000}
        ]
    })
}

/// The producer settings the gateway uses (see `gateway/src/kafka/producer.rs`).
pub fn raw_producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "zstd")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "200000")
        .create()?)
}

/// Registers [`SCHEMA`] for `topic` (subject `{topic}-value`) in the gateway's embedded registry
/// at `base`; returns its id.
pub async fn register_schema(http: &reqwest::Client, base: &str, topic: &str) -> anyhow::Result<u32> {
    let registered: Value = http
        .post(format!("{base}/registry/subjects/{topic}-value/versions"))
        .body(json!({ "schema": SCHEMA }).to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = registered["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no schema id in {registered}"))?;
    Ok(u32::try_from(id)?)
}
