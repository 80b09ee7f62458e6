//! Plugins written in TypeScript, JavaScript and Python, as components through the gateway's
//! real plugin host: every example decides exactly as its Rust version (the `cases.json` each
//! language also runs natively), on the produce and consume paths against a real broker and a
//! real webhook receiver, and the hostile fixtures of both languages are stopped by the limits
//! while the gateway keeps serving with fresh instances.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::message::Headers as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::plugin::bindings::{Event, Failure, Header};
use sluice::plugin::cli::{action_json, decision_json, delivery_json};
use sluice::plugin::{EngineLimits, Grants, PluginHost};
use sluice_tests::receiver::Receiver;
use sluice_tests::{Kafka, consume_all, plugin_component, plugin_wasm, unique_name};
use support::{Env, RegistryKind};

const EXAMPLES: [&str; 5] = ["enrich", "filter", "redact", "rules", "tenant-router"];
const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The component of an example in a language: Rust from the plugins workspace, the others
/// built with `sluice plugin build`.
fn component(example: &str, lang: &str) -> PathBuf {
    match lang {
        "rust" => plugin_wasm(example),
        _ => plugin_component(&format!("{example}/{lang}")),
    }
}

fn cases(example: &str) -> Vec<Value> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins")).join(example).join("cases.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("cases.json")).expect("JSON");
    file["cases"].as_array().expect("cases").clone()
}

fn event(spec: &Value) -> Event {
    Event {
        topic: spec["topic"].as_str().unwrap_or("events").to_owned(),
        key: spec["key"].as_str().map(|k| k.as_bytes().to_vec()),
        value: spec.get("value").cloned().unwrap_or_else(|| json!({})).to_string().into_bytes(),
        headers: spec["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| Header { key: k.clone(), value: v.as_str().unwrap_or_default().as_bytes().to_vec() })
            .collect(),
        timestamp_ms: spec["timestamp_ms"].as_i64().unwrap_or(0),
    }
}

#[test]
fn every_example_decides_as_its_cases_say_in_rust_typescript_and_python_through_the_plugin_host() {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(900));
    let host = PluginHost::new(EngineLimits::default(), sluice::plugin::default_cache_dir()).expect("plugin host");
    for example in EXAMPLES {
        for lang in ["rust", "ts", "python"] {
            let bytes = std::fs::read(component(example, lang)).expect("component");
            for (n, case) in cases(example).iter().enumerate() {
                let what = format!("{example} ({lang}): {}", case["name"]);
                let config: BTreeMap<String, String> = case["config"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("config text").to_owned()))
                    .collect();
                // A plugin per case: configuration is per load, and so are its counters.
                let plugin = host
                    .load(&format!("{example}-{lang}-{n}"), &bytes, Grants { config, ..Grants::default() })
                    .unwrap_or_else(|e| panic!("{what}: load: {e}"));
                let events = || case["events"].as_array().expect("events").iter().map(event).collect::<Vec<_>>();
                let got: Vec<Value> = match case["hook"].as_str() {
                    Some("produce") => plugin
                        .on_produce(&events())
                        .unwrap_or_else(|e| panic!("{what}: {e}"))
                        .iter()
                        .map(action_json)
                        .collect(),
                    Some("consume") => plugin
                        .on_consume(&events())
                        .unwrap_or_else(|e| panic!("{what}: {e}"))
                        .iter()
                        .map(delivery_json)
                        .collect(),
                    _ => {
                        let spec = &case["failure"];
                        let failure = Failure {
                            event: event(&spec["event"]),
                            attempt: u32::try_from(spec["attempt"].as_u64().expect("attempt")).expect("u32"),
                            status: spec["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
                            error: spec["error"].as_str().unwrap_or_default().to_owned(),
                        };
                        vec![decision_json(&plugin.on_failure(&failure).unwrap_or_else(|e| panic!("{what}: {e}")))]
                    }
                };
                assert_eq!(Value::Array(got), case["expect"], "{what}");
                let counters = plugin.counters();
                for (name, value) in case["counters"].as_object().into_iter().flatten() {
                    assert_eq!(counters.get(name).copied(), value.as_u64(), "{what}: counter {name}");
                }
            }
        }
    }
}

fn declare(name: &str, path: &std::path::Path, extra: &str) -> String {
    format!("[[plugins]]\nname = \"{name}\"\npath = \"{}\"\n{extra}\n", path.display())
}

fn header(record: &rdkafka::message::OwnedMessage, name: &str) -> String {
    record
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == name))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_typescript_and_python_example_runs_on_the_produce_or_consume_path() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(900));
    let langs = ["ts", "python"];
    let mut config = format!(
        "[plugin_host]\ntopic = \"{}\"\n\n[delivery]\ntopic = \"{}\"\nallow_networks = [\"127.0.0.0/8\"]\n\n",
        unique_name("_plugins"),
        unique_name("_subscriptions")
    );
    let (mut topics, mut routed) = (HashMap::new(), HashMap::new());
    for lang in langs {
        for example in EXAMPLES {
            let path = tokio::task::spawn_blocking(move || component(example, lang)).await?;
            config += &declare(&format!("{example}-{lang}"), &path, "");
        }
        let (topic, dlq) = (unique_name(&format!("orders-{lang}")), unique_name(&format!("orders-{lang}-dlq")));
        Kafka::shared().create_topic(&topic, 1, &[]).await?;
        Kafka::shared().create_topic(&dlq, 1, &[]).await?;
        config += &format!(
            "[[topics]]\nname = \"{topic}\"\nformat = \"json\"\nplugins = [\"filter-{lang}\", \"redact-{lang}\"]\n\n"
        );
        topics.insert(lang, (topic, dlq));
        // enrich, then tenant-router: each tenant's topic must be routed too.
        let tenants = unique_name(&format!("tenants-{lang}"));
        for topic in [tenants.clone(), format!("{tenants}.acme"), format!("{tenants}.globex")] {
            Kafka::shared().create_topic(&topic, 1, &[]).await?;
            let plugins =
                if topic == tenants { format!("[\"enrich-{lang}\", \"tenant-router-{lang}\"]") } else { "[]".into() };
            config += &format!("[[topics]]\nname = \"{topic}\"\nformat = \"json\"\nplugins = {plugins}\n\n");
        }
        routed.insert(lang, tenants);
    }
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let receiver = Receiver::start().await?;

    for lang in langs {
        // Produce path: enrich stamps each event, tenant-router reroutes or fans it out.
        let tenants = &routed[lang];
        let reply = env
            .post(
                tenants,
                &json!([{"order_id": "t-1", "tenant": "acme"}, {"order_id": "t-2", "tenants": ["acme", "globex"]}]),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{lang}: {}", reply.body);
        assert_eq!(reply.body["results"][0]["topic"], format!("{tenants}.acme"), "{lang}: {}", reply.body);
        let acme = consume_all(&env.bootstrap, &format!("{tenants}.acme"), 2, WAIT).await?;
        let globex = consume_all(&env.bootstrap, &format!("{tenants}.globex"), 1, WAIT).await?;
        for record in acme.iter().chain(&globex) {
            let value: Value = serde_json::from_slice(record.payload().expect("value"))?;
            assert!(value["ingested_at"].is_string(), "{lang}: enriched before routing: {value}");
            assert_eq!(header(record, "ingested-at"), value["ingested_at"].as_str().unwrap_or_default(), "{lang}");
        }
        let globex_value: Value = serde_json::from_slice(globex[0].payload().expect("value"))?;
        assert_eq!((&globex_value["order_id"], &globex_value["tenant"]), (&json!("t-2"), &json!("globex")), "{lang}");
    }

    for lang in langs {
        let (topic, dlq) = &topics[lang];
        // Produce path: filter drops the test event, redact masks the address.
        let events = json!([
            {"order_id": "a", "test": true},
            {"order_id": "b", "email": "alice@example.com"},
            {"order_id": "c", "total_cents": -5},
            {"order_id": "d", "total_cents": 5},
        ]);
        let reply = env.post(topic, &events).await?;
        assert_eq!(reply.status, StatusCode::OK, "{lang}: {}", reply.body);
        assert_eq!(reply.body["results"][0]["dropped"]["plugin"], format!("filter-{lang}"), "{lang}: {}", reply.body);
        assert_eq!(reply.body["results"][0]["dropped"]["reason"], "test event", "{lang}");
        let stored: Vec<Value> = consume_all(&env.bootstrap, topic, 3, WAIT)
            .await?
            .iter()
            .map(|r| serde_json::from_slice(r.payload().expect("value")).expect("JSON"))
            .collect();
        assert_eq!(stored[0], json!({"order_id": "b", "email": "a***@example.com"}), "{lang}: redacted in Kafka");
        assert_eq!(stored.len(), 3, "{lang}: the test event never reached Kafka");

        // A test event that reached the topic some other way, for the consume path to skip.
        let producer: rdkafka::producer::FutureProducer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &env.bootstrap).create()?;
        let payload = json!({"order_id": "e", "test": true}).to_string();
        producer
            .send(rdkafka::producer::FutureRecord::<(), _>::to(topic).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;

        // Consume path: the subscription's chain skips, dead-letters and modifies.
        let body = json!({
            "name": unique_name(&format!("sub-{lang}")), "topics": [topic], "url": receiver.url(lang),
            "secrets": [SECRET], "start": "earliest", "dead_letter_topic": dlq,
            "plugins": [format!("filter-{lang}"), format!("rules-{lang}"), format!("redact-{lang}")],
        });
        let response = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
        assert_eq!(response.status(), StatusCode::CREATED, "{lang}: {}", response.text().await?);
        let received = receiver.wait_until(lang, WAIT, |r| r.len() >= 2).await;
        let delivered: BTreeMap<String, Value> =
            received.iter().map(|r| (r.json()["order_id"].as_str().unwrap_or_default().to_owned(), r.json())).collect();
        assert_eq!(delivered.keys().map(String::as_str).collect::<Vec<_>>(), ["b", "d"], "{lang}: {delivered:?}");
        assert_eq!(delivered["b"]["email"], "a***@example.com", "{lang}");
        let dead = consume_all(&env.bootstrap, dlq, 1, WAIT).await?;
        assert!(header(&dead[0], "dlq-reason").contains("negative total_cents"), "{lang}: dead-lettered by rules");
        assert_eq!(header(&dead[0], "dlq-plugin"), format!("rules-{lang}"), "{lang}");
    }
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_infinite_loop_and_a_javascript_memory_bomb_are_stopped_and_fresh_instances_serve_on()
-> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(600));
    let spin = tokio::task::spawn_blocking(|| plugin_component("fixtures/infinite-loop-py")).await?;
    let bomb = tokio::task::spawn_blocking(|| plugin_component("fixtures/memory-bomb-js")).await?;
    let (spin_topic, bomb_topic, plain) = (unique_name("spin-py"), unique_name("bomb-js"), unique_name("plain"));
    for topic in [&spin_topic, &bomb_topic, &plain] {
        Kafka::shared().create_topic(topic, 1, &[]).await?;
    }
    let mut config = format!("[plugin_host]\ntopic = \"{}\"\n\n", unique_name("_plugins"));
    config += &declare("spin-py", &spin, "timeout_ms = 200");
    // Long enough for the bomb to reach its memory limit, not its time limit.
    config += &declare("bomb-js", &bomb, "timeout_ms = 5000\nmemory_mb = 32");
    for (topic, plugin) in [(&spin_topic, "spin-py"), (&bomb_topic, "bomb-js")] {
        config += &format!("[[topics]]\nname = \"{topic}\"\nformat = \"json\"\nplugins = [\"{plugin}\"]\n\n");
    }
    config += &format!("[[topics]]\nname = \"{plain}\"\nformat = \"json\"\n");
    let env = Env::start(RegistryKind::Embedded, &config).await?;

    for round in 0..2 {
        for (topic, plugin, hostile, limit) in [
            (&spin_topic, "spin-py", json!({"spin": true}), "200 ms limit"),
            (&bomb_topic, "bomb-js", json!({"bomb": true}), "memory"),
        ] {
            let what = format!("round {round}, {plugin}");
            let reply = env.post(topic, &json!([hostile, {"n": 1}])).await?;
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{what}: {}", reply.body);
            assert_eq!(reply.body["errors"][0]["type"], "plugin-failed", "{what}: {}", reply.body);
            assert_eq!(reply.body["errors"][0]["plugin"], plugin, "{what}");
            let message = reply.body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains(limit), "{what}: {message}");
            // The trapped instance is gone: a fresh one serves the next batch.
            let next = env.post(topic, &json!([{"n": 2}, {"n": 3}])).await?;
            assert_eq!(next.status, StatusCode::OK, "{what}: the next batch: {}", next.body);
            assert!(next.body["results"][1]["offset"].is_i64(), "{what}: {}", next.body);
            let ok = env.post(&plain, &json!({"still": "served"})).await?;
            assert_eq!(ok.status, StatusCode::OK, "{what}: the plain route: {}", ok.body);
        }
    }
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_typescript_versions_are_uploaded_and_hot_swapped_like_rust_ones() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(600));
    let python = tokio::task::spawn_blocking(|| component("redact", "python")).await?;
    let ts = tokio::task::spawn_blocking(|| component("enrich", "ts")).await?;
    let topic = unique_name("profiles");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let token = "test-admin-token-0123456789";
    let config = format!(
        "[plugin_host]\ntopic = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n\
         [[plugins]]\nname = \"transform\"\n\n\
         [[topics]]\nname = \"{topic}\"\nformat = \"json\"\nplugins = [\"transform\"]\n",
        unique_name("_plugins")
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let admin = format!("http://{}/admin/plugins/transform", env.gateway.admin_addr().expect("admin listener"));
    let upload = async |path: &std::path::Path| -> anyhow::Result<(StatusCode, Value)> {
        let response = env.http.put(&admin).bearer_auth(token).body(std::fs::read(path)?).send().await?;
        Ok((response.status(), response.json().await?))
    };
    let event = json!({"email": "alice@example.com"});

    // The 19 MB Python component is checked, stored in Kafka in chunks, and swapped in.
    let (status, body) = upload(&python).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["version"]["chunks"].as_u64() > Some(1), "{body}");
    assert!(body["version"]["describes_as"].as_str().unwrap_or_default().contains("redact"), "{body}");
    let python_version = body["version"]["version"].as_str().unwrap_or_default().to_owned();
    let reply = env.post(&topic, &event).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // Then the TypeScript enrich replaces it with no restart, and a rollback brings Python back.
    let (status, body) = upload(&ts).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(env.post(&topic, &event).await?.status, StatusCode::OK);
    let rollback = env.http.post(format!("{admin}/rollback")).bearer_auth(token).send().await?;
    assert_eq!(rollback.status(), StatusCode::OK);
    assert_eq!(rollback.json::<Value>().await?["active"], json!(python_version));
    assert_eq!(env.post(&topic, &event).await?.status, StatusCode::OK);

    let stored: Vec<Value> = consume_all(&env.bootstrap, &topic, 3, WAIT)
        .await?
        .iter()
        .map(|r| serde_json::from_slice(r.payload().expect("value")).expect("JSON"))
        .collect();
    assert_eq!(stored[0], json!({"email": "a***@example.com"}), "redacted by the Python version");
    assert_eq!(stored[1]["email"], "alice@example.com", "the TypeScript enrich does not redact");
    assert!(stored[1]["ingested_at"].is_string(), "enriched by the TypeScript version: {}", stored[1]);
    assert_eq!(stored[2], json!({"email": "a***@example.com"}), "Python again after the rollback");
    env.gateway.stop().await?;
    Ok(())
}

/// componentize-py 0.25 components leak the byte lists they return. An instance nearing its
/// memory limit is retired between calls, so a Python plugin that modifies every event keeps
/// serving far past the point where that leak would have filled one instance.
#[test]
fn a_python_plugin_that_modifies_every_event_keeps_serving_past_its_memory_limit() {
    let _deadline = sluice_tests::deadline_of(Duration::from_secs(600));
    let host = PluginHost::new(EngineLimits::default(), sluice::plugin::default_cache_dir()).expect("plugin host");
    let bytes = std::fs::read(component("redact", "python")).expect("component");
    let grants = Grants { memory_bytes: 16 << 20, timeout: Duration::from_secs(1), ..Grants::default() };
    let plugin = host.load("redact-python-leak", &bytes, grants).expect("load");
    let batch: Vec<Event> = (0..100)
        .map(|i| {
            event(&json!({"topic": "t", "value": {"customer": format!("customer-{i:06}@example.com"), "notes": "x".repeat(200)}}))
        })
        .collect();
    // ~30 KB leaked per batch: 16 MiB is gone after a few hundred batches of one instance.
    for round in 0..1500 {
        let actions = plugin.on_produce(&batch).unwrap_or_else(|e| panic!("batch {round}: {e}"));
        assert_eq!(action_json(&actions[0])["value"]["customer"], "c***@example.com", "batch {round}");
    }
    assert!(plugin.failures().is_empty(), "{:?}", plugin.failures());
}
