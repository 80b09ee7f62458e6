//! Whole Kafka records over HTTP (issue 16): the envelope form's keys with a key schema,
//! headers, explicit partitions and tombstones, and the `event-id` every record carries, each
//! read back with Confluent's Python client through the registry.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::{Kafka, unique_name};
use support::{BOTH, Env, ORDER_PLACED, order, read_cloudevents, read_records};

const ENVELOPE: &str = "application/vnd.sluice.envelope+json";
const ORDER_KEY: &str = r#"{"type":"record","name":"OrderKey","namespace":"dev.sluice.examples","fields":[{"name":"order_id","type":"string"}]}"#;

fn is_uuid_v7(id: &str) -> bool {
    id.len() == 36 && id.as_bytes()[14] == b'7' && id.chars().filter(|c| *c == '-').count() == 4
}

/// A compacted topic of 3 partitions with an Avro value and an Avro key schema.
async fn keyed_route(env_kind: support::RegistryKind) -> anyhow::Result<(Env, String, u32)> {
    let topic = unique_name("records");
    Kafka::shared().create_topic(&topic, 3, &[("cleanup.policy", "compact")]).await?;
    let routes = format!("[[topics]]\nname = \"{topic}\"\nformat = \"avro\"\nkey_format = \"avro\"\n");
    let env = Env::start(env_kind, &routes).await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    let key_id = env.register(&format!("{topic}-key"), "AVRO", ORDER_KEY).await?;
    Ok((env, topic, key_id))
}

/// A one-partition topic routed as Avro `OrderPlaced` keyed by `/order_id`, on the embedded
/// registry.
async fn order_route(prefix: &str) -> anyhow::Result<(Env, String)> {
    let topic = unique_name(prefix);
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let env = Env::start(support::RegistryKind::Embedded, &support::route(&topic, "avro", Some("/order_id"))).await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    Ok((env, topic))
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_records_arrive_as_sent_keys_values_headers_partitions_and_tombstones() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let (env, topic, key_id) = keyed_route(kind).await?;
        let body = json!([
            {"key": {"order_id": "o-1"}, "value": order("o-1"), "partition": 2,
             "headers": {"source": "shop", "blob": {"base64": "AAH/"}}},
            {"key": {"order_id": "o-2"}, "value": order("o-2"), "event_id": "evt-2"},
            {"key": {"order_id": "o-1"}, "value": null, "partition": 2},
        ]);
        let reply = env.post_raw(&topic, ENVELOPE, body.to_string()).await?;
        assert_eq!(reply.status, StatusCode::OK, "{kind:?}: {}", reply.body);
        let results = reply.body["results"].as_array().expect("results").clone();
        assert_eq!((results[0]["partition"].as_i64(), results[2]["partition"].as_i64()), (Some(2), Some(2)));
        let first_id = results[0]["event_id"].as_str().expect("an event id");
        assert!(is_uuid_v7(first_id), "a UUIDv7 by default: {first_id}");
        assert_eq!(results[1]["event_id"], "evt-2", "the envelope's own id");

        let records = read_records(&env.bootstrap, &topic, &env.registry_url, 3).await?;
        let at = |partition: i64, offset: i64| {
            records
                .iter()
                .find(|r| r["partition"] == partition && r["offset"] == offset)
                .unwrap_or_else(|| panic!("no record at {partition}/{offset}: {records:?}"))
        };
        let one = at(2, results[0]["offset"].as_i64().unwrap());
        assert_eq!(one["key"], json!({"order_id": "o-1"}), "the key, deserialized with the key schema");
        assert_eq!(one["key_schema_id"], key_id);
        assert_eq!(one["value"], order("o-1"));
        assert_eq!(one["headers"]["source"], "shop");
        assert_eq!(one["headers"]["blob"], json!({"base64": "AAH/"}), "bytes headers as sent");
        assert_eq!(one["headers"]["event-id"], first_id);
        let two = at(results[1]["partition"].as_i64().unwrap(), results[1]["offset"].as_i64().unwrap());
        assert_eq!((&two["key"], &two["headers"]["event-id"]), (&json!({"order_id": "o-2"}), &json!("evt-2")));
        let tombstone = at(2, results[2]["offset"].as_i64().unwrap());
        assert_eq!((&tombstone["key"], &tombstone["value"]), (&json!({"order_id": "o-1"}), &Value::Null));
        assert_eq!(tombstone["headers"]["event-id"], results[2]["event_id"]);
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn envelope_errors_name_the_record_and_the_place() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (env, topic, _) = keyed_route(support::RegistryKind::Embedded).await?;
    let cases = [
        // A key that does not fit the key schema: 422 under /key.
        (json!({"key": {"order": 1}, "value": order("o-1")}), 422, "invalid-key", Some("/key/order_id")),
        // A tombstone needs a key.
        (json!({"value": null}), 422, "missing-key", Some("/key")),
        // A partition the topic does not have.
        (json!({"key": {"order_id": "o-1"}, "value": order("o-1"), "partition": 7}), 404, "unknown-partition", None),
        // The value is still checked against its schema.
        (
            json!({"key": {"order_id": "o-1"}, "value": {"order_id": "o-1"}}),
            422,
            "schema-violation",
            Some("/customer_id"),
        ),
    ];
    for (envelope, status, slug, pointer) in cases {
        let reply = env.post_raw(&topic, ENVELOPE, envelope.to_string()).await?;
        assert_eq!(reply.status.as_u16(), status, "{envelope}: {}", reply.body);
        let error = &reply.body["errors"][0];
        assert_eq!(error["type"], slug, "{envelope}: {}", reply.body);
        if let Some(pointer) = pointer {
            assert_eq!(error["pointer"], pointer, "{envelope}: {}", reply.body);
        }
    }
    // Malformed envelopes are the request's problem, with a pointer into the body.
    let reply = env.post_raw(&topic, ENVELOPE, r#"[{"value": {}, "partition": "two"}]"#).await?;
    assert_eq!(
        (reply.status, reply.body["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("urn:sluice:problem:invalid-body"))
    );
    assert_eq!(reply.body["pointer"], "/0");

    // Text keys on a route without a key schema; a key that is not a string there is refused.
    let plain = unique_name("records-text");
    Kafka::shared().create_topic(&plain, 1, &[]).await?;
    let env2 =
        Env::start(support::RegistryKind::Embedded, &format!("[[topics]]\nname = \"{plain}\"\nformat = \"json\"\n"))
            .await?;
    let reply = env2.post_raw(&plain, ENVELOPE, json!({"key": "k-1", "value": {"a": 1}}).to_string()).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = env2.post_raw(&plain, ENVELOPE, json!({"key": {"k": 1}, "value": {"a": 1}}).to_string()).await?;
    assert_eq!(
        (reply.body["errors"][0]["type"].as_str(), reply.body["errors"][0]["pointer"].as_str()),
        (Some("invalid-key"), Some("/key"))
    );
    let records = read_records(&env2.bootstrap, &plain, &env2.registry_url, 1).await?;
    assert_eq!((&records[0]["key"], &records[0]["value"]), (&json!("k-1"), &json!(r#"{"a":1}"#)));
    env.gateway.stop().await?;
    env2.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_carries_an_event_id_from_the_gateway_or_the_event() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (generated, chosen) = (unique_name("event-ids"), unique_name("event-ids-field"));
    Kafka::shared().create_topic(&generated, 1, &[]).await?;
    Kafka::shared().create_topic(&chosen, 1, &[]).await?;
    let routes = format!(
        "[[topics]]\nname = \"{generated}\"\nformat = \"avro\"\nkey = \"/order_id\"\n\n\
         [[topics]]\nname = \"{chosen}\"\nformat = \"json\"\nevent_id = \"/id\"\n"
    );
    let env = Env::start(support::RegistryKind::Embedded, &routes).await?;
    env.register(&format!("{generated}-value"), "AVRO", ORDER_PLACED).await?;

    // Plain JSON requests (the form most clients use) get a UUIDv7 each, returned and written.
    let reply = env.post(&generated, &json!([order("o-1"), order("o-2")])).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let ids: Vec<&str> =
        reply.body["results"].as_array().unwrap().iter().map(|r| r["event_id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| is_uuid_v7(id)) && ids[0] != ids[1], "{ids:?}");
    let records = read_records(&env.bootstrap, &generated, &env.registry_url, 2).await?;
    let written: Vec<&str> = records.iter().map(|r| r["headers"]["event-id"].as_str().unwrap()).collect();
    assert_eq!(written, ids, "in order on one partition");

    // A route's `event_id` pointer takes the id from the event; `POST /v1/events` too.
    let reply = env
        .http
        .post(format!("{}/v1/events", env.base))
        .json(&json!([{"topic": chosen, "value": {"id": "order-77", "n": 1}}]))
        .send()
        .await?;
    let body: Value = reply.json().await?;
    assert_eq!(body["results"][0]["event_id"], "order-77", "{body}");
    let records = read_records(&env.bootstrap, &chosen, &env.registry_url, 1).await?;
    assert_eq!(records[0]["headers"]["event-id"], "order-77");
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kafkajs_reads_the_default_zstd_records_with_the_readme_codec() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (env, topic) = order_route("kafkajs").await?;
    // Fifty alike events in one request: one batch, which zstd shrinks (librdkafka sends a batch
    // that compression would not shrink uncompressed).
    let events: Vec<Value> = (0..50).map(|i| order(&format!("o-{i}"))).collect();
    let reply = env.post(&topic, &json!(events)).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // tests/node/read_kafkajs.mjs: kafkajs with the zstd codec README shows, and Confluent's
    // registry client for kafkajs.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/node/read_kafkajs.mjs");
    let mut command = std::process::Command::new("node");
    command.args([script, &env.bootstrap, &topic, &env.registry_url, "50"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    let records: Vec<Value> = printed.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let values: Vec<&Value> = records.iter().map(|r| &r["value"]).collect();
    assert_eq!(values, events.iter().collect::<Vec<_>>(), "the Avro values, decoded by kafkajs's registry client");
    let ids: Vec<&Value> = reply.body["results"].as_array().unwrap().iter().map(|r| &r["event_id"]).collect();
    let headers: Vec<&Value> = records.iter().map(|r| &r["headers"]["event-id"]).collect();
    assert_eq!(headers, ids);
    assert_eq!(records[0]["key"], "o-0");
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudevents_requests_become_records_of_the_kafka_binding() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (env, topic) = order_route("cloudevents").await?;
    let url = format!("{}/v1/topics/{topic}/events", env.base);
    let cloudevent = |id: &str, order_id: &str| {
        json!({"specversion": "1.0", "id": id, "source": "/shop", "type": "dev.sluice.order.placed",
               "time": "2026-12-02T10:00:00Z", "subject": order_id, "tenant": "acme", "data": order(order_id)})
    };

    // Structured mode, one event and a batch.
    let answer = env
        .http
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body(cloudevent("ce-1", "o-1").to_string())
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await?;
    assert_eq!(body["results"][0]["event_id"], "ce-1", "the CloudEvent's id is the event id");
    let answer = env
        .http
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(json!([cloudevent("ce-2", "o-2"), cloudevent("ce-3", "o-3")]).to_string())
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::OK, "{}", answer.text().await?);
    // Binary mode: attributes in ce-* headers, the body is the data.
    let answer = env
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "ce-4")
        .header("ce-source", "/shop")
        .header("ce-type", "dev.sluice.order.placed")
        .header("ce-tenant", "acme")
        .body(order("o-4").to_string())
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::OK, "{}", answer.text().await?);
    // A request that is not a CloudEvent 1.0 is refused, saying where.
    let answer = env
        .http
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body(json!({"specversion": "1.0", "id": "x", "type": "t", "data": order("o-9")}).to_string())
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let problem: Value = answer.json().await?;
    assert_eq!(
        (problem["type"].as_str(), problem["pointer"].as_str()),
        (Some("urn:sluice:problem:invalid-cloudevent"), Some("/source"))
    );

    // The CloudEvents SDK's Kafka binding reads each record back as the event sent.
    let events = read_cloudevents(&env.bootstrap, &topic, &env.registry_url, 4).await?;
    for (event, (id, order_id)) in
        events.iter().zip([("ce-1", "o-1"), ("ce-2", "o-2"), ("ce-3", "o-3"), ("ce-4", "o-4")])
    {
        let attributes = &event["attributes"];
        assert_eq!(attributes["id"], id, "{event}");
        assert_eq!((&attributes["specversion"], &attributes["source"]), (&json!("1.0"), &json!("/shop")));
        assert_eq!(attributes["type"], "dev.sluice.order.placed");
        assert_eq!(attributes["tenant"], "acme", "extensions too");
        assert_eq!(attributes["datacontenttype"], "application/json");
        assert_eq!(attributes["partitionkey"], order_id, "the route's key, which the binding reads as partitionkey");
        assert_eq!(event["data"], order(order_id));
    }
    assert_eq!(events[0]["attributes"]["time"], "2026-12-02T10:00:00Z");
    assert_eq!(events[0]["attributes"]["subject"], "o-1");
    let records = read_records(&env.bootstrap, &topic, &env.registry_url, 4).await?;
    assert_eq!(records[3]["headers"]["event-id"], "ce-4");
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pattern_route_serves_topics_created_after_the_gateway_started() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let prefix = unique_name("pattern");
    let env =
        Env::start(support::RegistryKind::Embedded, &support::route(&format!("{prefix}.*"), "avro", Some("/order_id")))
            .await?;
    for suffix in ["placed", "refunded"] {
        let topic = format!("{prefix}.{suffix}");
        Kafka::shared().create_topic(&topic, 1, &[]).await?;
        env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
        let reply = env.post(&topic, &json!(order(suffix))).await?;
        assert_eq!(reply.status, StatusCode::OK, "{topic}: {}", reply.body);
        let records = read_records(&env.bootstrap, &topic, &env.registry_url, 1).await?;
        assert_eq!((&records[0]["key"], &records[0]["value"]), (&json!(suffix), &order(suffix)));
    }
    // A matching name that is no topic, and a name no route matches.
    let reply = env.post(&format!("{prefix}.missing"), &json!(order("x"))).await?;
    assert_eq!(
        (reply.status, reply.body["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("urn:sluice:problem:kafka-topic-missing"))
    );
    let reply = env.post(&format!("{prefix}x.placed"), &json!(order("x"))).await?;
    assert_eq!(
        (reply.status, reply.body["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("urn:sluice:problem:unknown-topic"))
    );
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bytes_route_writes_any_body_as_it_is_or_one_record_per_line() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("raw");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let env =
        Env::start(support::RegistryKind::Embedded, &format!("[[topics]]\nname = \"{topic}\"\nformat = \"bytes\"\n"))
            .await?;
    // Any bytes, any content type: one record, byte for byte, with its content type.
    let blob: Vec<u8> = (0..=255u8).rev().collect();
    let reply = env.post_raw(&topic, "application/octet-stream", blob.clone()).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // NDJSON: a record per line, blank lines skipped, CRLF or LF.
    let reply = env.post_raw(&topic, "application/x-ndjson", "level=info\r\n\nlevel=warn msg=\"disk 91%\"\n").await?;
    assert_eq!(reply.body["results"].as_array().map(Vec::len), Some(2), "{}", reply.body);
    let too_many = "x\n".repeat(501);
    let reply = env.post_raw(&topic, "application/x-ndjson", too_many).await?;
    assert_eq!(
        (reply.status, reply.body["type"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("urn:sluice:problem:too-many-events"))
    );
    let records = read_records(&env.bootstrap, &topic, &env.registry_url, 3).await?;
    use base64::Engine as _;
    let values: Vec<&Value> = records.iter().map(|r| &r["value"]).collect();
    let blob = json!({"base64": base64::engine::general_purpose::STANDARD.encode(&blob)});
    assert_eq!(values, [&blob, &json!("level=info"), &json!("level=warn msg=\"disk 91%\"")]);
    assert_eq!(records[0]["headers"]["content-type"], "application/octet-stream");
    env.gateway.stop().await?;
    Ok(())
}
