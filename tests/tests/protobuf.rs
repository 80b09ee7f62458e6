//! Protobuf end to end against a real broker: JSON events in, Confluent's Protobuf wire format
//! out (read back by Confluent's own Python `ProtobufDeserializer`, through the embedded
//! registry and through Apicurio's Confluent API), and records written by Confluent's Python
//! `ProtobufSerializer` delivered to a webhook as canonical proto3 JSON.

mod support;

use std::process::Stdio;
use std::time::Duration;

use rdkafka::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::receiver::Receiver;
use sluice_tests::{Kafka, consume_all, python, unique_name};
use support::{BOTH, Env, RegistryKind, record_count, route};

const WAIT: Duration = Duration::from_secs(60);

const MONEY: &str =
    "syntax = \"proto3\";\npackage shop;\n\nmessage Money {\n  string currency = 1;\n  int64 units = 2;\n}\n";

const ORDERS: &str = r#"syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";
import "shop/money.proto";

message OrderPlaced {
  string order_id = 1;
  shop.Money total = 2;
  google.protobuf.Timestamp placed_at = 3;
  repeated Line lines = 4;
  Status status = 5;

  message Line {
    string sku = 1;
    int32 quantity = 2;
  }
  enum Status {
    STATUS_UNSPECIFIED = 0;
    PLACED = 1;
  }
}

message OrderCancelled {
  string order_id = 1;
  string reason = 2;
}
"#;

/// Registers `shop/money.proto` and, under each topic's subject, the orders file importing it.
async fn register(env: &Env, topics: &[&str]) -> anyhow::Result<u32> {
    let money_subject = unique_name("shop.Money");
    env.register(&money_subject, "PROTOBUF", MONEY).await?;
    let references = json!([{"name": "shop/money.proto", "subject": money_subject, "version": 1}]);
    let mut id = 0;
    for topic in topics {
        id = env.register_with_references(&format!("{topic}-value"), "PROTOBUF", ORDERS, references.clone()).await?;
    }
    Ok(id)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_events_become_protobuf_that_confluents_deserializer_reads_back() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let (placed, cancelled) = (unique_name("orders-pb"), unique_name("cancels-pb"));
        Kafka::shared().create_topic(&placed, 2, &[]).await?;
        Kafka::shared().create_topic(&cancelled, 1, &[]).await?;
        let routes = format!(
            "{}\n{}message = \"shop.v1.OrderCancelled\"\nunknown_fields = \"ignore\"\n",
            route(&placed, "protobuf", Some("/order_id")),
            route(&cancelled, "protobuf", None)
        );
        let env = Env::start(kind, &routes).await?;
        let id = register(&env, &[&placed, &cancelled]).await?;

        // Proto field names or JSON names, 64-bit integers as numbers or strings, enums by name
        // or number, a nested message type and a Timestamp.
        let events = json!([
            {"order_id": "p-1", "total": {"currency": "EUR", "units": 1999}, "placed_at": "2026-12-01T10:00:00Z",
             "lines": [{"sku": "a", "quantity": 2}], "status": "PLACED"},
            {"order_id": "p-2", "total": {"currency": "USD", "units": "-5"}, "placedAt": "2026-12-01T10:00:00.250Z",
             "status": 1},
        ]);
        let reply = env.post(&placed, &events).await?;
        assert_eq!(reply.status, StatusCode::OK, "{kind:?}: {}", reply.body);
        let reply = env.post(&cancelled, &json!({"order_id": "p-1", "reason": "late", "colour": "red"})).await?;
        assert_eq!(reply.status, StatusCode::OK, "{kind:?}: unknown fields are dropped here: {}", reply.body);

        // Refusals point at the offending value; nothing of them is written.
        for (event, pointer) in [
            (json!({"order_id": "p-3", "lines": [{"sku": "a", "quantity": "many"}]}), "/lines/0/quantity"),
            (json!({"order_id": "p-4", "colour": "red"}), "/colour"),
            (json!({"order_id": "p-5", "placed_at": "yesterday"}), "/placed_at"),
            (json!({"order_id": "p-6", "status": "LOST"}), "/status"),
        ] {
            let reply = env.post(&placed, &event).await?;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{kind:?} {event}: {}", reply.body);
            assert_eq!(reply.body["errors"][0]["pointer"], pointer, "{kind:?} {event}: {}", reply.body);
        }

        // Confluent's framing: magic byte, schema id, message indexes ([0] as one 0, [1] as 2 2).
        for (topic, count, indexes) in [(&placed, 2, &[0u8][..]), (&cancelled, 1, &[2, 2][..])] {
            for record in consume_all(&env.bootstrap, topic, count, WAIT).await? {
                let payload = record.payload().expect("a value");
                assert_eq!((payload[0], u32::from_be_bytes(payload[1..5].try_into()?)), (0, id), "{kind:?}");
                assert_eq!(&payload[5..5 + indexes.len()], indexes, "{kind:?} {topic}");
            }
        }
        assert_eq!(record_count(&env.bootstrap, &placed).await?, 2, "{kind:?}: refused events are not written");

        let decoded = env.decode_independently(&placed, "protobuf:shop.v1.OrderPlaced", 2).await?;
        let mut values: Vec<Value> = decoded.iter().map(|d| d["value"].clone()).collect();
        values.sort_by_key(|v| v["orderId"].as_str().map(str::to_owned));
        assert_eq!(
            Value::Array(values),
            json!([
                {"orderId": "p-1", "total": {"currency": "EUR", "units": "1999"}, "placedAt": "2026-12-01T10:00:00Z",
                 "lines": [{"sku": "a", "quantity": 2}], "status": "PLACED"},
                {"orderId": "p-2", "total": {"currency": "USD", "units": "-5"}, "placedAt": "2026-12-01T10:00:00.250Z",
                 "status": "PLACED"},
            ]),
            "{kind:?}: Confluent's ProtobufDeserializer reads the messages that were sent"
        );
        if kind == RegistryKind::Embedded {
            assert!(
                decoded.iter().all(|d| d["registry_checked"] == json!(true)),
                "the deserializer fetched the writer schema (format=serialized) and checked the indexes: {decoded:?}"
            );
        }
        let decoded = env.decode_independently(&cancelled, "protobuf:shop.v1.OrderCancelled", 1).await?;
        assert_eq!(decoded[0]["value"], json!({"orderId": "p-1", "reason": "late"}), "{kind:?}");
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn records_from_confluents_protobuf_serializer_reach_a_webhook_as_canonical_json() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("payments-pb");
    let dlq = format!("{topic}-dlq");
    Kafka::shared().create_topic(&topic, 2, &[]).await?;
    Kafka::shared().create_topic(&dlq, 1, &[]).await?;
    let env = Env::start(RegistryKind::Embedded, &route(&topic, "protobuf", None)).await?;
    let receiver = Receiver::start().await?;

    // Confluent's serializer, with its defaults, registers the file and its import itself.
    let events = json!([
        {"key": "k-1", "value": {"orderId": "o-1", "total": {"currency": "EUR", "units": "12"},
                                 "placedAt": "2026-12-01T10:00:00.500Z", "lines": [{"sku": "x", "quantity": 1}]}},
        {"key": "k-2", "value": {"orderId": "o-2", "status": "PLACED"}},
        {"key": "k-3", "value": {}},
    ]);
    let spec = json!({
        "files": {"shop/money.proto": MONEY, "shop/orders.proto": ORDERS},
        "main": "shop/orders.proto",
        "message": "shop.v1.OrderPlaced",
        "events": events,
    });
    let canonical = produce_with_confluent(&env, &topic, &spec).await?;
    assert_eq!(canonical.len(), 3);

    let subscription = json!({
        "name": "payments", "topics": [topic], "url": receiver.url("payments"),
        "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "start": "earliest", "dead_letter_topic": dlq,
    });
    let response = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&subscription).send().await?;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await?);
    receiver.wait_until("payments", WAIT, |r| r.len() >= 3).await;
    let received = receiver.received("payments");
    assert_eq!(received.len(), 3, "each record once");
    for (event, python_json) in events.as_array().expect("events").iter().zip(&canonical) {
        let key = event["key"].as_str().expect("a key");
        let delivery = received.iter().find(|r| r.header("sluice-key") == key).expect("delivered");
        assert_eq!(delivery.json(), *python_json, "{key}: the same canonical JSON as Python's MessageToDict");
        assert_eq!(delivery.json(), event["value"], "{key}: the message that was written");
    }
    assert_eq!(record_count(&env.bootstrap, &dlq).await?, 0, "nothing was dead-lettered");
    // The serializer registered base64 descriptors; the registry answers .proto text, as
    // Confluent's does, and the import under its path.
    let latest: Value = env
        .http
        .get(format!("{}/subjects/{topic}-value/versions/latest", env.registry_url))
        .send()
        .await?
        .json()
        .await?;
    let text = latest["schema"].as_str().unwrap_or_default();
    assert!(text.starts_with("syntax = \"proto3\";") && text.contains("message OrderPlaced {"), "{latest}");
    assert_eq!(latest["references"][0]["name"], "shop/money.proto", "{latest}");
    let money: Value = env
        .http
        .get(format!("{}/subjects/shop%2Fmoney.proto/versions/1", env.registry_url))
        .send()
        .await?
        .json()
        .await?;
    assert!(money["schema"].as_str().is_some_and(|s| s.contains("message Money {")), "{money}");
    env.gateway.stop().await?;
    Ok(())
}

/// Runs `tests/python/produce_protobuf.py`; returns the canonical JSON of each message it wrote.
async fn produce_with_confluent(env: &Env, topic: &str, spec: &Value) -> anyhow::Result<Vec<Value>> {
    use std::io::Write as _;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/produce_protobuf.py");
    let mut command = std::process::Command::new(python().await?);
    command.args([script, &env.bootstrap, topic, &env.registry_url]);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let spec = spec.to_string();
    let output = tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
        let mut child = command.spawn()?;
        child.stdin.take().expect("stdin").write_all(spec.as_bytes())?;
        child.wait_with_output()
    })
    .await??;
    anyhow::ensure!(
        output.status.success(),
        "produce_protobuf.py failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)?.lines().map(|line| Ok(serde_json::from_str(line)?)).collect()
}
