//! `GET /metrics` after real traffic: produce (stored, refused, a plugin that counts), webhook
//! deliveries (delivered, failing into the dead letter topic), and the counters, histograms and
//! gauges that must show it, with their exact values.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sluice_tests::receiver::{Behaviour, Receiver};
use sluice_tests::{Kafka, plugin_wasm, unique_name};
use support::{Env, ORDER_PLACED, RegistryKind, order, route};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The samples of an OpenMetrics text: `name{labels}` → value.
async fn scrape(env: &Env) -> anyhow::Result<HashMap<String, f64>> {
    let response = env.http.get(format!("{}/metrics", env.base)).send().await?;
    anyhow::ensure!(response.status() == StatusCode::OK, "metrics answered {}", response.status());
    let content_type = response.headers()["content-type"].to_str()?.to_owned();
    anyhow::ensure!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.text().await?;
    anyhow::ensure!(text.trim_end().ends_with("# EOF"), "an OpenMetrics document ends with # EOF");
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(key, value)| value.parse().ok().map(|v| (key.to_owned(), v)))
        .collect())
}

fn get(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_the_gateway_did() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("metrics");
    let (dlq, down_dlq, trapped) = (format!("{topic}-dlq"), format!("{topic}-down-dlq"), format!("{topic}-trapped"));
    for (name, partitions) in [(&topic, 1), (&dlq, 1), (&down_dlq, 1), (&trapped, 1)] {
        Kafka::shared().create_topic(name, partitions, &[]).await?;
    }
    let config = format!(
        "[plugin_host]\ntopic = \"{}\"\n[[plugins]]\nname = \"redact\"\npath = \"{}\"\n\
         [[plugins]]\nname = \"panic\"\npath = \"{}\"\n\
         {}plugins = [\"redact\"]\n{}plugins = [\"panic\"]\n",
        unique_name("_plugins"),
        plugin_wasm("redact").display(),
        plugin_wasm("panic").display(),
        route(&topic, "avro", Some("/order_id")),
        route(&trapped, "json", None),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    env.register(&format!("{topic}-value"), "AVRO", ORDER_PLACED).await?;
    let before = scrape(&env).await?;

    // Three stored (one with an address for redact to mask), one refused.
    let mut masked = order("m-2");
    masked["customer_id"] = json!("bob@example.com");
    let mut wrong = order("m-4");
    wrong["total_cents"] = json!("lots");
    let reply = env.post(&topic, &json!([order("m-1"), masked, order("m-3"), wrong])).await?;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{}", reply.body);

    // A plugin that traps: the request is refused and the failure counted by kind.
    let reply = env.post(&trapped, &json!([order("m-5")])).await?;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);

    // One subscription that succeeds, one that always fails into its dead letter topic.
    let receiver = Receiver::start().await?;
    receiver.set("down", Behaviour::Always(500));
    for (name, dead_letter_topic) in [("ok", &dlq), ("down", &down_dlq)] {
        let body = json!({
            "name": name, "topics": [topic], "url": receiver.url(name), "secrets": [SECRET], "start": "earliest",
            "dead_letter_topic": dead_letter_topic,
            "retry": {"max_attempts": 2, "initial_backoff_ms": 20, "max_backoff_ms": 20},
        });
        let response = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await?);
    }

    let t = &topic;
    let samples = eventually(&env, |s| {
        get(s, r#"sluice_delivery_outcomes_total{subscription="ok",outcome="delivered"}"#) >= 3.0
            && get(s, r#"sluice_delivery_outcomes_total{subscription="down",outcome="dead_lettered"}"#) >= 3.0
            && s.contains_key(&format!(r#"sluice_consumer_lag{{subscription="ok",topic="{t}",partition="0"}}"#))
    })
    .await?;
    let delta = |key: &str| get(&samples, key) - get(&before, key);

    assert_eq!(get(&samples, &format!(r#"sluice_events_total{{topic="{t}",outcome="produced"}}"#)), 3.0);
    assert_eq!(get(&samples, &format!(r#"sluice_events_refused_total{{topic="{t}",type="schema-violation"}}"#)), 1.0);
    assert_eq!(
        delta(r#"sluice_http_requests_total{route="/v1/topics/{topic}/events",method="POST",status="207"}"#),
        1.0
    );
    assert_eq!(delta(r#"sluice_http_requests_total{route="/v1/subscriptions",method="POST",status="201"}"#), 2.0);
    assert!(
        delta(r#"sluice_http_request_duration_seconds_count{route="/v1/topics/{topic}/events",method="POST"}"#) >= 1.0
    );

    let version = samples
        .keys()
        .find_map(|k| k.strip_prefix(r#"sluice_plugin_calls_total{plugin="redact",version=""#))
        .and_then(|rest| rest.split('"').next())
        .expect("redact's calls are counted");
    let plugin = format!(r#"plugin="redact",version="{version}""#);
    assert_eq!(get(&samples, &format!(r#"sluice_plugin_calls_total{{{plugin},hook="produce"}}"#)), 1.0, "one batch");
    let timed = get(&samples, &format!(r#"sluice_plugin_call_duration_seconds_count{{{plugin}}}"#));
    assert!(timed >= 2.0, "describe and produce are timed: {timed}");
    assert_eq!(get(&samples, r#"sluice_plugin_counter_total{plugin="redact",name="masked"}"#), 1.0);
    let failures: Vec<(&String, &f64)> =
        samples.iter().filter(|(k, _)| k.starts_with(r#"sluice_plugin_failures_total{plugin="panic""#)).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].0.ends_with(r#",kind="trap"}"#) && *failures[0].1 == 1.0, "{failures:?}");

    assert_eq!(get(&samples, r#"sluice_delivery_attempts_total{subscription="ok",status="200"}"#), 3.0);
    assert_eq!(get(&samples, r#"sluice_delivery_outcomes_total{subscription="ok",outcome="delivered"}"#), 3.0);
    assert_eq!(get(&samples, r#"sluice_delivery_attempts_total{subscription="down",status="500"}"#), 6.0, "2 × 3");
    assert_eq!(get(&samples, r#"sluice_delivery_outcomes_total{subscription="down",outcome="dead_lettered"}"#), 3.0);
    assert_eq!(get(&samples, r#"sluice_delivery_duration_seconds_count{subscription="ok"}"#), 3.0);

    assert!(delta(r#"sluice_registry_cache_lookups_total{lookup="subject",result="miss"}"#) >= 1.0);
    assert!(delta(r#"sluice_registry_cache_lookups_total{lookup="id",result="hit"}"#) >= 1.0);
    assert!(samples.contains_key("sluice_producer_queue"), "the producer queue depth is exported");

    // Lag drops to 0 once everything is committed.
    let samples = eventually(&env, |s| {
        get(s, &format!(r#"sluice_consumer_lag{{subscription="ok",topic="{t}",partition="0"}}"#)) == 0.0
            && get(s, &format!(r#"sluice_consumer_lag{{subscription="down",topic="{t}",partition="0"}}"#)) == 0.0
    })
    .await?;
    // After all that traffic, every metric the dashboard shows has samples.
    for name in dashboard_metrics()? {
        assert!(
            samples.keys().any(|key| key.split('{').next() == Some(name.as_str())),
            "the dashboard queries {name}, which the gateway does not export"
        );
    }
    env.gateway.stop().await?;
    Ok(())
}

/// The metric names the Grafana dashboard in deploy/ queries, in panels and variables.
fn dashboard_metrics() -> anyhow::Result<Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/sluice-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let panels = dashboard["panels"].as_array().into_iter().flatten();
    let targets = panels.flat_map(|panel| panel["targets"].as_array().into_iter().flatten());
    let variables = dashboard["templating"]["list"].as_array().into_iter().flatten();
    let expressions =
        targets.filter_map(|t| t["expr"].as_str()).chain(variables.filter_map(|v| v["definition"].as_str()));
    let mut names = Vec::new();
    for expression in expressions {
        let mut rest = expression;
        while let Some(start) = rest.find("sluice_") {
            let name: String = rest[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[start + name.len()..];
            names.push(name);
        }
    }
    anyhow::ensure!(names.len() >= 12, "the dashboard queries only {names:?}");
    names.sort();
    names.dedup();
    Ok(names)
}

/// Scrapes until `done` holds (deliveries and statistics arrive in their own time).
async fn eventually(env: &Env, done: impl Fn(&HashMap<String, f64>) -> bool) -> anyhow::Result<HashMap<String, f64>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let samples = scrape(env).await?;
        if done(&samples) {
            return Ok(samples);
        }
        if tokio::time::Instant::now() > deadline {
            let sluice: Vec<(&String, &f64)> =
                samples.iter().filter(|(k, _)| k.contains("delivery") || k.contains("lag")).collect();
            anyhow::bail!("metrics never got there: {sluice:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
