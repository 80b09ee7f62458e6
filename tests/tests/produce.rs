//! The produce path against a real Kafka broker, with Apicurio and with the embedded registry:
//! wire format checked by Confluent's own Python deserializers, Java-compatible partitioning,
//! every refusal with its status and pointer, and outages answered with 503.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::{Kafka, consume_all, unique_name};
use support::{BOTH, Env, ORDER_PLACED, RegistryKind, order, record_count, route};

const WAIT: Duration = Duration::from_secs(30);

async fn avro_env(kind: RegistryKind, partitions: i32) -> anyhow::Result<(Env, String, u32)> {
    let topic = unique_name("orders");
    Kafka::shared().create_topic(&topic, partitions, &[]).await?;
    let env = Env::start(kind, &route(&topic, "avro", Some("/order_id"))).await?;
    let id = env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    Ok((env, topic, id))
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_events_carry_the_registry_id_and_decode_with_confluents_deserializer() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let (env, topic, id) = avro_env(kind, 3).await?;
        assert_eq!(env.latest_id(&format!("{topic}-value")).await?, id);
        let mut rfc3339 = order("o-2");
        rfc3339["placed_at"] = json!("2026-11-27T10:00:00.123Z");
        let reply = env.post(&topic, &json!([order("o-1"), rfc3339, order("o-3")])).await?;
        assert_eq!(reply.status, StatusCode::OK, "{kind:?}: {}", reply.body);
        let results = reply.body["results"].as_array().expect("results");
        assert_eq!(results.len(), 3);
        let mut landed = HashMap::new();
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result["index"], i);
            assert_eq!(result["schema_id"], id);
            landed.insert(
                format!("o-{}", i + 1),
                (result["partition"].as_i64().unwrap(), result["offset"].as_i64().unwrap()),
            );
        }

        let records = consume_all(&env.bootstrap, &topic, 3, WAIT).await?;
        assert_eq!(records.len(), 3);
        for record in &records {
            let payload = record.payload().expect("a value");
            assert_eq!(payload[0], 0, "Confluent magic byte");
            assert_eq!(u32::from_be_bytes(payload[1..5].try_into()?), id, "schema id of the registry");
            let key = String::from_utf8(record.key().expect("a key").to_vec())?;
            assert_eq!(landed[&key], (i64::from(record.partition()), record.offset()), "reported where it landed");
        }

        let decoded = env.decode_independently(&topic, "avro", 3).await?;
        let by_key: HashMap<&str, &Value> = decoded.iter().map(|d| (d["key"].as_str().unwrap(), d)).collect();
        for key in ["o-1", "o-2", "o-3"] {
            let decoded = by_key[key];
            assert_eq!(decoded["value"], order(key), "{kind:?}: Confluent's AvroDeserializer reads back what was sent");
            assert_eq!(decoded["schema_id"], id);
        }
        env.gateway.stop().await?;
    }
    Ok(())
}

const ORDER_JSON_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OrderPlaced",
  "type": "object",
  "required": ["order_id", "total_cents", "lines"],
  "additionalProperties": false,
  "properties": {
    "order_id": {"type": "string"},
    "total_cents": {"type": "integer", "minimum": 0},
    "lines": {"type": "array", "items": {
      "type": "object", "required": ["sku"],
      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
    }}
  }
}"#;

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_events_are_validated_framed_and_decode_with_confluents_deserializer() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let topic = unique_name("carts");
        Kafka::shared().create_topic(&topic, 2, &[]).await?;
        let env = Env::start(kind, &route(&topic, "json-schema", Some("/order_id"))).await?;
        let id = env.register(&format!("{topic}-value"), "JSON", ORDER_JSON_SCHEMA).await?;
        let events = json!([
            {"order_id": "j-1", "total_cents": 5, "lines": [{"sku": "a", "qty": 2}]},
            {"order_id": "j-2", "total_cents": 7, "lines": []},
        ]);
        let reply = env.post(&topic, &events).await?;
        assert_eq!(reply.status, StatusCode::OK, "{kind:?}: {}", reply.body);

        let reply =
            env.post(&topic, &json!({"order_id": "j-3", "total_cents": 1, "lines": [{"sku": "b", "qty": 0}]})).await?;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
        assert_eq!(reply.body["errors"][0]["pointer"], "/lines/0/qty");

        let records = consume_all(&env.bootstrap, &topic, 2, WAIT).await?;
        for record in &records {
            let payload = record.payload().expect("a value");
            assert_eq!((payload[0], u32::from_be_bytes(payload[1..5].try_into()?)), (0, id));
        }
        let decoded = env.decode_independently(&topic, "json", 2).await?;
        let mut values: Vec<Value> = decoded.iter().map(|d| d["value"].clone()).collect();
        values.sort_by_key(|v| v["order_id"].as_str().map(str::to_owned));
        assert_eq!(Value::Array(values), events, "{kind:?}: Confluent's JSONDeserializer reads back what was sent");
        assert_eq!(record_count(&env.bootstrap, &topic).await?, 2, "the refused event was not produced");
        env.gateway.stop().await?;
    }
    Ok(())
}

/// Tuples (draft 7 `items: [...]` without `$schema`, as Confluent reads it; 2020-12
/// `prefixItems`) and boolean subschemas register in the embedded registry and validate events
/// on a route, each refusal pointing at the offending value.
#[tokio::test(flavor = "multi_thread")]
async fn json_schema_tuples_and_boolean_subschemas_validate_events_on_a_route() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let schemas = [
        (
            json!({"type": "object", "properties": {"point": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}}}),
            json!({"point": ["x", 1]}),
            json!({"point": ["x", "y"]}),
            "/point/1",
        ),
        (
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                   "properties": {"point": {"type": "array", "prefixItems": [{"type": "string"}], "items": false}}}),
            json!({"point": ["x"]}),
            json!({"point": [1]}),
            "/point/0",
        ),
        (
            json!({"type": "object", "properties": {"anything": true, "nothing": false}}),
            json!({"anything": {"deep": [1, null]}}),
            json!({"nothing": 0}),
            "/nothing",
        ),
    ];
    for (schema, good, bad, pointer) in schemas {
        let topic = unique_name("shapes");
        Kafka::shared().create_topic(&topic, 1, &[]).await?;
        let env = Env::start(RegistryKind::Embedded, &route(&topic, "json-schema", None)).await?;
        env.register(&format!("{topic}-value"), "JSON", &schema.to_string()).await?;
        let reply = env.post(&topic, &good).await?;
        assert_eq!(reply.status, StatusCode::OK, "{schema}: {}", reply.body);
        let reply = env.post(&topic, &bad).await?;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{schema}: {}", reply.body);
        assert_eq!(reply.body["errors"][0]["pointer"], pointer, "{schema}: {}", reply.body);
        assert_eq!(record_count(&env.bootstrap, &topic).await?, 1, "only the valid event was produced");
        env.gateway.stop().await?;
    }
    Ok(())
}

/// Java's `org.apache.kafka.common.utils.Utils.murmur2`, the default partitioner's hash.
fn java_murmur2(data: &[u8]) -> i32 {
    const M: i32 = 0x5bd1_e995;
    let length = i32::try_from(data.len()).expect("short key");
    let mut h: i32 = 0x9747_b28c_u32 as i32 ^ length;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= i32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= i32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= i32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// `Utils.toPositive(Utils.murmur2(key)) % numPartitions`
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (java_murmur2(key) & 0x7fff_ffff) % partitions
}

#[test]
fn the_test_oracle_matches_kafkas_own_murmur2_vectors() {
    let _deadline = sluice_tests::deadline();
    // From Apache Kafka's UtilsTest.testMurmur2.
    for (key, hash) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ] {
        assert_eq!(java_murmur2(key.as_bytes()), hash, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_land_on_the_partition_javas_default_partitioner_picks() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    const PARTITIONS: i32 = 7;
    for kind in BOTH {
        let (env, topic, _) = avro_env(kind, PARTITIONS).await?;
        let keys: Vec<String> = (0..1000).map(|i| format!("order-{i}-{}", i * 7919 % 1013)).collect();
        let mut expected = HashMap::new();
        for batch in keys.chunks(100) {
            let events: Vec<Value> = batch.iter().map(|k| order(k)).collect();
            let reply = env.post(&topic, &Value::Array(events)).await?;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            for (key, result) in batch.iter().zip(reply.body["results"].as_array().unwrap()) {
                let predicted = java_partition(key.as_bytes(), PARTITIONS);
                assert_eq!(result["partition"], predicted, "{kind:?}: key {key}");
                expected.insert(key.clone(), predicted);
            }
        }
        let used: HashSet<i32> = expected.values().copied().collect();
        assert_eq!(used.len(), PARTITIONS as usize, "the keys spread over every partition");
        let records = consume_all(&env.bootstrap, &topic, 1000, WAIT).await?;
        assert_eq!(records.len(), 1000);
        for record in records {
            let key = String::from_utf8(record.key().unwrap().to_vec())?;
            assert_eq!(record.partition(), expected[&key], "the broker holds {key} where predicted");
        }
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_name_the_problem_and_produce_nothing() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let topic = unique_name("refusals");
        let keyed = unique_name("keyed");
        Kafka::shared().create_topic(&topic, 3, &[]).await?;
        Kafka::shared().create_topic(&keyed, 1, &[]).await?;
        let routes =
            format!("{}\n{}", route(&topic, "avro", Some("/order_id")), route(&keyed, "json", Some("/user/id")));
        let env = Env::start(kind, &routes).await?;
        env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;

        let mut wrong_type = order("r-1");
        wrong_type["total_cents"] = json!("12.00");
        let mut missing = order("r-2");
        missing.as_object_mut().unwrap().remove("customer_id");
        let mut unknown = order("r-3");
        unknown["colour"] = json!("red");
        let many: Vec<Value> = (0..501).map(|i| order(&format!("m-{i}"))).collect();
        let big = format!("[{}]", vec![order("big").to_string(); 700].join(","));
        assert!(big.len() > 65536);

        struct Case {
            name: &'static str,
            topic: String,
            content_type: &'static str,
            body: String,
            status: StatusCode,
            slug: &'static str,
            pointer: Option<&'static str>,
        }
        let case = |name, topic: &str, content_type, body: String, status, slug, pointer| Case {
            name,
            topic: topic.to_owned(),
            content_type,
            body,
            status,
            slug,
            pointer,
        };
        let cases = [
            case(
                "malformed JSON",
                &topic,
                "application/json",
                "[{\"order_id\": }]".into(),
                StatusCode::BAD_REQUEST,
                "malformed-json",
                None,
            ),
            case(
                "wrong content type",
                &topic,
                "text/plain",
                order("t").to_string(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                None,
            ),
            case(
                "body over the limit",
                &topic,
                "application/json",
                big,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                None,
            ),
            case(
                "too many events",
                &topic,
                "application/json",
                Value::Array(many).to_string(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-events",
                None,
            ),
            case(
                "unknown topic",
                "no-such-route",
                "application/json",
                order("u").to_string(),
                StatusCode::NOT_FOUND,
                "unknown-topic",
                None,
            ),
            case(
                "wrong type",
                &topic,
                "application/json",
                wrong_type.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "schema-violation",
                Some("/total_cents"),
            ),
            case(
                "missing field",
                &topic,
                "application/json",
                missing.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "schema-violation",
                Some("/customer_id"),
            ),
            case(
                "unknown field",
                &topic,
                "application/json",
                unknown.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "schema-violation",
                Some("/colour"),
            ),
            case(
                "missing key",
                &keyed,
                "application/json",
                json!({"user": {"name": "x"}}).to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing-key",
                Some("/user/id"),
            ),
            case(
                "object as key",
                &keyed,
                "application/json",
                json!({"user": {"id": {"n": 1}}}).to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-key",
                Some("/user/id"),
            ),
        ];
        for case in cases {
            let reply = env.post_raw(&case.topic, case.content_type, case.body).await?;
            let what = format!("{kind:?} {}: {}", case.name, reply.body);
            assert_eq!(reply.status, case.status, "{what}");
            assert_eq!(reply.content_type(), "application/problem+json", "{what}");
            assert_eq!(reply.body["type"], format!("urn:sluice:problem:{}", case.slug), "{what}");
            assert_eq!(reply.body["status"], case.status.as_u16(), "{what}");
            if let Some(pointer) = case.pointer {
                assert_eq!(reply.body["errors"][0]["pointer"], pointer, "{what}");
                assert_eq!(reply.body["errors"][0]["index"], 0, "{what}");
            }
            if case.slug == "malformed-json" {
                assert_eq!((reply.body["line"].as_u64(), reply.body["column"].as_u64()), (Some(1), Some(15)), "{what}");
            }
        }
        assert_eq!(record_count(&env.bootstrap, &topic).await?, 0, "{kind:?}: no refused event reached Kafka");
        assert_eq!(record_count(&env.bootstrap, &keyed).await?, 0);

        // A mixed batch stores the good events and names the bad ones.
        let mut bad = order("b-1");
        bad["currency"] = json!(978);
        let reply = env.post(&topic, &json!([order("g-1"), bad, order("g-2")])).await?;
        assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{}", reply.body);
        let results = reply.body["results"].as_array().unwrap();
        assert!(results[0]["offset"].is_i64() && results[2]["offset"].is_i64());
        assert_eq!(results[1]["error"]["type"], "schema-violation");
        assert_eq!(results[1]["error"]["pointer"], "/currency");
        let stored = consume_all(&env.bootstrap, &topic, 3, Duration::from_secs(5)).await?;
        let keys: HashSet<Vec<u8>> = stored.iter().map(|r| r.key().unwrap().to_vec()).collect();
        assert_eq!(keys, HashSet::from([b"g-1".to_vec(), b"g-2".to_vec()]), "only the valid events were produced");
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_outage_answers_503_and_never_2xx() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let mut kafka = Kafka::start().await?;
        let topic = unique_name("outage");
        kafka.create_topic(&topic, 3, &[]).await?;
        let env = Env::start_on(kind, &kafka.bootstrap_servers(), &route(&topic, "avro", Some("/order_id")), "", None)
            .await?;
        env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
        assert_eq!(env.post(&topic, &order("before")).await?.status, StatusCode::OK);

        kafka.kill()?;
        let mut answers = Vec::new();
        for i in 0..6 {
            let reply =
                env.post(&topic, &json!([order(&format!("during-{i}")), order(&format!("during-{i}b"))])).await?;
            assert!(!reply.status.is_success(), "{kind:?}: {} while the broker is down: {}", reply.status, reply.body);
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{kind:?}: {}", reply.body);
            assert!(reply.headers.contains_key("retry-after"), "{kind:?}: 503 says when to retry");
            assert_eq!(reply.content_type(), "application/problem+json");
            answers.push(reply.body["type"].as_str().unwrap_or_default().to_owned());
        }
        assert!(answers.iter().all(|t| t.starts_with("urn:sluice:problem:kafka-unavailable")), "{answers:?}");
        let ready = env.http.get(format!("{}/readyz", env.base)).send().await?;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

        kafka.restart().await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = env.post(&topic, &order("after")).await?;
            if reply.status == StatusCode::OK {
                break;
            }
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
            assert!(Instant::now() < deadline, "{kind:?}: still {} a minute after the broker came back", reply.status);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn fire_and_forget_answers_202_and_the_events_arrive() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let topic = unique_name("clicks");
        Kafka::shared().create_topic(&topic, 1, &[]).await?;
        let env = Env::start(kind, &format!("{}ack = \"fire-and-forget\"\n", route(&topic, "json", None))).await?;
        let reply = env.post(&topic, &json!([{"page": "/a"}, {"page": "/b"}])).await?;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        let result = &reply.body["results"][1];
        assert_eq!((&result["index"], &result["enqueued"]), (&json!(1), &json!(true)), "{result}");
        assert!(result["event_id"].is_string() && result.get("offset").is_none(), "queued, not stored: {result}");
        let records = consume_all(&env.bootstrap, &topic, 2, WAIT).await?;
        let pages: Vec<Value> = records.iter().map(|r| serde_json::from_slice(r.payload().unwrap()).unwrap()).collect();
        assert_eq!(pages, [json!({"page": "/a"}), json!({"page": "/b"})], "schemaless JSON is produced as sent");
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_latest_version_is_used_within_the_cache_ttl_and_old_records_still_decode() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let (env, topic, v1) = avro_env(kind, 1).await?;
        let reply = env.post(&topic, &order("v1")).await?;
        assert_eq!(reply.body["results"][0]["schema_id"], v1);

        let v2_schema = ORDER_PLACED.replace(
            r#"{"name": "placed_at""#,
            r#"{"name": "shipping_method", "type": "string", "default": "standard"},
    {"name": "placed_at""#,
        );
        assert_ne!(v2_schema, ORDER_PLACED);
        let v2 = env.register(&format!("{topic}-value"), "AVRO", &v2_schema).await?;
        assert_ne!(v1, v2);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let reply = env.post(&topic, &order("v2")).await?;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            if reply.body["results"][0]["schema_id"] == v2 {
                break;
            }
            assert_eq!(reply.body["results"][0]["schema_id"], v1);
            assert!(Instant::now() < deadline, "{kind:?}: v2 not picked up within 15 s (TTL is 0.5 s)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let count = usize::try_from(record_count(&env.bootstrap, &topic).await?)?;
        let decoded = env.decode_independently(&topic, "avro", count).await?;
        assert_eq!(decoded[0]["schema_id"], v1);
        assert_eq!(decoded[0]["value"], order("v1"), "a v1 record still decodes");
        let last = decoded.last().unwrap();
        assert_eq!(last["schema_id"], v2);
        assert_eq!(last["value"]["shipping_method"], "standard", "v2 default filled in");
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_created_after_start_is_found_without_restart() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("late");
    let env = Env::start(RegistryKind::Embedded, &route(&topic, "json", None)).await?;
    let reply = env.post(&topic, &json!({"n": 1})).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert_eq!(reply.body["type"], "urn:sluice:problem:kafka-topic-missing");
    let ready: Value = env.http.get(format!("{}/readyz", env.base)).send().await?.json().await?;
    assert_eq!(ready["topics_missing"], json!([topic]));

    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = env.post(&topic, &json!({"n": 2})).await?;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(Instant::now() < deadline, "the new topic was not found within 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(record_count(&env.bootstrap, &topic).await?, 1);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_reports_kafka_and_the_registry() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let env = Env::start(kind, "").await?;
        let response = env.http.get(format!("{}/readyz", env.base)).send().await?;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await?;
        assert_eq!((&body["kafka"], &body["registry"]), (&json!("ok"), &json!("ok")), "{kind:?}: {body}");
        let health = env.http.get(format!("{}/healthz", env.base)).send().await?;
        assert_eq!(health.status(), StatusCode::OK);
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_routes_keep_their_version_and_record_name_strategies_find_their_subject() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let (latest, pinned) = (unique_name("latest"), unique_name("pinned"));
        for topic in [&latest, &pinned] {
            Kafka::shared().create_topic(topic, 1, &[]).await?;
        }
        // Both routes share one subject named after the record, as RecordNameStrategy does.
        let record = format!("dev.sluice.examples.OrderPlaced{}", unique_name("").replace('-', ""));
        let routes = format!(
            "{}subject_strategy = \"record\"\nrecord = \"{record}\"\n\n{}subject_strategy = \"topic-record\"\nrecord = \"{record}\"\nschema_version = 1\n",
            route(&latest, "avro", Some("/order_id")),
            route(&pinned, "avro", Some("/order_id")),
        );
        let env = Env::start(kind, &routes).await?;
        let v1 = env.register(&record, "AVRO", ORDER_PLACED).await?;
        env.register(&format!("{pinned}-{record}"), "AVRO", ORDER_PLACED).await?;
        let v2_schema = include_str!("../../deploy/examples/schemas/order-placed-v2.avsc");
        let v2 = env.register(&record, "AVRO", v2_schema).await?;
        let pinned_v2 = env.register(&format!("{pinned}-{record}"), "AVRO", v2_schema).await?;
        assert_ne!(v1, v2);

        // Wait for the latest route to move to v2: the cache TTL has then passed for both.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let reply = env.post(&latest, &order("l")).await?;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            if reply.body["results"][0]["schema_id"] == v2 {
                break;
            }
            assert!(Instant::now() < deadline, "{kind:?}: the latest route never moved to v2");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reply = env.post(&pinned, &order("p")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let used = reply.body["results"][0]["schema_id"].as_u64();
        assert_ne!(used, Some(u64::from(pinned_v2)), "{kind:?}: the pinned route moved to v2");
        assert_eq!(env.latest_id(&format!("{pinned}-{record}")).await?, pinned_v2);
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_retry_returns_the_first_result_and_produces_nothing_new() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (env, topic, _) = avro_env(RegistryKind::Embedded, 3).await?;
    let url = format!("{}/v1/topics/{topic}/events", env.base);
    let send = |key: &str, body: &Value| {
        env.http
            .post(&url)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let mut wrong = order("i-3");
    wrong["total_cents"] = json!("lots");
    let batch = json!([order("i-1"), order("i-2"), wrong]);

    let first = send("retry-1", &batch).await?;
    assert_eq!(first.status(), StatusCode::MULTI_STATUS);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await?;
    assert_eq!(record_count(&env.bootstrap, &topic).await?, 2);

    // The retry gets the same answer, marked as a replay, and nothing is produced.
    let retry = send("retry-1", &batch).await?;
    assert_eq!(retry.status(), StatusCode::MULTI_STATUS);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await?, first);
    assert_eq!(record_count(&env.bootstrap, &topic).await?, 2);

    // Retries racing each other: one produces, the others wait for its answer.
    let single = json!(order("i-4"));
    let racing = futures::future::try_join_all((0..4).map(|_| async {
        let response = send("retry-2", &single).await?;
        Ok::<_, reqwest::Error>((response.status(), response.json::<Value>().await?))
    }))
    .await?;
    assert!(racing.iter().all(|answer| *answer == racing[0]), "{racing:?}");
    assert_eq!(racing[0].0, StatusCode::OK);
    assert_eq!(record_count(&env.bootstrap, &topic).await?, 3);

    // The same key with another body is a mistake, not a retry.
    let reused = send("retry-1", &json!(order("i-5"))).await?;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.json::<Value>().await?["type"], "urn:sluice:problem:idempotency-key-reused");
    // A new key is a new request; no key, no deduplication.
    assert_eq!(send("retry-3", &single).await?.status(), StatusCode::OK);
    assert_eq!(env.post(&topic, &single).await?.status, StatusCode::OK);
    assert_eq!(env.post(&topic, &single).await?.status, StatusCode::OK);
    assert_eq!(record_count(&env.bootstrap, &topic).await?, 6);
    Ok(())
}
