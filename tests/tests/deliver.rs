//! Webhook delivery against a real broker and a real HTTP receiver: once-only delivery in the
//! normal case with signatures checked by the Standard Webhooks reference library, retries with
//! a stable id, dead letters, per-key order, 410, private addresses, API subscriptions across a
//! restart, replay and redrive.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::Message as _;
use rdkafka::message::Headers as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::receiver::{Behaviour, Received, Receiver};
use sluice_tests::{Kafka, consume_all, python, unique_name};
use support::{Env, ORDER_PLACED, RegistryKind, order, route};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(60);

struct Setup {
    env: Env,
    topic: String,
    dlq: String,
    receiver: Receiver,
}

async fn setup(partitions: i32) -> anyhow::Result<Setup> {
    setup_with(partitions, "").await
}

/// [`setup`] with more `[delivery]` settings.
async fn setup_with(partitions: i32, delivery: &str) -> anyhow::Result<Setup> {
    let topic = unique_name("deliver");
    let dlq = format!("{topic}-dlq");
    Kafka::shared().create_topic(&topic, partitions, &[]).await?;
    Kafka::shared().create_topic(&dlq, 1, &[]).await?;
    let (subscriptions, registry) = (unique_name("_subscriptions"), unique_name("_schemas"));
    let env = gateway(&topic, &subscriptions, &registry, delivery).await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    Ok(Setup { env, topic, dlq, receiver: Receiver::start().await? })
}

/// A gateway routing `topic`, with its subscriptions and schemas in the given topics.
async fn gateway(topic: &str, subscriptions: &str, registry: &str, delivery: &str) -> anyhow::Result<Env> {
    let text = format!(
        "[delivery]\ntopic = \"{subscriptions}\"\nallow_networks = [\"127.0.0.0/8\"]\n{delivery}\n{}",
        route(topic, "avro", Some("/order_id"))
    );
    Env::start_on(RegistryKind::Embedded, &Kafka::shared().bootstrap_servers(), &text, "", Some(registry)).await
}

impl Setup {
    async fn subscribe(&self, name: &str, path: &str, extra: Value) -> anyhow::Result<(StatusCode, Value)> {
        let mut body = json!({
            "name": name, "topics": [self.topic], "url": self.receiver.url(path), "secrets": [SECRET],
            "start": "earliest", "dead_letter_topic": self.dlq,
            "retry": {"max_attempts": 4, "initial_backoff_ms": 100, "max_backoff_ms": 400},
        });
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        let response = self.env.http.post(format!("{}/v1/subscriptions", self.env.base)).json(&body).send().await?;
        Ok((response.status(), response.json().await?))
    }

    async fn status(&self, name: &str) -> anyhow::Result<Value> {
        Ok(self.env.http.get(format!("{}/v1/subscriptions/{name}", self.env.base)).send().await?.json().await?)
    }

    /// Produces events; returns the `event_id` of each.
    async fn produce(&self, events: &[Value]) -> anyhow::Result<Vec<String>> {
        let reply = self.env.post(&self.topic, &Value::Array(events.to_vec())).await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "produce: {} {}", reply.status, reply.body);
        let results = reply.body["results"].as_array().cloned().unwrap_or_default();
        results.iter().map(|r| r["event_id"].as_str().map(str::to_owned).context("no event_id")).collect()
    }

    /// Waits until the group has committed everything (lag 0 on every partition).
    async fn drained(&self, name: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = self.status(name).await?;
            let lag: i64 = status["lag"]
                .as_object()
                .map(|topics| {
                    topics
                        .values()
                        .filter_map(Value::as_object)
                        .flat_map(|p| p.values())
                        .filter_map(Value::as_i64)
                        .sum()
                })
                .unwrap_or(i64::MAX);
            if lag == 0 {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "lag stayed at {lag}: {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn ids(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.header("webhook-id").to_owned()).collect()
}

async fn verify_signatures(received: &[Received]) -> anyhow::Result<usize> {
    let requests: Vec<Value> =
        received.iter().map(|r| json!({"headers": r.headers, "body": String::from_utf8_lossy(&r.body)})).collect();
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&requests)?)?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/verify_webhooks.py");
    let mut command = std::process::Command::new(python().await?);
    command.args([script, SECRET]).arg(file.path());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "standardwebhooks refused a signature: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_arrives_once_signed_decoded_and_verifiable() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let s = setup(3).await?;
    let events: Vec<Value> = (0..30).map(|i| order(&format!("o-{i}"))).collect();
    let mut event_ids = s.produce(&events[..10]).await?;
    let (status, body) = s.subscribe("once", "once", json!({})).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("secrets").is_none(), "secrets never come back: {body}");
    event_ids.extend(s.produce(&events[10..]).await?);

    s.receiver.wait_until("once", WAIT, |r| r.len() >= 30).await;
    s.drained("once").await?;
    let received = s.receiver.received("once");
    assert_eq!(received.len(), 30, "each event once");
    let unique: HashSet<String> = ids(&received).into_iter().collect();
    assert_eq!(unique.len(), 30, "one webhook-id per event");
    let by_key: HashMap<String, &Received> = received.iter().map(|r| (r.header("sluice-key").to_owned(), r)).collect();
    for (event, event_id) in events.iter().zip(&event_ids) {
        let delivery = by_key[event["order_id"].as_str().unwrap()];
        assert_eq!(delivery.json(), *event, "the Avro record decoded back to the JSON sent");
        assert_eq!(delivery.header("event-id"), event_id, "the producer's event id is passed on");
        assert_eq!(delivery.header("sluice-topic"), s.topic);
        assert!(delivery.header("sluice-offset").parse::<i64>().is_ok());
        assert_eq!(delivery.header("content-type"), "application/json");
    }
    assert_eq!(verify_signatures(&received).await?, 30, "the reference implementation verifies every signature");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloudevents_subscription_gets_each_record_as_a_binary_mode_cloudevent() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let s = setup(1).await?;
    let (status, body) = s.subscribe("ce", "ce", json!({"format": "cloudevents"})).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["format"], "cloudevents", "{body}");
    // One event sent as a CloudEvent, one as plain JSON.
    let sent = s
        .env
        .http
        .post(format!("{}/v1/topics/{}/events", s.env.base, s.topic))
        .header("content-type", "application/cloudevents+json")
        .body(
            json!({"specversion": "1.0", "id": "ce-1", "source": "/shop", "type": "order.placed",
                   "time": "2026-12-02T10:00:00Z", "data": order("o-1")})
            .to_string(),
        )
        .send()
        .await?;
    assert_eq!(sent.status(), StatusCode::OK);
    let plain_id = s.produce(&[order("o-2")]).await?.remove(0);

    let received = s.receiver.wait_until("ce", WAIT, |r| r.len() >= 2).await;
    let by_key: HashMap<&str, &Received> = received.iter().map(|r| (r.header("sluice-key"), r)).collect();
    let produced_as_cloudevent = by_key["o-1"];
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "ce-1"),
        ("ce-source", "/shop"),
        ("ce-type", "order.placed"),
        ("ce-time", "2026-12-02T10:00:00Z"),
    ] {
        assert_eq!(produced_as_cloudevent.header(name), value, "{name}: the attributes it was produced with");
    }
    assert_eq!(produced_as_cloudevent.json(), order("o-1"), "the data is the body");
    let produced_plain = by_key["o-2"];
    assert_eq!(produced_plain.header("ce-id"), plain_id, "a plain record's event-id is its id");
    assert_eq!(produced_plain.header("ce-source"), format!("/topics/{}", s.topic));
    assert_eq!(produced_plain.header("ce-type"), s.topic);
    assert!(produced_plain.header("ce-time").ends_with('Z'), "the record's timestamp, RFC 3339");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_gets_the_same_message_again_after_backoff() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let s = setup(1).await?;
    s.receiver.set("flaky", Behaviour::FailFirst { times: 2, status: 503, retry_after: None });
    s.receiver.set("limited", Behaviour::FailFirst { times: 1, status: 429, retry_after: Some(1) });
    s.subscribe("flaky", "flaky", json!({})).await?;
    s.subscribe("limited", "limited", json!({})).await?;
    s.produce(&[order("a"), order("b")]).await?;

    let received = s.receiver.wait_until("flaky", WAIT, |r| r.iter().filter(|r| r.status == 200).count() == 2).await;
    let mut attempts: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        attempts.entry(r.header("webhook-id").to_owned()).or_default().push(r);
    }
    assert_eq!(attempts.len(), 2, "two messages");
    for tries in attempts.values() {
        assert_eq!(tries.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 503, 200], "same id on every attempt");
        // Backoff: 100 ms then 200 ms (±20%), measured between answer and next arrival.
        let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1].at.duration_since(w[0].answered)).collect();
        assert!(gaps[0] >= Duration::from_millis(75) && gaps[1] >= Duration::from_millis(150), "{gaps:?}");
        assert!(gaps[1] > gaps[0], "backoff grows: {gaps:?}");
        assert_eq!(tries[0].json(), tries[2].json());
    }
    let limited = s.receiver.wait_until("limited", WAIT, |r| r.iter().filter(|r| r.status == 200).count() == 2).await;
    let first = &limited[0];
    let retry =
        limited.iter().find(|r| r.header("webhook-id") == first.header("webhook-id") && r.status == 200).unwrap();
    assert!(retry.at.duration_since(first.answered) >= Duration::from_millis(900), "Retry-After: 1 was honoured");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_always_failing_receiver_leaves_records_in_the_dead_letter_topic_and_delivery_continues()
-> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let s = setup(1).await?;
    s.receiver.set("down", Behaviour::Always(500));
    s.subscribe("down", "down", json!({"retry": {"max_attempts": 3, "initial_backoff_ms": 50, "max_backoff_ms": 100}}))
        .await?;
    s.produce(&[order("d-1"), order("d-2")]).await?;

    let dead = consume_all(&s.env.bootstrap, &s.dlq, 2, WAIT).await?;
    assert_eq!(dead.len(), 2);
    for record in &dead {
        let headers: HashMap<String, String> = record
            .headers()
            .unwrap()
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
            .collect();
        assert_eq!(headers["dlq-status"], "500");
        assert_eq!(headers["dlq-attempts"], "3");
        assert_eq!(headers["dlq-subscription"], "down");
        assert_eq!(headers["dlq-original-topic"], s.topic);
        assert!(headers["dlq-reason"].contains("gave up after 3 attempts"));
        assert!(headers.contains_key("dlq-original-offset") && headers.contains_key("dlq-original-partition"));
        assert!(headers["dlq-timestamp"].parse::<i64>().is_ok(), "epoch milliseconds");
        assert_eq!(record.payload().unwrap()[0], 0, "the original record, still Confluent-framed");
    }
    assert_eq!(s.receiver.received("down").len(), 6, "three attempts each");

    // The subscription moved on: new events are delivered once the receiver is back.
    s.receiver.set("down", Behaviour::Ok);
    s.produce(&[order("d-3")]).await?;
    let received = s.receiver.wait_until("down", WAIT, |r| r.iter().any(|r| r.status == 200)).await;
    assert_eq!(received.iter().filter(|r| r.status == 200).count(), 1);
    s.drained("down").await?;
    let status = s.status("down").await?;
    assert_eq!((status["state"].as_str(), status["dead_lettered"].as_u64()), (Some("active"), Some(2)), "{status}");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_records_are_dead_lettered_with_the_reason_and_schemaless_json_passes_through() -> anyhow::Result<()>
{
    let _deadline = sluice_tests::deadline();
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let s = setup(1).await?;
    s.subscribe("mixed", "mixed", json!({})).await?;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &s.env.bootstrap).create()?;
    // Neither framed nor JSON; framed with a schema id no registry has; plain JSON.
    let unknown_id: &[u8] = &[0, 0x7f, 0xff, 0xff, 0x01, 0x02];
    for (key, payload) in
        [("garbage", &b"\x01\x02 not json"[..]), ("unknown-id", unknown_id), ("plain", br#"{"hello":"world"}"#)]
    {
        producer
            .send(FutureRecord::to(&s.topic).key(key).payload(payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    s.produce(&[order("m-1")]).await?;

    let dead = consume_all(&s.env.bootstrap, &s.dlq, 2, WAIT).await?;
    let reasons: HashMap<String, String> = dead
        .iter()
        .map(|record| {
            let reason = record
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "dlq-reason"))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            (String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned(), reason)
        })
        .collect();
    assert!(reasons["garbage"].contains("neither Confluent-framed nor JSON"), "{reasons:?}");
    assert!(reasons["unknown-id"].contains("schema id 2147483393 not found"), "{reasons:?}");
    // The subscription was not blocked: what can be delivered was.
    let received = s.receiver.wait_until("mixed", WAIT, |r| r.len() >= 2).await;
    // Different keys: either may arrive first.
    let mut bodies: Vec<String> = received.iter().map(|r| r.json().to_string()).collect();
    bodies.sort();
    let mut wanted = vec![order("m-1").to_string(), json!({"hello": "world"}).to_string()];
    wanted.sort();
    assert_eq!(bodies, wanted);
    s.drained("mixed").await?;
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_plugins_modify_skip_and_dead_letter_and_the_failure_hook_decides_retries() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let plugins: String = ["filter", "rules", "redact"]
        .iter()
        .map(|name| {
            format!("[[plugins]]\nname = \"{name}\"\npath = \"{}\"\n", sluice_tests::plugin_wasm(name).display())
        })
        .collect();
    let s = setup_with(1, &format!("[plugin_host]\ntopic = \"{}\"\n{plugins}", unique_name("_plugins"))).await?;
    let down_dlq = format!("{}-down-dlq", s.topic);
    Kafka::shared().create_topic(&down_dlq, 1, &[]).await?;
    s.receiver.set("plugged", Behaviour::FailFirst { times: 2, status: 503, retry_after: None });
    s.receiver.set("plugged-down", Behaviour::Always(500));
    // The subscription's own backoff is 10 ms: slower retries can only come from the hook.
    let chain = json!({
        "plugins": ["filter", "rules", "redact"],
        "retry": {"max_attempts": 10, "initial_backoff_ms": 10, "max_backoff_ms": 10},
    });
    let (status, body) = s.subscribe("plugged", "plugged", chain.clone()).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut down = chain;
    down["dead_letter_topic"] = json!(down_dlq);
    let (status, body) = s.subscribe("plugged-down", "plugged-down", down).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Schemaless JSON, so the events can carry fields the plugins look at.
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &s.env.bootstrap).create()?;
    let events = [
        ("p-1", json!({"order_id": "p-1", "test": true})),
        ("p-2", json!({"order_id": "p-2", "total_cents": -5})),
        ("p-3", json!({"order_id": "p-3", "email": "alice@example.com"})),
        ("p-4", json!({"order_id": "p-4", "total_cents": 5})),
    ];
    for (key, value) in &events {
        let payload = value.to_string();
        producer
            .send(FutureRecord::to(&s.topic).key(*key).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }

    let received = s.receiver.wait_until("plugged", WAIT, |r| r.iter().filter(|r| r.status == 200).count() >= 2).await;
    s.drained("plugged").await?;
    let delivered: BTreeMap<&str, Value> =
        received.iter().filter(|r| r.status == 200).map(|r| (r.header("sluice-key"), r.json())).collect();
    assert_eq!(delivered.keys().copied().collect::<Vec<_>>(), ["p-3", "p-4"], "p-1 skipped, p-2 dead-lettered");
    assert_eq!(delivered["p-3"]["email"], "a***@example.com", "modified by redact");
    for key in ["p-3", "p-4"] {
        let tries: Vec<&Received> = received.iter().filter(|r| r.header("sluice-key") == key).collect();
        assert_eq!(tries.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 503, 200]);
        // The hook answered retry-after(200 × attempt).
        let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1].at.duration_since(w[0].answered)).collect();
        assert!(gaps[0] >= Duration::from_millis(190) && gaps[1] >= Duration::from_millis(390), "{gaps:?}");
    }
    let status = s.status("plugged").await?;
    assert_eq!((status["skipped"].as_u64(), status["dead_lettered"].as_u64()), (Some(1), Some(1)), "{status}");

    let reason = |record: &rdkafka::message::OwnedMessage, name: &str| {
        record
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let dead = consume_all(&s.env.bootstrap, &s.dlq, 1, WAIT).await?;
    assert_eq!(dead[0].key(), Some(&b"p-2"[..]));
    assert!(reason(&dead[0], "dlq-reason").contains("negative total_cents"));
    // Always failing: the hook dead-letters at the third attempt, not the policy's tenth.
    let dead = consume_all(&s.env.bootstrap, &down_dlq, 3, WAIT).await?;
    let by_key: BTreeMap<String, (String, String)> = dead
        .iter()
        .map(|r| {
            let key = String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned();
            (key, (reason(r, "dlq-reason"), reason(r, "dlq-attempts")))
        })
        .collect();
    assert_eq!(by_key.keys().map(String::as_str).collect::<Vec<_>>(), ["p-2", "p-3", "p-4"]);
    for key in ["p-3", "p-4"] {
        let (why, attempts) = &by_key[key];
        assert!(why.contains("subscriber kept failing") && attempts == "3", "{key}: {why} after {attempts}");
    }
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn per_key_order_holds_while_other_keys_overtake_a_slow_one_and_partition_order_is_strict() -> anyhow::Result<()>
{
    let _deadline = sluice_tests::deadline();
    let s = setup(1).await?;
    s.receiver.set("ordered", Behaviour::SlowKey { key: "slow".into(), delay: Duration::from_millis(300) });
    s.subscribe("ordered", "ordered", json!({"concurrency": 8})).await?;
    // All on one partition: only the key decides the order.
    let mut events = Vec::new();
    for i in 0..5 {
        let mut slow = order("slow");
        slow["total_cents"] = json!(i);
        events.push(slow);
        for j in 0..4 {
            let mut fast = order(&format!("fast-{j}"));
            fast["total_cents"] = json!(i);
            events.push(fast);
        }
    }
    s.produce(&events).await?;
    let received = s.receiver.wait_until("ordered", WAIT, |r| r.len() >= events.len()).await;
    assert_eq!(received.len(), events.len());
    let mut sequences: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in &received {
        sequences.entry(r.header("sluice-key").to_owned()).or_default().push(r.json()["total_cents"].as_i64().unwrap());
    }
    for (key, sequence) in &sequences {
        assert_eq!(sequence, &[0, 1, 2, 3, 4], "{key} in order");
    }
    let last_fast = received.iter().filter(|r| r.header("sluice-key") != "slow").map(|r| r.at).max().unwrap();
    let slow_answers: Vec<_> =
        received.iter().filter(|r| r.header("sluice-key") == "slow").map(|r| r.answered).collect();
    assert!(last_fast < slow_answers[2], "the fast keys were done before the slow key's third event");

    // In strict partition order the same events arrive one at a time, in offset order.
    s.subscribe("strict", "strict", json!({"concurrency": 8, "ordering": "partition"})).await?;
    s.receiver.set("strict", Behaviour::SlowKey { key: "slow".into(), delay: Duration::from_millis(50) });
    let received = s.receiver.wait_until("strict", WAIT, |r| r.len() >= events.len()).await;
    let offsets: Vec<i64> = received.iter().map(|r| r.header("sluice-offset").parse().unwrap()).collect();
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    assert_eq!(offsets, sorted, "offset order");
    assert!(received.windows(2).all(|w| w[1].at >= w[0].answered), "one at a time");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_falls_behind_pauses_fetching_within_the_buffer_and_then_gets_everything()
-> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let s = setup_with(2, "max_buffered_records = 40").await?;
    s.receiver.set("behind", Behaviour::Always(503));
    let events: Vec<Value> = (0..300).map(|i| order(&format!("b-{i}"))).collect();
    s.produce(&events).await?;
    let retry = json!({"max_attempts": 10_000, "initial_backoff_ms": 50, "max_backoff_ms": 200});
    let (status, body) = s.subscribe("behind", "behind", json!({ "retry": retry })).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Nothing gets through: the buffer fills, stays full, and fetching pauses.
    let deadline = tokio::time::Instant::now() + WAIT;
    let paused = loop {
        let status = s.status("behind").await?;
        if status["fetch_paused"] == true {
            break status;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "fetching never paused: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let buffered = paused["buffered"].as_u64().unwrap_or(u64::MAX);
    assert!(buffered <= 40, "the buffer holds at most max_buffered_records: {paused}");

    // The subscriber recovers: every event arrives, fetching resumes, nothing is dead-lettered.
    s.receiver.set("behind", Behaviour::Ok);
    let received =
        s.receiver.wait_until("behind", WAIT, |r| r.iter().filter(|r| r.status == 200).count() >= events.len()).await;
    let delivered: HashSet<&str> =
        received.iter().filter(|r| r.status == 200).map(|r| r.header("sluice-key")).collect();
    let missing: Vec<&Value> = events.iter().filter(|e| !delivered.contains(e["order_id"].as_str().unwrap())).collect();
    assert!(missing.is_empty(), "{} events never delivered, e.g. {:?}", missing.len(), missing.first());
    s.drained("behind").await?;
    let status = s.status("behind").await?;
    assert_eq!((&status["fetch_paused"], &status["dead_lettered"]), (&json!(false), &json!(0)), "{status}");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_subscription_starting_at_a_time_gets_only_later_events() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("from-time");
    let dlq = format!("{topic}-dlq");
    Kafka::shared().create_topic(&topic, 2, &[]).await?;
    Kafka::shared().create_topic(&dlq, 1, &[]).await?;
    let (subscriptions, registry) = (unique_name("_subscriptions"), unique_name("_schemas"));
    let producer = gateway(&topic, &subscriptions, &registry, "").await?;
    producer.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    let before: Vec<Value> = (0..5).map(|i| order(&format!("before-{i}"))).collect();
    let reply = producer.post(&topic, &Value::Array(before)).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // A start time after every record so far: the next millisecond, waited for on the clock.
    let now_ms = || time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let start = now_ms() + 1;
    while now_ms() < start {
        std::hint::spin_loop();
    }
    let after: Vec<Value> = (0..5).map(|i| order(&format!("after-{i}"))).collect();
    let reply = producer.post(&topic, &Value::Array(after.clone())).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    producer.gateway.stop().await?;

    let receiver = Receiver::start().await?;
    let start_text = time::OffsetDateTime::from_unix_timestamp_nanos(start * 1_000_000)?
        .format(&time::format_description::well_known::Rfc3339)?;
    let declared = format!(
        "[[subscriptions]]\nname = \"from-time\"\ntopics = [\"{topic}\"]\nurl = \"{}\"\nsecrets = [\"{SECRET}\"]\n\
         start = \"{start_text}\"\ndead_letter_topic = \"{dlq}\"\n",
        receiver.url("from-time")
    );
    let env = gateway(&topic, &subscriptions, &registry, &declared).await?;
    let s = Setup { env, topic, dlq, receiver };
    s.receiver.wait_until("from-time", WAIT, |r| r.len() >= after.len()).await;
    s.drained("from-time").await?;
    let mut got: Vec<String> =
        s.receiver.received("from-time").iter().map(|r| r.header("sluice-key").to_owned()).collect();
    got.sort();
    let mut wanted: Vec<String> = after.iter().map(|e| e["order_id"].as_str().unwrap().to_owned()).collect();
    wanted.sort();
    assert_eq!(got, wanted, "exactly the events produced after the start time");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_410_disables_the_subscription_until_it_is_resumed() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let s = setup(1).await?;
    s.receiver.set("gone", Behaviour::Gone);
    s.subscribe("gone", "gone", json!({})).await?;
    s.produce(&[order("g-1")]).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        let status = s.status("gone").await?;
        if status["state"] == "disabled" {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "never disabled: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status["reason"].as_str().unwrap().contains("410"), "{status}");
    assert_eq!(s.receiver.received("gone").len(), 1, "no retries after 410");

    s.receiver.set("gone", Behaviour::Ok);
    let resumed = s.env.http.post(format!("{}/v1/subscriptions/gone/resume", s.env.base)).send().await?;
    assert_eq!(resumed.status(), StatusCode::OK);
    let received = s.receiver.wait_until("gone", WAIT, |r| r.iter().any(|r| r.status == 200)).await;
    assert_eq!(received.last().unwrap().json(), order("g-1"), "the record 410 left is delivered after resuming");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn private_addresses_are_refused_unless_allow_listed() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("private");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    // This gateway has no allow-list.
    let delivery = format!("[delivery]\ntopic = \"{}\"\n", unique_name("_subscriptions"));
    let env = Env::start(RegistryKind::Embedded, &format!("{delivery}{}", route(&topic, "json", None))).await?;
    for url in
        ["http://127.0.0.1:9/hook", "http://10.0.0.8/hook", "http://169.254.169.254/latest", "http://localhost:9/x"]
    {
        let body = json!({"name": unique_name("p"), "topics": [topic], "url": url, "secrets": [SECRET], "dead_letter_topic": "dlq"});
        let response = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let problem: Value = response.json().await?;
        assert_eq!(problem["type"], "urn:sluice:problem:url-not-allowed", "{url}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/url");
    }
    // Invalid specs name each field.
    let response = env
        .http
        .post(format!("{}/v1/subscriptions", env.base))
        .json(&json!({"name": "x", "topics": [], "url": "ftp://x", "secrets": ["plain"], "dead_letter_topic": "d"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await?;
    let pointers: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert_eq!(pointers, ["/topics", "/url", "/secrets/0"]);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_subscriptions_survive_restarts_replay_exact_ranges_and_redrive_dead_letters() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("durable");
    let dlq = format!("{topic}-dlq");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    Kafka::shared().create_topic(&dlq, 1, &[]).await?;
    let (subscriptions, registry) = (unique_name("_subscriptions"), unique_name("_schemas"));
    let env = gateway(&topic, &subscriptions, &registry, "").await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    let s = Setup { env, topic, dlq, receiver: Receiver::start().await? };
    s.subscribe(
        "durable",
        "durable",
        json!({"retry": {"max_attempts": 2, "initial_backoff_ms": 50, "max_backoff_ms": 50}}),
    )
    .await?;
    let events: Vec<Value> = (0..6).map(|i| order(&format!("r-{i}"))).collect();
    s.produce(&events).await?;
    s.receiver.wait_until("durable", WAIT, |r| r.len() >= 6).await;
    s.drained("durable").await?;

    // A restarted gateway serves the API-created subscription.
    let Setup { env, topic, dlq, receiver } = s;
    env.gateway.stop().await?;
    let env = gateway(&topic, &subscriptions, &registry, "").await?;
    let listed: Value = env.http.get(format!("{}/v1/subscriptions", env.base)).send().await?.json().await?;
    assert_eq!(listed["subscriptions"][0]["name"], "durable", "{listed}");
    let s = Setup { env, topic, dlq, receiver };
    s.produce(&[order("r-6")]).await?;
    let received = s.receiver.wait_until("durable", WAIT, |r| r.len() >= 7).await;
    assert_eq!(received.last().unwrap().json(), order("r-6"), "delivered after the restart");
    s.drained("durable").await?;
    assert_eq!(s.receiver.received("durable").len(), 7, "nothing delivered twice across the restart");

    // Replay offsets 2..=6: exactly that range again, as new messages.
    let before = s.receiver.received("durable").len();
    let replay = s
        .env
        .http
        .post(format!("{}/v1/subscriptions/durable/replay", s.env.base))
        .json(&json!({"offsets": {s.topic.clone(): {"0": 2}}}))
        .send()
        .await?;
    assert_eq!(replay.status(), StatusCode::ACCEPTED, "{}", replay.text().await?);
    let received = s.receiver.wait_until("durable", WAIT, |r| r.len() >= before + 5).await;
    s.drained("durable").await?;
    let received_all = s.receiver.received("durable");
    assert_eq!(received_all.len(), before + 5, "exactly offsets 2..=6: {}", received.len());
    // Different keys go concurrently: compare the set of offsets, not their arrival order.
    let mut replayed: Vec<i64> =
        received_all[before..].iter().map(|r| r.header("sluice-offset").parse().unwrap()).collect();
    replayed.sort_unstable();
    assert_eq!(replayed, [2, 3, 4, 5, 6]);
    let original_ids: HashSet<String> = ids(&received_all[..before]).into_iter().collect();
    assert!(ids(&received_all[before..]).iter().all(|id| !original_ids.contains(id)), "a replay sends new message ids");

    // Dead letters, then a redrive delivers them.
    s.receiver.set("durable", Behaviour::Always(500));
    s.produce(&[order("x-1"), order("x-2")]).await?;
    assert_eq!(consume_all(&s.env.bootstrap, &s.dlq, 2, WAIT).await?.len(), 2);
    s.drained("durable").await?;
    s.receiver.set("durable", Behaviour::Ok);
    let redrive = s.env.http.post(format!("{}/v1/subscriptions/durable/redrive", s.env.base)).send().await?;
    assert_eq!(redrive.status(), StatusCode::ACCEPTED);
    assert_eq!(redrive.json::<Value>().await?["records"], 2);
    let received = s
        .receiver
        .wait_until("durable", WAIT, |r| {
            r.iter().filter(|r| r.status == 200 && r.header("sluice-key").starts_with("x-")).count() == 2
        })
        .await;
    let mut redriven: Vec<Value> = received
        .iter()
        .filter(|r| r.status == 200 && r.header("sluice-key").starts_with("x-"))
        .map(Received::json)
        .collect();
    redriven.sort_by_key(|v| v["order_id"].as_str().map(str::to_owned));
    assert_eq!(redriven, [order("x-1"), order("x-2")]);
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_subscription_secrets_are_encrypted_in_the_store_and_still_sign() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let topic = unique_name("sealed");
    let dlq = format!("{topic}-dlq");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    Kafka::shared().create_topic(&dlq, 1, &[]).await?;
    let (subscriptions, registry) = (unique_name("_subscriptions"), unique_name("_schemas"));
    let keys = format!("secrets_keys = [\"{key}\"]");
    let env = gateway(&topic, &subscriptions, &registry, &keys).await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    let s = Setup { env, topic, dlq, receiver: Receiver::start().await? };
    let (status, body) = s.subscribe("sealed", "sealed", json!({})).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.produce(&[order("k-1")]).await?;
    let received = s.receiver.wait_until("sealed", WAIT, |r| !r.is_empty()).await;
    assert_eq!(verify_signatures(&received).await?, 1, "signed with the secret as given");

    // The store holds the secret sealed: not the secret, not its key bytes.
    let records = consume_all(&s.env.bootstrap, &subscriptions, 2, WAIT).await?;
    let stored: Vec<String> = records
        .iter()
        .filter_map(|r| {
            use rdkafka::Message as _;
            r.payload().map(|p| String::from_utf8_lossy(p).into_owned())
        })
        .filter(|text| text.contains("\"secrets\""))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let secret_key = SECRET.trim_start_matches("whsec_");
    assert!(!stored[0].contains(secret_key) && stored[0].contains("sealed:v1:"), "{}", stored[0]);

    // A replica without the key does not deliver with secrets it cannot read.
    let Setup { env, topic, dlq, receiver } = s;
    env.gateway.stop().await?;
    let env = gateway(&topic, &subscriptions, &registry, "").await?;
    let listed: Value = env.http.get(format!("{}/v1/subscriptions", env.base)).send().await?.json().await?;
    assert_eq!(listed["subscriptions"], json!([]), "{listed}");
    env.gateway.stop().await?;
    // With the key back, it is served again.
    let env = gateway(&topic, &subscriptions, &registry, &keys).await?;
    let s = Setup { env, topic, dlq, receiver };
    s.produce(&[order("k-2")]).await?;
    let received = s.receiver.wait_until("sealed", WAIT, |r| r.len() >= 2).await;
    assert_eq!(verify_signatures(&received).await?, 2);
    Ok(())
}

/// The stored forms of the subscription records among the first `count` records of the
/// subscriptions topic, in order.
async fn stored_subscriptions(bootstrap: &str, topic: &str, count: usize) -> anyhow::Result<Vec<String>> {
    use rdkafka::Message as _;
    let records = consume_all(bootstrap, topic, count, WAIT).await?;
    Ok(records
        .iter()
        .filter_map(|r| r.payload().map(|p| String::from_utf8_lossy(p).into_owned()))
        .filter(|text| text.contains("\"secrets\""))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_stored_plain_or_under_a_rotated_key_are_sealed_again_with_the_first_key() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use base64::Engine as _;
    let key = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let (old, new) = (key(1), key(2));
    let topic = unique_name("resealed");
    let dlq = format!("{topic}-dlq");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    Kafka::shared().create_topic(&dlq, 1, &[]).await?;
    let (subscriptions, registry) = (unique_name("_subscriptions"), unique_name("_schemas"));
    let bootstrap = Kafka::shared().bootstrap_servers();
    let secret_text = SECRET.trim_start_matches("whsec_");

    // Created while the gateway had no keys: stored as given.
    let env = gateway(&topic, &subscriptions, &registry, "").await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    let s = Setup { env, topic, dlq, receiver: Receiver::start().await? };
    let (status, body) = s.subscribe("resealed", "resealed", json!({})).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stored = stored_subscriptions(&bootstrap, &subscriptions, 2).await?;
    assert!(stored[0].contains(secret_text), "stored as given without keys: {}", stored[0]);
    let Setup { env, topic, dlq, receiver } = s;
    env.gateway.stop().await?;

    // A key is added: the next replica seals the stored secret with it.
    let env = gateway(&topic, &subscriptions, &registry, &format!("secrets_keys = [\"{old}\"]")).await?;
    let stored = stored_subscriptions(&bootstrap, &subscriptions, 3).await?;
    let last = stored.last().expect("a subscription record");
    assert!(!last.contains(secret_text) && last.contains("sealed:v1:"), "sealed after the key was added: {last}");
    env.gateway.stop().await?;

    // Rotation: a new key first, the old one kept to open; sealed again with the new one.
    let env = gateway(&topic, &subscriptions, &registry, &format!("secrets_keys = [\"{new}\", \"{old}\"]")).await?;
    let stored = stored_subscriptions(&bootstrap, &subscriptions, 4).await?;
    assert_eq!(stored.len(), 3, "one record per sealing: {stored:#?}");
    assert_ne!(stored[1], stored[2]);
    env.gateway.stop().await?;

    // So the old key can go: a replica with only the new one serves the subscription, signed.
    let env = gateway(&topic, &subscriptions, &registry, &format!("secrets_keys = [\"{new}\"]")).await?;
    let s = Setup { env, topic, dlq, receiver };
    s.produce(&[order("r-1")]).await?;
    let received = s.receiver.wait_until("resealed", WAIT, |r| !r.is_empty()).await;
    assert_eq!(verify_signatures(&received).await?, 1, "signed with the secret as first given");
    s.env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_waits_for_its_plugin_and_an_undeclared_plugin_is_refused() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("held");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    Kafka::shared().create_topic(&format!("{topic}.dlq"), 1, &[]).await?;
    let token = "admin-token-0123456789";
    // `redact` is declared without a file: no version is loaded until one is uploaded.
    let config = format!(
        "[plugin_host]\ntopic = \"{store}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n\
         [[plugins]]\nname = \"redact\"\n\n{route}",
        store = unique_name("_plugins"),
        route = route(&topic, "json", Some("/id")),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let receiver = Receiver::start().await?;
    let subscribe = |name: &str, plugin: &str| {
        let body = json!({
            "name": name, "topics": [topic], "url": receiver.url(name), "secrets": [SECRET], "start": "earliest",
            "dead_letter_topic": format!("{topic}.dlq"), "plugins": [plugin],
        });
        let request = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body);
        async move {
            let response = request.send().await?;
            Ok::<_, anyhow::Error>((response.status(), response.json::<Value>().await?))
        }
    };
    let (status, body) = subscribe("ghostly", "ghost").await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/plugins/0", "{body}");

    let (status, body) = subscribe("held", "redact").await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let events: Vec<Value> =
        (0..5).map(|i| json!({"id": format!("e-{i}"), "email": format!("user{i}@example.com")})).collect();
    let reply = env.post(&topic, &Value::Array(events)).await?;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    // Holding: nothing goes out without the plugin.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status: Value = env.http.get(format!("{}/v1/subscriptions/held", env.base)).send().await?.json().await?;
        if status["worker"] == "holding" {
            assert!(status["last_error"].as_str().unwrap_or_default().contains("redact"), "{status}");
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never holding: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver.received("held").is_empty(), "delivered without its plugin");

    // Uploaded: every event is delivered, through it.
    let admin = format!("http://{}/admin/plugins/redact", env.gateway.admin_addr().expect("admin listener"));
    let wasm = std::fs::read(sluice_tests::plugin_wasm("redact"))?;
    let uploaded = env.http.put(admin).bearer_auth(token).body(wasm).send().await?;
    assert_eq!(uploaded.status(), StatusCode::CREATED, "{}", uploaded.text().await?);
    let received = receiver.wait_until("held", WAIT, |r| r.len() >= 5).await;
    assert_eq!(received.len(), 5);
    for request in &received {
        let email = request.json()["email"].as_str().unwrap_or_default().to_owned();
        assert!(email.starts_with("u***@"), "delivered unredacted: {email}");
    }
    env.gateway.stop().await?;
    Ok(())
}

/// Records of a topic as Confluent's Python consumer reads them: `(key, headers)`.
async fn headers_by_confluent(
    bootstrap: &str,
    topic: &str,
    count: usize,
) -> anyhow::Result<Vec<(String, HashMap<String, String>)>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/read_headers.py");
    let mut command = std::process::Command::new(python().await?);
    command.args([script, bootstrap, topic, &count.to_string(), "60"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(output.status.success(), "read_headers.py: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)?
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line)?;
            let headers = record["headers"]
                .as_object()
                .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
                .unwrap_or_default();
            Ok((record["key"].as_str().unwrap_or_default().to_owned(), headers))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_from_both_paths_carry_one_vocabulary_as_confluents_consumer_reads_them() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("both");
    let (produce_dlq, consume_dlq) = (format!("{topic}.produce-dlq"), format!("{topic}.consume-dlq"));
    for t in [&topic, &produce_dlq, &consume_dlq] {
        Kafka::shared().create_topic(t, 1, &[]).await?;
    }
    // The produce path: the `rules` plugin dead-letters negative totals.
    let config = format!(
        "[plugin_host]\ntopic = \"{store}\"\n\n[[plugins]]\nname = \"rules\"\npath = \"{rules}\"\n\n\
         {route}plugins = [\"rules\"]\ndead_letter_topic = \"{produce_dlq}\"\n",
        store = unique_name("_plugins"),
        rules = sluice_tests::plugin_wasm("rules").display(),
        route = route(&topic, "json", Some("/order_id")),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let reply = env
        .post(&topic, &json!([{"order_id": "bad", "total_cents": -1}, {"order_id": "good", "total_cents": 5}]))
        .await?;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    // The consume path: a subscriber that always fails, one attempt.
    let receiver = Receiver::start().await?;
    receiver.set("down", Behaviour::Always(500));
    let body = json!({
        "name": "down", "topics": [topic], "url": receiver.url("down"), "secrets": [SECRET], "start": "earliest",
        "dead_letter_topic": consume_dlq, "retry": {"max_attempts": 1},
    });
    let created = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);

    let produced = headers_by_confluent(&env.bootstrap, &produce_dlq, 1).await?;
    let consumed = headers_by_confluent(&env.bootstrap, &consume_dlq, 1).await?;
    for (path, (key, headers)) in [("produce", &produced[0]), ("consume", &consumed[0])] {
        assert_eq!(headers.get("dlq-original-topic"), Some(&topic), "{path}: {headers:?}");
        assert!(!headers.get("dlq-reason").is_none_or(String::is_empty), "{path}: {headers:?}");
        let millis: i64 = headers.get("dlq-timestamp").map_or(Ok(0), |t| t.parse())?;
        assert!((sluice::telemetry::now_ms() - millis).abs() < 600_000, "{path}: epoch milliseconds: {headers:?}");
        assert!(headers.keys().all(|k| !k.starts_with("sluice-dlq")), "{path}: an old header name: {headers:?}");
        assert!(!key.is_empty(), "{path}: the key is kept");
    }
    let (_, produce_headers) = &produced[0];
    assert_eq!(produce_headers.get("dlq-plugin").map(String::as_str), Some("rules"));
    let (_, consume_headers) = &consumed[0];
    assert_eq!(consume_headers.get("dlq-subscription").map(String::as_str), Some("down"));
    assert_eq!(consume_headers.get("dlq-status").map(String::as_str), Some("500"));
    assert_eq!(consume_headers.get("dlq-attempts").map(String::as_str), Some("1"));
    assert!(
        consume_headers.contains_key("dlq-original-partition") && consume_headers.contains_key("dlq-original-offset")
    );
    env.gateway.stop().await?;
    Ok(())
}
