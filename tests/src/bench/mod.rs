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

/// [`SCHEMA`]'s shape as a Protobuf message: the same JSON events are valid for both.
pub const PROTO_SCHEMA: &str = r#"syntax = "proto3";
package dev.sluice.bench;

message OrderPlaced {
  string order_id = 1;
  string customer_id = 2;
  int64 total_cents = 3;
  Currency currency = 4;
  int64 placed_at = 5;
  optional string channel = 6;
  string shipping_method = 7;
  repeated Item items = 8;

  message Item {
    string sku = 1;
    int32 quantity = 2;
    int64 price_cents = 3;
  }
  enum Currency {
    EUR = 0;
    USD = 1;
    GBP = 2;
  }
}
"#;

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
    register(http, base, topic, json!({ "schema": SCHEMA })).await
}

/// Registers [`PROTO_SCHEMA`] for `topic` in the gateway's embedded registry.
pub async fn register_protobuf_schema(http: &reqwest::Client, base: &str, topic: &str) -> anyhow::Result<u32> {
    register(http, base, topic, json!({ "schema": PROTO_SCHEMA, "schemaType": "PROTOBUF" })).await
}

async fn register(http: &reqwest::Client, base: &str, topic: &str, body: Value) -> anyhow::Result<u32> {
    let registered: Value = http
        .post(format!("{base}/registry/subjects/{topic}-value/versions"))
        .body(body.to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = registered["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no schema id in {registered}"))?;
    Ok(u32::try_from(id)?)
}

/// Builds the release `sluice` binary into the target directory the running benchmark was built
/// in, and returns its path.
pub fn release_binary() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--locked", "-p", "sluice", "--bin", "sluice", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .status()
        .context("running cargo build for the sluice binary")?;
    anyhow::ensure!(status.success(), "cargo build of the sluice binary failed ({status})");
    let binary = std::env::current_exe()?.with_file_name("sluice");
    anyhow::ensure!(binary.is_file(), "no sluice binary at {}", binary.display());
    Ok(binary)
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident since it started, in KiB.
    pub peak_kib: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    use anyhow::Context as _;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} for {pid}"))?;
        let kib = line.trim_start_matches(name).trim().trim_end_matches("kB").trim();
        Ok(kib.parse()?)
    };
    Ok(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
}

/// The `n` mappings of a process with the most resident memory, from `/proc/PID/smaps`, as
/// "KiB name" lines (anonymous mappings by their address range): what to look at when memory
/// does not come back.
pub fn largest_mappings(pid: u32, n: usize) -> anyhow::Result<Vec<String>> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut mappings: Vec<(u64, String)> = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("Rss:") => {
                let kib = fields.next().and_then(|kib| kib.parse().ok()).unwrap_or(0);
                mappings.push((kib, current.clone()));
            }
            Some(first) if first.contains('-') && !first.ends_with(':') => {
                let name = line.split_whitespace().nth(5).unwrap_or("[anonymous]");
                current = format!("{name} {first}");
            }
            _ => {}
        }
    }
    mappings.sort_by_key(|m| std::cmp::Reverse(m.0));
    let (rest, rest_kib) = (mappings.len().saturating_sub(n), mappings.iter().skip(n).map(|m| m.0).sum::<u64>());
    let mut largest: Vec<String> =
        mappings.into_iter().take(n).map(|(kib, name)| format!("{kib} KiB {name}")).collect();
    largest.push(format!("{rest_kib} KiB in the {rest} other mappings"));
    Ok(largest)
}
