//! `[[transforms]]` against a real broker: a plugin over an input topic, its results in the
//! output route's topic and what it cannot read in the dead letter topic — and, with the replica
//! SIGKILLed mid-batch again and again, exactly one output per input for a `read_committed`
//! reader.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::message::Headers as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sluice_tests::{GatewayProcess, Isolation, Kafka, plugin_wasm, read_to_end, unique_name};
use support::{Env, RegistryKind, route};

/// Writes records to a topic as any Kafka client would, outside the gateway.
async fn produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).set("linger.ms", "5").create()?;
    let sends = records
        .iter()
        .map(|(key, value)| producer.send(FutureRecord::to(topic).key(key).payload(value), Duration::from_secs(30)));
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Reads `topic` read_committed until it holds at least `count` records.
async fn await_records(
    bootstrap: &str,
    topic: &str,
    count: usize,
) -> anyhow::Result<Vec<rdkafka::message::OwnedMessage>> {
    loop {
        let records = read_to_end(bootstrap, topic, Isolation::ReadCommitted).await?;
        if records.len() >= count {
            return Ok(records);
        }
        // Each read is a fresh consumer; this is the pace of asking again, not a wait for a
        // condition (the read above is the condition).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn transform_config(name: &str, input: &str, output: &str, dlq: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"enrich\"\npath = \"{}\"\n\n[[transforms]]\nname = \"{name}\"\ninputs = [\"{input}\"]\n\
         output = \"{output}\"\nplugins = [\"enrich\"]\ndead_letter_topic = \"{dlq}\"\n{extra}\n",
        plugin_wasm("enrich").display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transform_runs_its_plugin_into_the_output_and_dead_letters_what_it_cannot_read() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (input, output, dlq) = (unique_name("orders.placed"), unique_name("orders.shipped"), unique_name("dlq"));
    let kafka = Kafka::shared();
    for topic in [&input, &output, &dlq] {
        kafka.create_topic(topic, 2, &[]).await?;
    }
    let config = format!(
        "{}\n{}",
        route(&output, "json", Some("/order_id")),
        transform_config(&unique_name("ship"), &input, &output, &dlq, "")
    );
    let _env = Env::start(RegistryKind::Embedded, &config).await?;
    let bootstrap = kafka.bootstrap_servers();
    let mut records: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("o-{i}"), json!({"order_id": format!("o-{i}"), "n": i}).to_string().into_bytes()))
        .collect();
    records.push(("garbage".into(), b"\x01 not json".to_vec()));
    produce(&bootstrap, &input, &records).await?;

    let shipped = await_records(&bootstrap, &output, 3).await?;
    let by_key: HashMap<String, Value> = shipped
        .iter()
        .map(|r| {
            let key = String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned();
            (key, serde_json::from_slice(r.payload().unwrap_or_default()).unwrap_or(Value::Null))
        })
        .collect();
    assert_eq!(by_key.len(), 3, "{by_key:?}");
    for i in 0..3 {
        let value = &by_key[&format!("o-{i}")];
        assert_eq!(value["n"], i, "{value}");
        assert!(value["ingested_at"].is_string(), "the plugin ran: {value}");
    }
    let dead = await_records(&bootstrap, &dlq, 1).await?;
    let header = |name: &str| {
        dead[0]
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(dead[0].payload(), Some(&b"\x01 not json"[..]), "kept as it was read");
    assert_eq!(header("dlq-original-topic").as_deref(), Some(input.as_str()));
    assert!(header("dlq-reason").is_some_and(|r| r.contains("JSON")), "{:?}", header("dlq-reason"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn transforms_created_through_the_admin_api_run_change_and_stop() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (input, output, other) =
        (unique_name("orders.placed"), unique_name("orders.shipped"), unique_name("orders.other"));
    let kafka = Kafka::shared();
    for topic in [&input, &output, &other] {
        kafka.create_topic(topic, 1, &[]).await?;
    }
    let token = "test-admin-token-0123456789";
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n[exactly_once]\nreplica_id = \"{}\"\n\
         transforms_topic = \"{}\"\n\n[[plugins]]\nname = \"enrich\"\npath = \"{}\"\n\n{}\n{}",
        unique_name("replica"),
        unique_name("_sluice_transforms"),
        plugin_wasm("enrich").display(),
        route(&output, "json", Some("/order_id")),
        route(&other, "json", Some("/order_id")),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let admin = format!("http://{}/admin/transforms", env.gateway.admin_addr().expect("admin listener"));
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = env.http.request(method, format!("{admin}{path}")).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            Ok::<_, anyhow::Error>((status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)))
        }
    };
    let bootstrap = kafka.bootstrap_servers();

    // Every problem at once, field by field.
    let (status, body) =
        call(reqwest::Method::PUT, "/ship", Some(json!({"inputs": [], "output": "nowhere", "plugins": ["ghost"]})))
            .await?;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["inputs", "output", "plugins"], "{body}");

    let ship = json!({"inputs": [input], "output": output, "plugins": ["enrich"]});
    let (status, body) = call(reqwest::Method::PUT, "/ship", Some(ship.clone())).await?;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    produce(&bootstrap, &input, &[("o-1".into(), br#"{"order_id":"o-1"}"#.to_vec())]).await?;
    let shipped = await_records(&bootstrap, &output, 1).await?;
    let value: Value = serde_json::from_slice(shipped[0].payload().unwrap_or_default())?;
    assert!(value["ingested_at"].is_string(), "{value}");
    let (status, body) = call(reqwest::Method::GET, "", None).await?;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(
        (body["transforms"][0]["name"].as_str(), body["transforms"][0]["source"].as_str()),
        (Some("ship"), Some("api"))
    );

    // Changed: the same group carries on from its committed offsets, into the new output.
    let (status, _) = call(reqwest::Method::PUT, "/ship", Some(json!({"inputs": [input], "output": other}))).await?;
    assert_eq!(status, reqwest::StatusCode::OK);
    produce(&bootstrap, &input, &[("o-2".into(), br#"{"order_id":"o-2"}"#.to_vec())]).await?;
    let moved = await_records(&bootstrap, &other, 1).await?;
    assert_eq!(moved.len(), 1, "only the record after the change goes to the new output");
    assert_eq!(moved[0].key(), Some(&b"o-2"[..]));

    let (status, _) = call(reqwest::Method::DELETE, "/ship", None).await?;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let (status, body) = call(reqwest::Method::DELETE, "/ship", None).await?;
    assert_eq!(
        (status, body["type"].as_str()),
        (reqwest::StatusCode::NOT_FOUND, Some("urn:sluice:problem:unknown-transform"))
    );
    let (_, body) = call(reqwest::Method::GET, "", None).await?;
    assert_eq!(body["transforms"], json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transform_killed_mid_batch_writes_exactly_one_output_per_input() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(600));
    const INPUTS: usize = 4000;
    const KILLS: usize = 4;
    let (input, output, dlq) = (unique_name("orders.placed"), unique_name("orders.shipped"), unique_name("dlq"));
    let kafka = Kafka::shared();
    let bootstrap = kafka.bootstrap_servers();
    for topic in [&input, &output, &dlq] {
        kafka.create_topic(topic, 3, &[]).await?;
    }
    let records: Vec<(String, Vec<u8>)> = (0..INPUTS)
        .map(|i| (format!("o-{i}"), json!({"order_id": format!("o-{i}"), "n": i}).to_string().into_bytes()))
        .collect();
    produce(&bootstrap, &input, &records).await?;

    let binary = tokio::task::spawn_blocking(sluice_tests::debug_binary).await??;
    let config = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\n[registry]\nurl = \"embedded\"\ntopic = \"{}\"\n\n\
         [delivery]\ntopic = \"{}\"\n\n[exactly_once]\nreplica_id = \"{}\"\nidempotency = \"replica\"\n\n{}\n{}",
        unique_name("_sluice_schemas"),
        unique_name("_subscriptions"),
        unique_name("transformer"),
        route(&output, "json", Some("/order_id")),
        transform_config(&unique_name("ship"), &input, &output, &dlq, "max_batch = 50\nmax_wait_ms = 5"),
    );
    let mut replica = GatewayProcess::start("transformer", &binary, &config).await?;
    // Kill it each time its output has grown by another share of the input, while it is busy.
    for kill in 1..=KILLS {
        let progress = i64::try_from(kill * INPUTS / (KILLS + 2))?;
        while high_watermarks(&bootstrap, &output).await? < progress {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replica.kill()?;
        replica.restart().await?;
    }
    let shipped = await_records(&bootstrap, &output, INPUTS).await?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for record in &shipped {
        let value: Value = serde_json::from_slice(record.payload().unwrap_or_default())?;
        assert!(value["ingested_at"].is_string(), "{value}");
        *seen.entry(value["order_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "outputs written twice: {duplicated:?}");
    assert_eq!(seen.len(), INPUTS, "one output per input, none missing");
    assert!(read_to_end(&bootstrap, &dlq, Isolation::ReadCommitted).await?.is_empty());
    // The killed attempts did write: aborted records a read_uncommitted reader still sees.
    let uncommitted = read_to_end(&bootstrap, &output, Isolation::ReadUncommitted).await?;
    eprintln!("transform chaos: {} records written, {} committed", uncommitted.len(), shipped.len());
    replica.stop().await?;
    Ok(())
}

/// The sum of a topic's high watermarks: grows with every record and transaction marker.
async fn high_watermarks(bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
        let mut total = 0;
        for partition in 0..3 {
            total += consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?.1;
        }
        Ok(total)
    })
    .await?
}
