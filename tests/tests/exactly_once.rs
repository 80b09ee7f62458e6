//! Exactly-once against a real broker: atomic batches (`?atomic=true`, `POST /v1/events`) and
//! `Idempotency-Key`s honoured by every replica, read back by `read_committed` and
//! `read_uncommitted` consumers — including Confluent's Python client after replicas were
//! SIGKILLed mid-request.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::{GatewayProcess, Isolation, Kafka, read_to_end, unique_name};
use support::{Env, ORDER_PLACED, RegistryKind, order, record_count, route};

/// Keys of the records a reader sees.
async fn keys(bootstrap: &str, topic: &str, isolation: Isolation) -> anyhow::Result<Vec<String>> {
    let records = read_to_end(bootstrap, topic, isolation).await?;
    Ok(records.iter().map(|r| String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()).collect())
}

async fn post(env: &Env, path: &str, body: &Value, key: Option<&str>) -> anyhow::Result<(StatusCode, Value, bool)> {
    let mut request =
        env.http.post(format!("{}{path}", env.base)).header("content-type", "application/json").body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await?;
    let (status, replayed) = (response.status(), response.headers().contains_key("idempotent-replayed"));
    Ok((status, response.json().await?, replayed))
}

/// Text that zstd cannot shrink much: hex of a simple pseudo-random sequence.
fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit(u32::try_from(x % 16).unwrap_or(0), 16).unwrap_or('0')
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_atomic_batch_writes_every_event_across_topics_or_none() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (orders, audit) = (unique_name("orders"), unique_name("audit"));
    let kafka = Kafka::shared();
    kafka.create_topic(&orders, 2, &[]).await?;
    // Small records only, so that Kafka itself refuses one in the middle of a transaction.
    kafka.create_topic(&audit, 1, &[("max.message.bytes", "2000")]).await?;
    let routes = format!("{}\n{}", route(&orders, "avro", Some("/order_id")), route(&audit, "json", Some("/order_id")));
    let env = Env::start(RegistryKind::Embedded, &routes).await?;
    env.register(&format!("{orders}-value"), "AVRO", ORDER_PLACED).await?;
    let bootstrap = kafka.bootstrap_servers();

    // One invalid event: nothing is written, and the answer names the event.
    let mut wrong = order("a-2");
    wrong["total_cents"] = json!("lots");
    let batch = json!([order("a-1"), wrong, order("a-3")]);
    let (status, body, _) = post(&env, &format!("/v1/topics/{orders}/events?atomic=true"), &batch, None).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["type"], "urn:sluice:problem:schema-violation");
    assert_eq!(body["atomic"], true);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!((errors[0]["index"].as_u64(), errors[0]["pointer"].as_str()), (Some(1), Some("/total_cents")));

    // Valid events for two topics: all land, in one transaction, each result naming its topic.
    let audit_entry = |id: &str| json!({"order_id": id, "note": format!("{id} placed")});
    let both = json!([
        {"topic": orders, "value": order("b-1")},
        {"topic": audit, "value": audit_entry("b-1")},
        {"topic": orders, "value": order("b-2")},
    ]);
    let (status, body, _) = post(&env, "/v1/events?atomic=true", &both, None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    let topics: Vec<&str> = results.iter().map(|r| r["topic"].as_str().unwrap_or_default()).collect();
    assert_eq!(topics, [orders.as_str(), audit.as_str(), orders.as_str()]);
    assert!(results.iter().enumerate().all(|(i, r)| r["index"] == i && r["offset"].is_i64()), "{body}");

    // Kafka refuses the second record after the first was written: the transaction is aborted,
    // so the first is written but never committed.
    let refused = json!([
        {"topic": orders, "value": order("c-1")},
        {"topic": audit, "value": {"order_id": "c-1", "note": incompressible(20_000)}},
    ]);
    let (status, body, _) = post(&env, "/v1/events?atomic=true", &refused, None).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["type"], "urn:sluice:problem:record-too-large");

    let committed = keys(&bootstrap, &orders, Isolation::ReadCommitted).await?;
    let mut sorted = committed.clone();
    sorted.sort();
    assert_eq!(sorted, ["b-1", "b-2"], "only the committed batch is visible to read_committed");
    assert_eq!(keys(&bootstrap, &audit, Isolation::ReadCommitted).await?, ["b-1"]);
    let uncommitted = keys(&bootstrap, &orders, Isolation::ReadUncommitted).await?;
    assert!(
        !uncommitted.iter().any(|k| k.starts_with("a-")),
        "the refused batch wrote nothing at all: {uncommitted:?}"
    );
    assert!(uncommitted.contains(&"c-1".to_owned()), "the aborted record was written: {uncommitted:?}");

    // Answers name where the committed records are.
    let records = read_to_end(&bootstrap, &orders, Isolation::ReadCommitted).await?;
    for (result, id) in [(&results[0], "b-1"), (&results[2], "b-2")] {
        let record = records.iter().find(|r| r.key() == Some(id.as_bytes())).expect("committed");
        assert_eq!(
            (result["partition"].as_i64(), result["offset"].as_i64()),
            (Some(i64::from(record.partition())), Some(record.offset()))
        );
    }
    // A request that is not atomic still writes its valid events.
    let (status, _, _) = post(&env, &format!("/v1/topics/{orders}/events"), &batch, None).await?;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(record_count(&bootstrap, &orders).await?, 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_atomic_requests_are_not_refused_for_each_others_records() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("notes");
    let kafka = Kafka::shared();
    kafka.create_topic(&topic, 2, &[("max.message.bytes", "2000")]).await?;
    let env = Env::start(RegistryKind::Embedded, &route(&topic, "json", Some("/id"))).await?;
    let path = format!("/v1/topics/{topic}/events?atomic=true");
    // Requests that arrive together may share a transaction; one with a record Kafka refuses
    // must not take the others down with it.
    let bodies: Vec<Value> = (0..12)
        .map(|i| {
            if i == 5 {
                json!([{"id": "big-0"}, {"id": "big-1", "note": incompressible(20_000)}])
            } else {
                json!([{"id": format!("n-{i}-0")}, {"id": format!("n-{i}-1")}])
            }
        })
        .collect();
    let answers = futures::future::try_join_all(bodies.iter().map(|body| post(&env, &path, body, None))).await?;
    for (i, (status, body, _)) in answers.iter().enumerate() {
        let expected = if i == 5 { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::OK };
        assert_eq!(*status, expected, "request {i}: {body}");
    }
    let mut stored = keys(&kafka.bootstrap_servers(), &topic, Isolation::ReadCommitted).await?;
    stored.sort();
    let mut expected: Vec<String> =
        (0..12).filter(|i| *i != 5).flat_map(|i| [format!("n-{i}-0"), format!("n-{i}-1")]).collect();
    expected.sort();
    assert_eq!(stored, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_query_and_multi_topic_bodies_are_refused_with_a_reason() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("notes");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let env = Env::start(RegistryKind::Embedded, &route(&topic, "json", None)).await?;
    let note = json!({"n": 1});
    let (status, body, _) = post(&env, &format!("/v1/topics/{topic}/events?atomic=yes"), &note, None).await?;
    assert_eq!((status, body["type"].as_str()), (StatusCode::BAD_REQUEST, Some("urn:sluice:problem:invalid-query")));
    let (status, body, _) = post(&env, &format!("/v1/topics/{topic}/events?atomc=true"), &note, None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unknown = json!([{"topic": topic, "value": note}, {"topic": "nowhere", "value": note}]);
    let (status, body, _) = post(&env, "/v1/events", &unknown, None).await?;
    assert_eq!((status, body["index"].as_u64()), (StatusCode::NOT_FOUND, Some(1)), "{body}");
    assert_eq!(body["type"], "urn:sluice:problem:unknown-topic");
    let (status, body, _) = post(&env, "/v1/events", &json!([{"topic": topic}]), None).await?;
    assert_eq!((status, body["index"].as_u64()), (StatusCode::BAD_REQUEST, Some(0)), "{body}");
    assert_eq!(record_count(&Kafka::shared().bootstrap_servers(), &topic).await?, 0);
    // Not atomic, several topics' worth of one: each result still names its topic.
    let (status, body, _) = post(&env, "/v1/events", &json!([{"topic": topic, "value": note}]), None).await?;
    assert_eq!((status, body["results"][0]["topic"].as_str()), (StatusCode::OK, Some(topic.as_str())), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_honoured_by_every_replica() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("payments");
    let kafka = Kafka::shared();
    kafka.create_topic(&topic, 3, &[]).await?;
    let routes = route(&topic, "json", Some("/order_id"));
    let a = Env::start(RegistryKind::Embedded, &routes).await?;
    let b = Env::start(RegistryKind::Embedded, &routes).await?;
    let path = format!("/v1/topics/{topic}/events");
    let key = unique_name("key");

    // Six racing requests with one key, three per replica: one copy, one answer.
    let event = json!({"order_id": "p-1", "amount": 10});
    let racing = futures::future::try_join_all((0..6).map(|i| {
        let (env, path, event, key) = (if i % 2 == 0 { &a } else { &b }, &path, &event, &key);
        async move { post(env, path, event, Some(key)).await }
    }))
    .await?;
    assert!(racing.iter().all(|(status, body, _)| *status == StatusCode::OK && *body == racing[0].1), "{racing:?}");
    assert_eq!(
        racing.iter().filter(|(_, _, replayed)| !replayed).count(),
        1,
        "one request ran, five replayed: {racing:?}"
    );
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 1);

    // A partly refused batch is kept with its answer; its retry on the other replica replays it.
    let batch = json!([{"order_id": "p-2"}, {"amount": 3}, {"order_id": "p-3"}]);
    let batch_key = unique_name("key");
    let (status, first, replayed) = post(&a, &path, &batch, Some(&batch_key)).await?;
    assert_eq!((status, replayed), (StatusCode::MULTI_STATUS, false), "{first}");
    let (status, again, replayed) = post(&b, &path, &batch, Some(&batch_key)).await?;
    assert_eq!((status, replayed), (StatusCode::MULTI_STATUS, true));
    assert_eq!(again, first);
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 3);

    // The key with another body, on either replica, is refused; a new key is a new request.
    for env in [&a, &b] {
        let (status, body, _) = post(env, &path, &json!({"order_id": "p-9"}), Some(&key)).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["type"], "urn:sluice:problem:idempotency-key-reused");
    }
    let (status, _, replayed) = post(&b, &path, &event, Some(&unique_name("key"))).await?;
    assert_eq!((status, replayed), (StatusCode::OK, false));
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 4);
    Ok(())
}

/// One client's requests: each with its own key, sent to one replica and retried on the other
/// after any timeout, connection error or 5xx, until it is acknowledged.
async fn send_until_acknowledged(
    http: &reqwest::Client,
    bases: &[String; 2],
    topic: &str,
    id: usize,
    acknowledged: &AtomicUsize,
) -> anyhow::Result<()> {
    let body = json!({"order_id": format!("e-{id}"), "amount": id}).to_string();
    let key = format!("chaos-{id}");
    for attempt in 0..200 {
        let base = &bases[(id + attempt) % 2];
        let sent = http
            .post(format!("{base}/v1/topics/{topic}/events"))
            .header("content-type", "application/json")
            .header("idempotency-key", &key)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                acknowledged.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Ok(response) if response.status().is_server_error() => {}
            Ok(response) => anyhow::bail!("request {id} refused: {} {}", response.status(), response.text().await?),
            Err(_) => {}
        }
        // The other replica may be starting again; give it a moment before the next try.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("request {id} was never acknowledged")
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retries_across_replicas_killed_mid_request_store_each_event_once() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(600));
    const REQUESTS: usize = 240;
    const KILLS_PER_REPLICA: usize = 3;
    let topic = unique_name("chaos");
    let kafka = Kafka::shared();
    kafka.create_topic(&topic, 3, &[]).await?;
    let binary = tokio::task::spawn_blocking(sluice_tests::debug_binary).await??;
    let idempotency_topic = unique_name("_sluice_idempotency");
    let config = |replica: &str| {
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n\n[registry]\nurl = \"embedded\"\ntopic = \"{}\"\n\n\
             [delivery]\ntopic = \"{}\"\n\n[exactly_once]\nreplica_id = \"{replica}\"\nidempotency_topic = \"{idempotency_topic}\"\n\n{}",
            kafka.bootstrap_servers(),
            unique_name("_sluice_schemas"),
            unique_name("_subscriptions"),
            route(&topic, "json", Some("/order_id")),
        )
    };
    let mut replicas = [
        GatewayProcess::start("replica-a", &binary, &config(&unique_name("a"))).await?,
        GatewayProcess::start("replica-b", &binary, &config(&unique_name("b"))).await?,
    ];
    let bases = [replicas[0].base().to_owned(), replicas[1].base().to_owned()];
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    let acknowledged = Arc::new(AtomicUsize::new(0));

    let clients = {
        let (http, bases, topic, acknowledged) = (http.clone(), bases.clone(), topic.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let next = AtomicUsize::new(0);
            let worker = || async {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= REQUESTS {
                        return Ok::<_, anyhow::Error>(());
                    }
                    send_until_acknowledged(&http, &bases, &topic, id, &acknowledged).await?;
                }
            };
            futures::future::try_join_all((0..8).map(|_| worker())).await.map(|_| ())
        })
    };
    // Kill each replica several times while requests are in flight, alternating, each time
    // after more requests were acknowledged.
    let mut kills = 0;
    for round in 0..KILLS_PER_REPLICA * 2 {
        let progress = (round + 1) * REQUESTS / (KILLS_PER_REPLICA * 2 + 2);
        while acknowledged.load(Ordering::Relaxed) < progress {
            anyhow::ensure!(!clients.is_finished(), "the clients stopped early");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let replica = &mut replicas[round % 2];
        replica.kill()?;
        kills += 1;
        replica.restart().await?;
    }
    clients.await??;
    assert_eq!(kills, KILLS_PER_REPLICA * 2);
    assert_eq!(acknowledged.load(Ordering::Relaxed), REQUESTS);

    // Confluent's Python client, read_committed: every acknowledged event exactly once.
    let python = sluice_tests::python().await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/read_committed.py");
    let mut command = std::process::Command::new(python);
    command.args([script, &kafka.bootstrap_servers(), &topic]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(output.status.success(), "read_committed.py: {}", String::from_utf8_lossy(&output.stderr));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let value: Value = serde_json::from_str(line)?;
        *seen.entry(value["order_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "events stored more than once: {duplicated:?}");
    let expected: HashSet<String> = (0..REQUESTS).map(|i| format!("e-{i}")).collect();
    let missing: Vec<_> = expected.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(missing.is_empty(), "acknowledged events missing: {missing:?}");
    assert_eq!(seen.len(), REQUESTS);
    for replica in &mut replicas {
        replica.stop().await?;
    }
    Ok(())
}
