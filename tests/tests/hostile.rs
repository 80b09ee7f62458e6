//! Hostile input against a running gateway on a real broker: schemas, records, bodies,
//! subscribers, request floods, webhook targets and tenants that try to crash, hang, starve or
//! cross the gateway. After each, the gateway must still be healthy and serve another route's
//! events normally.

mod support;

use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::message::Headers as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_tests::receiver::Receiver;
use sluice_tests::{Kafka, consume_all, plugin_wasm, unique_name};
use support::{Env, ORDER_PLACED, RegistryKind, order, route};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(60);

/// A record whose schema refers to itself: `{"next": {"next": … null}}`.
const LINKED: &str = r#"{"type":"record","name":"Linked","fields":[{"name":"next","type":["null","Linked"]}]}"#;

/// A healthy route beside the hostile one, and a check that it still serves.
struct Healthy {
    topic: String,
}

impl Healthy {
    async fn create() -> anyhow::Result<Self> {
        let topic = unique_name("healthy");
        Kafka::shared().create_topic(&topic, 1, &[]).await?;
        Ok(Self { topic })
    }

    fn route(&self) -> String {
        route(&self.topic, "json", Some("/order_id"))
    }

    /// The gateway answers `/readyz` and stores an event of the healthy route.
    async fn check(&self, env: &Env, after: &str) -> anyhow::Result<()> {
        let ready = env.http.get(format!("{}/readyz", env.base)).send().await?;
        anyhow::ensure!(ready.status() == StatusCode::OK, "after {after}: /readyz answered {}", ready.status());
        let reply = env.post(&self.topic, &order("still-here")).await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "after {after}: the healthy route answered {reply:?}");
        Ok(())
    }
}

async fn raw_producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    Ok(rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create()?)
}

async fn send_raw(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn header(record: &rdkafka::message::OwnedMessage, name: &str) -> String {
    record
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == name))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// A v2 of OrderPlaced that adds an optional decimal with the given precision and scale.
fn with_decimal(precision: u64, scale: u64) -> String {
    let mut schema: Value = serde_json::from_str(ORDER_PLACED).expect("the example schema");
    schema["fields"].as_array_mut().expect("fields").push(json!({
        "name": "d", "default": null,
        "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}],
    }));
    schema.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decimal_schema_of_absurd_precision_is_refused_and_from_a_remote_registry_fails_only_its_route()
-> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let healthy = Healthy::create().await?;
    let orders = unique_name("orders");
    Kafka::shared().create_topic(&orders, 1, &[]).await?;

    // The embedded registry refuses it at registration, with Confluent's 42201.
    let routes = format!("{}{}", route(&orders, "avro", Some("/order_id")), healthy.route());
    let env = Env::start(RegistryKind::Embedded, &routes).await?;
    env.register(&format!("{orders}-value"), "AVRO", ORDER_PLACED).await?;
    let answer = env
        .http
        .post(format!("{}/subjects/{orders}-value/versions", env.registry_url))
        .json(&json!({"schema": with_decimal(1_000_000_000_000_000, 1_000_000_000_000_000)}))
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = answer.json().await?;
    assert_eq!(body["error_code"], 42201, "{body}");
    let mut event = order("o-1");
    event["d"] = json!("1");
    let reply = env.post(&orders, &event).await?;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "v1 has no field d: {reply:?}");
    assert_eq!(env.post(&orders, &order("o-2")).await?.status, StatusCode::OK);
    healthy.check(&env, "the decimal schema").await?;
    env.gateway.stop().await?;

    // A registry that is not ours serves it: that route fails cleanly, the others go on.
    let remote = unique_name("remote");
    Kafka::shared().create_topic(&remote, 1, &[]).await?;
    let routes = format!("{}{}", route(&remote, "avro", None), healthy.route());
    let env = Env::start(RegistryKind::Apicurio, &routes).await?;
    env.register(&format!("{remote}-value"), "AVRO", &with_decimal(100_000, 100_000)).await?;
    let reply = env.post(&remote, &event).await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.body["type"], "urn:sluice:problem:schema-unusable", "{reply:?}");
    assert!(reply.body["detail"].as_str().unwrap_or_default().contains("precision"), "{reply:?}");
    healthy.check(&env, "a remote registry's decimal schema").await?;
    env.gateway.stop().await?;
    Ok(())
}

/// A gateway with an embedded registry, a route for `topic` and a subscription to it (from
/// the earliest record) posting to `receiver`.
async fn subscribed(
    topic: &str,
    (format, schema_type, schema): (&str, &str, &str),
    receiver: &Receiver,
    healthy: &Healthy,
) -> anyhow::Result<(Env, u32)> {
    Kafka::shared().create_topic(topic, 1, &[]).await?;
    Kafka::shared().create_topic(&format!("{topic}.dlq"), 1, &[]).await?;
    let env = Env::start(RegistryKind::Embedded, &format!("{}{}", route(topic, format, None), healthy.route())).await?;
    let id = env.register(&format!("{topic}-value"), schema_type, schema).await?;
    let body = json!({
        "name": "hostile", "topics": [topic], "url": receiver.url("hostile"), "secrets": [SECRET],
        "start": "earliest", "dead_letter_topic": format!("{topic}.dlq"),
    });
    let created = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
    anyhow::ensure!(created.status() == StatusCode::CREATED, "subscription: {}", created.text().await?);
    Ok((env, id))
}

/// Writes `hostile` then a good record straight to the topic; the hostile one must be
/// dead-lettered with a reason containing `reason`, and the good one delivered after it.
async fn dead_lettered_then_delivered(schema: &str, hostile: &[u8], good: &[u8], reason: &str) -> anyhow::Result<()> {
    dead_lettered_then_delivered_as(("avro", "AVRO", schema), hostile, good, reason).await
}

/// [`dead_lettered_then_delivered`] for a route of any format: `(format, schemaType, schema)`.
async fn dead_lettered_then_delivered_as(
    schema: (&str, &str, &str),
    hostile: &[u8],
    good: &[u8],
    reason: &str,
) -> anyhow::Result<()> {
    let healthy = Healthy::create().await?;
    let receiver = Receiver::start().await?;
    let topic = unique_name("hostile");
    let (env, id) = subscribed(&topic, schema, &receiver, &healthy).await?;
    let producer = raw_producer(&env.bootstrap).await?;
    send_raw(&producer, &topic, "hostile", &framed(id, hostile)).await?;
    send_raw(&producer, &topic, "good", &framed(id, good)).await?;

    let dead = consume_all(&env.bootstrap, &format!("{topic}.dlq"), 1, WAIT).await?;
    anyhow::ensure!(dead.len() == 1, "nothing was dead-lettered");
    assert_eq!(dead[0].key(), Some(&b"hostile"[..]));
    assert_eq!(dead[0].payload().map(<[u8]>::len), Some(hostile.len() + 5), "the record as it was");
    let why = header(&dead[0], "dlq-reason");
    assert!(why.contains(reason), "reason: {why}");
    let delivered = receiver.wait_until("hostile", WAIT, |r| !r.is_empty()).await;
    assert_eq!(delivered.len(), 1, "the record after it was delivered");
    assert_eq!(delivered[0].header("sluice-key"), "good");
    healthy.check(&env, reason).await?;
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_megabyte_recursive_record_is_dead_lettered_and_the_next_delivered() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    // 999,000 levels of `next`, each the union's second branch (zig-zag 1 = 0x02), then null.
    let mut hostile = vec![2u8; 999_000];
    hostile.push(0);
    dead_lettered_then_delivered(LINKED, &hostile, &[2, 0], "nest deeper than").await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_array_of_zero_width_items_is_dead_lettered_and_the_next_delivered() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let schema = r#"{"type":"record","name":"Nulls","fields":[{"name":"xs","type":{"type":"array","items":"null"}}]}"#;
    // One block claiming 2^62 - 1 nulls, which take no bytes: 10 bytes that would never end.
    let hostile = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    dead_lettered_then_delivered(schema, &hostile, &[2, 0], "larger than").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protobuf_record_nested_past_the_decoders_limit_is_dead_lettered_and_the_next_delivered() -> anyhow::Result<()>
{
    let _deadline = sluice_tests::deadline();
    let schema = "syntax = \"proto3\";\nmessage Node { Node next = 1; string name = 2; }\n";
    // Message index 0, then 200 levels of `next` (field 1, length-delimited) around an empty one.
    let mut nested: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut outer = vec![0x0a];
        let mut len = nested.len();
        while len >= 0x80 {
            outer.push(u8::try_from(len & 0x7f)? | 0x80);
            len >>= 7;
        }
        outer.push(u8::try_from(len)?);
        outer.extend_from_slice(&nested);
        nested = outer;
    }
    let mut hostile = vec![0];
    hostile.extend_from_slice(&nested);
    dead_lettered_then_delivered_as(("protobuf", "PROTOBUF", schema), &hostile, &[0, 0x12, 1, b'x'], "recursion limit")
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_proto_files_are_refused_with_the_compilers_message_and_recursive_ones_checked() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let healthy = Healthy::create().await?;
    let topic = unique_name("tree-pb");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let routes = format!("{}{}", route(&topic, "protobuf", None), healthy.route());
    let env = Env::start(RegistryKind::Embedded, &routes).await?;
    let subject = format!("{topic}-value");
    let register = |schema: String| {
        let request = env
            .http
            .post(format!("{}/subjects/{subject}/versions", env.registry_url))
            .json(&json!({"schema": schema, "schemaType": "PROTOBUF"}));
        async move {
            let response = request.send().await?;
            anyhow::Ok((response.status(), response.json::<Value>().await?))
        }
    };
    // Messages nested 40 deep (protoc stops at 32), a file importing itself, an import of a
    // file nobody registered.
    let deep = format!("syntax = \"proto3\";\n{}{}", "message M { ".repeat(40), "}".repeat(40));
    let cyclic = "syntax = \"proto3\";\nimport \"schema.proto\";\nmessage A { int32 a = 1; }".to_owned();
    let missing = "syntax = \"proto3\";\nimport \"nowhere/else.proto\";\nmessage A { else.B b = 1; }".to_owned();
    for (schema, says) in [(deep, "nested"), (cyclic, "schema.proto"), (missing, "nowhere/else.proto")] {
        let (status, body) = register(schema).await?;
        assert_eq!((status, &body["error_code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(42201)), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(says)), "{says}: {body}");
    }
    // A message that holds itself registers, checks against itself and takes events.
    let tree = "syntax = \"proto3\";\nmessage Node { string name = 1; repeated Node children = 2; }\n".to_owned();
    assert_eq!(register(tree.clone()).await?.0, StatusCode::OK);
    let grown = tree.replace("children = 2;", "children = 2; int64 size = 3;");
    let checked = env
        .http
        .post(format!("{}/compatibility/subjects/{subject}/versions/latest", env.registry_url))
        .json(&json!({"schema": grown, "schemaType": "PROTOBUF"}))
        .send()
        .await?;
    assert_eq!(checked.json::<Value>().await?["is_compatible"], json!(true));
    let mut deep = json!({"name": "leaf"});
    for _ in 0..60 {
        deep = json!({"name": "n", "children": [deep]});
    }
    assert_eq!(env.post(&topic, &deep).await?.status, StatusCode::OK);
    assert_eq!(env.post(&topic, &json!({"name": 1})).await?.status, StatusCode::UNPROCESSABLE_ENTITY);
    healthy.check(&env, "hostile .proto files").await?;
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_referencing_json_schema_is_registered_and_checked_in_bounded_time() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let healthy = Healthy::create().await?;
    let topic = unique_name("tree");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let routes = format!("{}{}", route(&topic, "json-schema", None), healthy.route());
    let env = Env::start(RegistryKind::Embedded, &routes).await?;
    let subject = format!("{topic}-value");
    let tree = json!({"type": "object", "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}}});
    env.register(&subject, "JSON", &tree.to_string()).await?;
    let mut v2 = tree.clone();
    v2["properties"]["size"] = json!({"type": "integer"});
    // A chain of references as long as the schema: comparing it must stop at its bounds.
    let mut defs = serde_json::Map::new();
    for i in 0..600 {
        defs.insert(
            format!("d{i}"),
            json!({"type": "object", "properties": {"n": {"$ref": format!("#/$defs/d{}", i + 1)}}}),
        );
    }
    defs.insert("d600".into(), json!({"type": "string"}));
    let chain = json!({"$defs": defs, "$ref": "#/$defs/d0"});
    for candidate in [&v2, &chain, &json!({"$ref": "#"})] {
        let checked = env
            .http
            .post(format!("{}/compatibility/subjects/{subject}/versions/latest", env.registry_url))
            .json(&json!({"schema": candidate.to_string(), "schemaType": "JSON"}))
            .send()
            .await?;
        assert_eq!(checked.status(), StatusCode::OK);
        let verdict: Value = checked.json().await?;
        assert!(verdict["is_compatible"].is_boolean(), "{verdict}");
    }
    // Events nested as deep as JSON allows (two levels a child) are validated.
    let mut deep = json!({"name": "leaf"});
    for _ in 0..60 {
        deep = json!({"name": "n", "children": [deep]});
    }
    assert_eq!(env.post(&topic, &deep).await?.status, StatusCode::OK);
    assert_eq!(env.post(&topic, &json!({"name": 1})).await?.status, StatusCode::UNPROCESSABLE_ENTITY);
    healthy.check(&env, "a self-referencing JSON Schema").await?;
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_megabyte_registry_body_is_refused_before_it_is_read() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let healthy = Healthy::create().await?;
    let env = Env::start(RegistryKind::Embedded, &healthy.route()).await?;
    // Chunked, without a length: the gateway cannot refuse it by a header alone.
    let stream = tokio::net::TcpStream::connect(env.gateway.addr()).await?;
    let (mut read, mut write) = stream.into_split();
    let sender = tokio::spawn(async move {
        let head = "POST /registry/subjects/huge-value/versions HTTP/1.1\r\nhost: sluice\r\n\
                    content-type: application/vnd.schemaregistry.v1+json\r\ntransfer-encoding: chunked\r\n\r\n";
        write.write_all(head.as_bytes()).await?;
        let chunk = format!("100000\r\n{}\r\n", " ".repeat(1 << 20));
        let mut sent = 0;
        for _ in 0..100 {
            // Once the gateway has answered and closed, writing fails: that is the point.
            if write.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 1;
        }
        Ok::<_, std::io::Error>(sent)
    });
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, read.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error_code":413"#), "{answer}");
    let sent = sender.await??;
    assert!(sent < 100, "the gateway read all {sent} MiB instead of refusing early");
    healthy.check(&env, "a 100 MB registry body").await?;
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_answering_200_with_an_endless_body_does_not_hold_deliveries() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use axum::routing::post;
    let healthy = Healthy::create().await?;
    let topic = unique_name("endless");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    Kafka::shared().create_topic(&format!("{topic}.dlq"), 1, &[]).await?;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/endless",
        post(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let chunk = axum::body::Bytes::from(vec![b'x'; 64 << 10]);
            let endless = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            async move { axum::body::Body::from_stream(endless) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/endless", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env =
        Env::start(RegistryKind::Embedded, &format!("{}{}", route(&topic, "json", None), healthy.route())).await?;
    let body = json!({
        "name": "endless", "topics": [topic], "url": url, "secrets": [SECRET], "start": "earliest",
        "dead_letter_topic": format!("{topic}.dlq"), "timeout_ms": 300_000,
    });
    let created = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    for i in 0..3 {
        assert_eq!(env.post(&topic, &json!({"n": i})).await?.status, StatusCode::OK);
    }
    // Each delivery counts as delivered although the answer never ends (its 300 s timeout would
    // otherwise hold each one for five minutes).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status: Value = env.http.get(format!("{}/v1/subscriptions/endless", env.base)).send().await?.json().await?;
        if status["delivered"] == 3 {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "not delivered: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3, "each event once");
    healthy.check(&env, "an endless subscriber answer").await?;
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_to_special_purpose_addresses_and_internal_topics_are_refused() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let healthy = Healthy::create().await?;
    let env = Env::start(RegistryKind::Embedded, &healthy.route()).await?;
    let subscribe = |url: String, topic: &str, dlq: &str| {
        let body = json!({"name": unique_name("s"), "topics": [topic], "url": url, "secrets": [SECRET], "dead_letter_topic": dlq});
        let request = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body);
        async move {
            let response = request.send().await?;
            Ok::<_, anyhow::Error>((response.status(), response.json::<Value>().await?))
        }
    };
    // One address in each range (the tests' gateways allow 127.0.0.0/8 for their receivers).
    for host in [
        "0.1.2.3",
        "10.0.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.0.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "[::]",
        "[::1]",
        "[::10.0.0.1]",
        "[::ffff:10.0.0.1]",
        "[64:ff9b::a00:1]",
        "[64:ff9b:1::1]",
        "[100::1]",
        "[2001::1]",
        "[2001:2::1]",
        "[2001:10::1]",
        "[2001:db8::1]",
        "[2002:a00:1::1]",
        "[3fff::1]",
        "[5f00::1]",
        "[fc00::1]",
        "[fe80::1]",
        "[fec0::1]",
        "[ff02::1]",
    ] {
        let (status, body) = subscribe(format!("http://{host}/hook"), &healthy.topic, "dlq").await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{host}: {body}");
        assert_eq!(body["type"], "urn:sluice:problem:url-not-allowed", "{host}: {body}");
    }
    // Sluice's own topics and Kafka's are no one's to read or to dead-letter into.
    let public = "http://93.184.215.14/hook".to_owned();
    for (topic, dlq, pointer) in [
        ("_sluice_subscriptions", "dlq", "/topics/0"),
        ("__consumer_offsets", "dlq", "/topics/0"),
        (healthy.topic.as_str(), "_sluice_schemas", "/dead_letter_topic"),
    ] {
        let (status, body) = subscribe(public.clone(), topic, dlq).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{topic}: {body}");
        let pointers: Vec<&str> =
            body["errors"].as_array().into_iter().flatten().filter_map(|e| e["pointer"].as_str()).collect();
        assert!(pointers.contains(&pointer), "{topic}: {body}");
    }
    healthy.check(&env, "refused subscriptions").await?;
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_stay_apart_subscriptions_belong_to_their_creator_and_reroutes_are_authorised() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let orders = unique_name("orders");
    let acme = format!("{orders}.acme");
    for topic in [&orders, &acme, &format!("{orders}.dlq")] {
        Kafka::shared().create_topic(topic, 1, &[]).await?;
    }
    let key = |name: &str, scopes: &[&str]| {
        let (secret, sha256) = sluice::auth::new_key().expect("randomness");
        (secret, format!("[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\nscopes = {scopes:?}\n"))
    };
    let (alice, alice_entry) =
        key("alice", &[&format!("produce:{orders}"), &format!("produce:{orders}.dlq"), "subscribe:*"]);
    let (bob, bob_entry) = key("bob", &["subscribe:*", "produce:*"]);
    let (admin, admin_entry) = key("ops", &["admin"]);
    let config = format!(
        "{alice_entry}{bob_entry}{admin_entry}[plugin_host]\ntopic = \"{store}\"\n\n\
         [[plugins]]\nname = \"tenant-router\"\npath = \"{router}\"\n\n\
         [[topics]]\nname = \"{orders}\"\nformat = \"json\"\nplugins = [\"tenant-router\"]\n\n{acme_route}",
        store = unique_name("_plugins"),
        router = plugin_wasm("tenant-router").display(),
        acme_route = route(&acme, "json", None),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;

    // A plugin may reroute only where the caller may produce.
    let produce = |credential: &str, event: Value| {
        let request = env.http.post(format!("{}/v1/topics/{orders}/events", env.base)).bearer_auth(credential);
        async move {
            let response = request.json(&event).send().await?;
            Ok::<_, anyhow::Error>((response.status(), response.json::<Value>().await?))
        }
    };
    let (status, body) = produce(&alice, json!({"order_id": "o-1", "tenant": "acme"})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errors"][0]["type"], "forbidden-reroute-target", "{body}");
    assert_eq!(support::record_count(&env.bootstrap, &acme).await?, 0, "nothing reached the tenant's topic");
    let (status, body) = produce(&alice, json!({"order_id": "o-2"})).await?;
    assert_eq!(status, StatusCode::OK, "events that stay on the route go on: {body}");
    let (status, body) = produce(&bob, json!({"order_id": "o-3", "tenant": "acme"})).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["topic"], acme.as_str(), "{body}");

    // A subscription belongs to the key that made it.
    let receiver = Receiver::start().await?;
    let body = json!({"name": "alices", "topics": [orders], "url": receiver.url("a"), "secrets": [SECRET],
                      "dead_letter_topic": format!("{orders}.dlq")});
    let created =
        env.http.post(format!("{}/v1/subscriptions", env.base)).bearer_auth(&alice).json(&body).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.json::<Value>().await?["owner"], "alice");
    for (method, path) in [
        (Method::GET, "/v1/subscriptions/alices"),
        (Method::POST, "/v1/subscriptions/alices/pause"),
        (Method::POST, "/v1/subscriptions/alices/redrive"),
        (Method::DELETE, "/v1/subscriptions/alices"),
    ] {
        let response = env.http.request(method.clone(), format!("{}{path}", env.base)).bearer_auth(&bob).send().await?;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "bob: {method} {path}");
    }
    let listed: Value =
        env.http.get(format!("{}/v1/subscriptions", env.base)).bearer_auth(&bob).send().await?.json().await?;
    assert_eq!(listed["subscriptions"], json!([]), "bob sees none of alice's");
    let seen = env.http.get(format!("{}/v1/subscriptions/alices", env.base)).bearer_auth(&admin).send().await?;
    assert_eq!(seen.status(), StatusCode::OK, "an admin sees every subscription");
    let deleted = env.http.delete(format!("{}/v1/subscriptions/alices", env.base)).bearer_auth(&alice).send().await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    env.gateway.stop().await?;
    Ok(())
}
