//! WebAssembly plugins on the produce path against a real broker: every action's effect in
//! Kafka, hostile plugins stopped within their limits while other routes keep serving, and
//! versions uploaded, swapped, rolled back and kept across restarts through the admin API.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::message::{Headers as _, OwnedMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::{Kafka, consume_all, plugin_wasm, unique_name};
use support::{Env, RegistryKind};

const WAIT: Duration = Duration::from_secs(30);

fn declare(name: &str, file: Option<&str>, extra: &str) -> String {
    let path = file.map(|f| format!("path = \"{}\"\n", plugin_wasm(f).display())).unwrap_or_default();
    format!("[[plugins]]\nname = \"{name}\"\n{path}{extra}\n")
}

fn value(message: &OwnedMessage) -> Value {
    serde_json::from_slice(message.payload().expect("a value")).expect("JSON")
}

/// The JSON of a Confluent-framed JSON Schema record.
fn framed_value(message: &OwnedMessage) -> Value {
    let payload = message.payload().expect("a value");
    assert_eq!(payload[0], 0, "Confluent magic byte");
    serde_json::from_slice(&payload[5..]).expect("JSON")
}

fn headers(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn create(topics: &[&str]) -> anyhow::Result<()> {
    for topic in topics {
        Kafka::shared().create_topic(topic, 1, &[]).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_action_reaches_kafka_as_the_plugins_decided() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let orders = unique_name("orders");
    let (dlq, acme, globex) = (format!("{orders}-dlq"), format!("{orders}.acme"), format!("{orders}.globex"));
    create(&[&orders, &dlq, &acme, &globex]).await?;
    let config = format!(
        "[plugin_host]\ntopic = \"{store}\"\n\n{filter}{rules}{enrich}{router}\
         [[topics]]\nname = \"{orders}\"\nformat = \"json\"\nkey = \"/order_id\"\n\
         plugins = [\"filter\", \"rules\", \"enrich\", \"tenant-router\"]\ndead_letter_topic = \"{dlq}\"\n\n\
         [[topics]]\nname = \"{acme}\"\nformat = \"json-schema\"\nkey = \"/order_id\"\n\n\
         [[topics]]\nname = \"{globex}\"\nformat = \"json\"\n",
        store = unique_name("_plugins"),
        filter = declare("filter", Some("filter"), ""),
        rules = declare("rules", Some("rules"), ""),
        enrich = declare("enrich", Some("enrich"), ""),
        router = declare("tenant-router", Some("tenant-router"), ""),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let acme_schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "required": ["order_id", "tenant", "total_cents", "ingested_at"],
        "properties": {"order_id": {"type": "string"}, "tenant": {"const": "acme"}, "total_cents": {"type": "integer"},
                       "ingested_at": {"type": "string", "format": "date-time"}, "tenants": {"type": "array"}}
    });
    env.register(&format!("{acme}-value"), "JSON", &acme_schema.to_string()).await?;

    let batch = json!([
        {"order_id": "o-0", "total_cents": 100},
        {"order_id": "o-1", "total_cents": 100, "test": true},
        {"order_id": "o-2", "total_cents": -5},
        {"order_id": "o-3", "total_cents": 500_000_000},
        {"order_id": "o-4", "total_cents": 1, "tenant": "acme"},
        {"order_id": "o-5", "total_cents": 1, "tenants": ["acme", "globex"]},
        {"order_id": "o-6", "total_cents": "one", "tenant": "acme"},
    ]);
    let reply = env.post(&orders, &batch).await?;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{}", reply.body);
    let results = reply.body["results"].as_array().expect("results").clone();

    // accept, modified by enrich
    assert!(results[0]["offset"].is_i64() && results[0].get("topic").is_none(), "{}", results[0]);
    // drop
    assert_eq!(results[1]["dropped"], json!({"plugin": "filter", "reason": "test event"}));
    // dead-letter
    assert_eq!(results[2]["dead_lettered"], json!({"plugin": "rules", "reason": "negative total_cents"}));
    assert_eq!(results[2]["topic"], dlq);
    // reject
    assert_eq!(results[3]["error"]["type"], "plugin-rejected");
    assert_eq!(results[3]["error"]["plugin"], "rules");
    assert_eq!(results[3]["error"]["message"], "total_cents above 100000000");
    // reroute
    assert_eq!(results[4]["topic"], acme, "{}", results[4]);
    assert!(results[4]["schema_id"].is_u64(), "validated against the target's schema: {}", results[4]);
    // fan-out
    let parts = results[5]["events"].as_array().expect("fanned-out events");
    assert_eq!(
        parts.iter().map(|p| p["topic"].as_str().unwrap()).collect::<Vec<_>>(),
        [acme.as_str(), globex.as_str()]
    );
    assert!(parts.iter().all(|p| p["offset"].is_i64()), "{parts:?}");
    // rerouted, but invalid for the target's schema
    assert_eq!(results[6]["topic"], acme);
    assert_eq!(
        (&results[6]["error"]["type"], &results[6]["error"]["pointer"]),
        (&json!("schema-violation"), &json!("/total_cents"))
    );

    // A request whose only event a plugin rejects is a 422 naming the plugin and the reason.
    let reply = env.post(&orders, &json!({"order_id": "o-7", "total_cents": 500_000_000})).await?;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert_eq!(reply.body["type"], "urn:sluice:problem:plugin-rejected");
    assert_eq!(
        (&reply.body["errors"][0]["plugin"], &reply.body["detail"]),
        (&json!("rules"), &json!("total_cents above 100000000"))
    );

    let stored = consume_all(&env.bootstrap, &orders, 2, Duration::from_secs(5)).await?;
    assert_eq!(stored.len(), 1, "only o-0 stays on the route's topic");
    let o0 = value(&stored[0]);
    assert_eq!((o0["order_id"].as_str(), o0["total_cents"].as_i64()), (Some("o-0"), Some(100)));
    assert!(o0["ingested_at"].as_str().is_some_and(|t| t.ends_with('Z')), "enriched: {o0}");
    assert_eq!(headers(&stored[0])["ingested-at"], o0["ingested_at"].as_str().unwrap());
    assert_eq!(stored[0].key(), Some(&b"o-0"[..]));

    let dead = consume_all(&env.bootstrap, &dlq, 1, WAIT).await?;
    assert_eq!(value(&dead[0]), batch[2], "the original JSON, as received");
    let dlq_headers = headers(&dead[0]);
    assert_eq!(dlq_headers["dlq-reason"], "negative total_cents");
    assert_eq!(dlq_headers["dlq-plugin"], "rules");
    assert_eq!(dlq_headers["dlq-original-topic"], orders);
    let millis: i64 = dlq_headers["dlq-timestamp"].parse()?;
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - millis).abs() < 600_000, "epoch milliseconds");

    let acme_records = consume_all(&env.bootstrap, &acme, 2, WAIT).await?;
    let ids: Vec<String> =
        acme_records.iter().map(|m| framed_value(m)["order_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["o-4", "o-5"]);
    let globex_records = consume_all(&env.bootstrap, &globex, 1, WAIT).await?;
    assert_eq!(value(&globex_records[0])["order_id"], "o-5");
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_plugins_are_stopped_and_the_gateway_keeps_serving() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let names = ["infinite-loop", "memory-bomb", "panic", "oversized-output", "wrong-count"];
    let plain = unique_name("plain");
    let dlq = unique_name("hostile-dlq");
    let topics: Vec<String> = names.iter().map(|n| unique_name(n)).collect();
    create(&topics.iter().map(String::as_str).chain([plain.as_str(), dlq.as_str()]).collect::<Vec<_>>()).await?;
    let mut config = format!("[plugin_host]\ntopic = \"{}\"\n\n", unique_name("_plugins"));
    for name in names {
        // Only the loop is about time; the others get long enough to reach their own limit in
        // an unoptimised test build.
        let timeout = if name == "infinite-loop" { 100 } else { 5000 };
        config +=
            &declare(name, Some(name), &format!("timeout_ms = {timeout}\nmemory_mb = 32\nmax_output_bytes = 1048576"));
    }
    let policies = ["reject", "dead-letter", "pass", "reject", "reject"];
    for ((name, topic), policy) in names.iter().zip(&topics).zip(policies) {
        config += &format!(
            "[[topics]]\nname = \"{topic}\"\nformat = \"json\"\nplugins = [\"{name}\"]\non_plugin_error = \"{policy}\"\ndead_letter_topic = \"{dlq}\"\n\n"
        );
    }
    config += &format!("[[topics]]\nname = \"{plain}\"\nformat = \"json\"\n");
    let env = Env::start(RegistryKind::Embedded, &config).await?;

    let batch = json!([{"n": 1}, {"n": 2}]);
    for round in 0..2 {
        // Each hostile route, then an ordinary one, in the same gateway.
        for ((name, topic), policy) in names.iter().zip(&topics).zip(policies) {
            let started = std::time::Instant::now();
            let reply = env.post(topic, &batch).await?;
            let what = format!("round {round}, {name} ({policy}): {} {}", reply.status, reply.body);
            assert!(started.elapsed() < Duration::from_secs(10), "{what}: took {:?}", started.elapsed());
            match policy {
                "reject" => {
                    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{what}");
                    assert_eq!(reply.body["errors"][0]["type"], "plugin-failed", "{what}");
                    assert_eq!(reply.body["errors"][0]["plugin"], *name, "{what}");
                    let message = reply.body["errors"][0]["message"].as_str().unwrap_or_default();
                    let expected = match *name {
                        "infinite-loop" => "100 ms limit",
                        "oversized-output" => "over its limit",
                        "wrong-count" => "1 decisions for 2 events",
                        _ => "",
                    };
                    assert!(message.contains(expected), "{what}");
                }
                "dead-letter" => {
                    assert_eq!(reply.status, StatusCode::OK, "{what}");
                    let reason = reply.body["results"][0]["dead_lettered"]["reason"].as_str().unwrap_or_default();
                    assert!(reason.contains("memory"), "{what}");
                }
                _ => {
                    assert_eq!(reply.status, StatusCode::OK, "{what}");
                    assert!(reply.body["results"][1]["offset"].is_i64(), "pass: stored as sent: {what}");
                }
            }
            let ok = env.post(&plain, &json!({"still": "served", "after": name})).await?;
            assert_eq!(ok.status, StatusCode::OK, "the plain route after {name}: {}", ok.body);
        }
    }
    assert_eq!(consume_all(&env.bootstrap, &dlq, 4, WAIT).await?.len(), 4, "both rounds of the memory bomb's batch");
    assert_eq!(consume_all(&env.bootstrap, &topics[2], 4, WAIT).await?.len(), 4, "both rounds passed the panic");
    env.gateway.stop().await?;
    Ok(())
}

struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await?;
        Ok((response.status(), response.json().await.unwrap_or(Value::Null)))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_versions_are_uploaded_swapped_rolled_back_and_kept_across_restarts() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("profiles");
    create(&[&topic]).await?;
    let token = "test-admin-token-0123456789";
    let config = format!(
        "[plugin_host]\ntopic = \"{store}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n{transform}\
         [[topics]]\nname = \"{topic}\"\nformat = \"json\"\nplugins = [\"transform\"]\n",
        store = unique_name("_plugins"),
        transform = declare("transform", None, ""),
    );
    let event = json!({"email": "alice@example.com"});
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let admin_addr = env.gateway.admin_addr().expect("admin listener");
    let admin = AdminClient { http: env.http.clone(), base: format!("http://{admin_addr}"), token: token.into() };

    // Nothing uploaded yet: the plugin is unavailable (not skipped), and the route's policy
    // (reject) answers; asking again once it is uploaded may succeed.
    let reply = env.post(&topic, &event).await?;
    assert_eq!(
        (reply.status, &reply.body["errors"][0]["type"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("plugin-unavailable"))
    );

    // No token, a wrong token.
    let anonymous = env.http.get(format!("{}/admin/plugins", admin.base)).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = env
        .http
        .put(format!("{}/admin/plugins/transform", admin.base))
        .bearer_auth("guess")
        .body(vec![0u8])
        .send()
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // Invalid uploads say what is wrong.
    let (status, body) = admin.call(reqwest::Method::PUT, "/admin/plugins/transform", Some(b"hello".to_vec())).await?;
    assert_eq!(
        (status, &body["type"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("urn:sluice:problem:invalid-plugin"))
    );
    assert!(body["detail"].as_str().unwrap().contains("not a WebAssembly binary"), "{body}");
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (status, body) = admin.call(reqwest::Method::PUT, "/admin/plugins/transform", Some(core_module)).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = admin.call(reqwest::Method::PUT, "/admin/plugins/undeclared", Some(b"\0asm".to_vec())).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A second replica, sharing the store.
    let replica = Env::start(RegistryKind::Embedded, &config).await?;

    // Upload redact: the next request uses it, with no restart.
    let redact = std::fs::read(plugin_wasm("redact"))?;
    let (status, body) = admin.call(reqwest::Method::PUT, "/admin/plugins/transform", Some(redact)).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let redact_version = body["version"]["version"].as_str().unwrap().to_owned();
    assert_eq!(env.post(&topic, &event).await?.status, StatusCode::OK);

    // The other replica swaps to the uploaded version as soon as it reads it from Kafka.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = replica.post(&topic, &json!({"probe": true})).await?;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "not loaded yet: {}", reply.body);
        assert!(std::time::Instant::now() < deadline, "the second replica never loaded the uploaded version");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica.gateway.stop().await?;

    // Upload enrich on top, then roll back to redact.
    let enrich = std::fs::read(plugin_wasm("enrich"))?;
    let (status, body) = admin.call(reqwest::Method::PUT, "/admin/plugins/transform", Some(enrich)).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let enrich_version = body["version"]["version"].as_str().unwrap().to_owned();
    assert_eq!(env.post(&topic, &event).await?.status, StatusCode::OK);
    let (_, status_body) = admin.call(reqwest::Method::GET, "/admin/plugins/transform", None).await?;
    assert_eq!((&status_body["active"], &status_body["history"]), (&json!(enrich_version), &json!([redact_version])));
    let (status, body) = admin.call(reqwest::Method::POST, "/admin/plugins/transform/rollback", None).await?;
    assert_eq!((status, &body["active"]), (StatusCode::OK, &json!(redact_version)), "{body}");
    assert_eq!(env.post(&topic, &event).await?.status, StatusCode::OK);

    let records = consume_all(&env.bootstrap, &topic, 4, WAIT).await?;
    let values: Vec<Value> = records.iter().map(value).filter(|v| v.get("probe").is_none()).collect();
    assert_eq!(values[0], json!({"email": "a***@example.com"}), "redact");
    assert!(values[1]["ingested_at"].is_string() && values[1]["email"] == "alice@example.com", "enrich: {}", values[1]);
    assert_eq!(values[2], json!({"email": "a***@example.com"}), "redact again after the rollback");

    // A restarted gateway runs the active version from the store.
    let store_topic = config.lines().find_map(|l| l.strip_prefix("topic = ")).unwrap().trim_matches('"').to_owned();
    env.gateway.stop().await?;
    let restarted = Env::start(RegistryKind::Embedded, &config).await?;
    assert_eq!(restarted.post(&topic, &event).await?.status, StatusCode::OK);
    let records = consume_all(&restarted.bootstrap, &topic, 5, WAIT).await?;
    assert_eq!(
        value(&records[4]),
        json!({"email": "a***@example.com"}),
        "store {store_topic} kept the rolled-back version"
    );

    // Activating an older version by name works too.
    let addr = restarted.gateway.admin_addr().expect("admin listener");
    let admin = AdminClient { http: restarted.http.clone(), base: format!("http://{addr}"), token: token.into() };
    let (status, body) = admin
        .call(reqwest::Method::POST, &format!("/admin/plugins/transform/versions/{enrich_version}/activate"), None)
        .await?;
    assert_eq!((status, &body["active"]), (StatusCode::OK, &json!(enrich_version)), "{body}");
    let (status, _) =
        admin.call(reqwest::Method::POST, "/admin/plugins/transform/versions/0000/activate", None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    restarted.gateway.stop().await?;
    Ok(())
}
