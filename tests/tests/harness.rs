//! Proves the harness against the real services: Kafka round-trips records
//! through every partition and survives a crash, and Apicurio registers an
//! Avro schema through its Confluent-compatible API.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sluice_tests::{Apicurio, Kafka, consume_all, unique_name};

const TIMEOUT: Duration = Duration::from_secs(30);

fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create()?)
}

/// Sends `count` records `key-<i>` / `value-<i>` to `topic`, round-robin
/// over `partitions` partitions.
async fn produce(producer: &FutureProducer, topic: &str, count: i32, partitions: i32) -> anyhow::Result<()> {
    for i in 0..count {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        let record = FutureRecord::to(topic).partition(i % partitions).key(&key).payload(&value);
        producer.send(record, TIMEOUT).await.map_err(|(error, _)| error)?;
    }
    Ok(())
}

/// Values read back, grouped by partition.
fn values_by_partition(messages: &[rdkafka::message::OwnedMessage]) -> BTreeMap<i32, Vec<String>> {
    let mut by_partition = BTreeMap::<i32, Vec<String>>::new();
    for message in messages {
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        by_partition.entry(message.partition()).or_default().push(value);
    }
    by_partition
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_round_trips_records_through_every_partition() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let kafka = Kafka::shared();
    let topic = unique_name("harness");
    kafka.create_topic(&topic, 3, &[("retention.ms", "3600000")]).await?;

    produce(&producer(&kafka.bootstrap_servers())?, &topic, 10, 3).await?;
    let messages = consume_all(&kafka.bootstrap_servers(), &topic, 10, TIMEOUT).await?;

    assert_eq!(messages.len(), 10);
    let expected: BTreeMap<i32, Vec<String>> = BTreeMap::from([
        (0, ["value-0", "value-3", "value-6", "value-9"].map(String::from).to_vec()),
        (1, ["value-1", "value-4", "value-7"].map(String::from).to_vec()),
        (2, ["value-2", "value-5", "value-8"].map(String::from).to_vec()),
    ]);
    assert_eq!(values_by_partition(&messages), expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_keeps_acknowledged_records_across_a_kill_and_restart() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let mut kafka = Kafka::start().await?;
    let topic = unique_name("harness-restart");
    kafka.create_topic(&topic, 1, &[]).await?;
    produce(&producer(&kafka.bootstrap_servers())?, &topic, 5, 1).await?;

    kafka.kill()?;
    kafka.restart().await?;
    // Same address after the restart: clients configured before it go on.
    let messages = consume_all(&kafka.bootstrap_servers(), &topic, 5, TIMEOUT).await?;

    assert_eq!(messages.len(), 5);
    kafka.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn apicurio_registers_an_avro_schema_through_the_confluent_api() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let registry = Apicurio::shared();
    let http = reqwest::Client::new();
    let subjects: serde_json::Value =
        http.get(format!("{}/subjects", registry.ccompat_url())).send().await?.error_for_status()?.json().await?;
    assert_eq!(subjects, json!([]));

    let schema = json!({
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}]
    });
    let subject = unique_name("orders-value");
    let registered: serde_json::Value = http
        .post(format!("{}/subjects/{subject}/versions", registry.ccompat_url()))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({"schema": schema.to_string(), "schemaType": "AVRO"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = registered["id"].as_i64().ok_or_else(|| anyhow::anyhow!("no id in {registered}"))?;

    let fetched: serde_json::Value = http
        .get(format!("{}/schemas/ids/{id}", registry.ccompat_url()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let fetched_schema: serde_json::Value =
        serde_json::from_str(fetched["schema"].as_str().ok_or_else(|| anyhow::anyhow!("no schema in {fetched}"))?)?;
    assert_eq!(fetched_schema, schema);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_venv_imports_confluents_serializers() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let python = sluice_tests::python().await?;
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .args([
                "-c",
                "import confluent_kafka, fastavro; \
                 from confluent_kafka.schema_registry.avro import AvroSerializer; \
                 print(confluent_kafka.__version__)",
            ])
            .output()
    })
    .await??;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "2.16.1");
    Ok(())
}

/// Every integration test starts a deadline (`sluice_tests::deadline`), so that no test can hang
/// CI: checked here over the sources, since a forgotten line would otherwise go unnoticed.
#[test]
fn every_integration_test_has_a_deadline() {
    let _deadline = sluice_tests::deadline();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    let mut checked = 0;
    for dir in ["tests/tests", "gateway/tests"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("the test directory") {
            let path = entry.expect("an entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("a test source");
            // Attributes at the start of a line (not this test's own string literals).
            for (at, _) in source.match_indices("\n#[tokio::test").chain(source.match_indices("\n#[test]")) {
                let after = &source[at..];
                let body = after.find("{\n").map(|b| after[b + 2..].trim_start()).unwrap_or_default();
                checked += 1;
                if !body.starts_with("let _deadline = sluice_tests::deadline") {
                    let name = after.lines().find(|l| l.contains("fn ")).unwrap_or_default().trim();
                    missing.push(format!("{}: {name}", path.display()));
                }
            }
        }
    }
    assert!(checked > 60, "found only {checked} tests");
    assert!(missing.is_empty(), "tests without a deadline:\n{}", missing.join("\n"));
}
