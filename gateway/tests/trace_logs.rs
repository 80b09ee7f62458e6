//! Log lines join traces: what the gateway logs about a produce request, or about delivering
//! an event, carries the W3C trace id the producer sent (`trace_id=…` from the request's
//! `traceparent`, carried in the record's headers to the delivery), and nothing when there was
//! none. The real `sluice` binary (its log file is what an operator reads), the harness's Kafka
//! and a real HTTP receiver.

use std::time::Duration;

use serde_json::json;
use sluice_tests::receiver::{Behaviour, Receiver};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice");
const SCHEMA: &str = include_str!("../../deploy/examples/schemas/order-placed-v1.avsc");
const PATH: &str = "hooks/failing";
const WAIT: Duration = Duration::from_secs(60);

/// A trace id and the `traceparent` that carries it.
fn trace(id: &str) -> (String, String) {
    (id.to_owned(), format!("00-{id}-00f067aa0ba902b7-01"))
}

/// The log lines containing `text`, once there are at least `count` (the log is written as
/// things happen).
async fn lines_with(gateway: &GatewayProcess, text: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(gateway.log())?;
        let found: Vec<String> = log.lines().filter(|l| l.contains(text)).map(str::to_owned).collect();
        if found.len() >= count {
            return Ok(found);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "not {count} log lines with {text:?} in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_about_a_request_or_a_delivery_carry_its_trace_id() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let kafka = Kafka::shared();
    let (orders, unregistered) = (unique_name("traced"), unique_name("traced-no-schema"));
    let dlq = format!("{orders}-dlq");
    for topic in [&orders, &unregistered, &dlq] {
        kafka.create_topic(topic, 1, &[]).await?;
    }
    let receiver = Receiver::start().await?;
    receiver.set(PATH, Behaviour::Always(500));
    let config = format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"

[registry]
url = "embedded"
topic = "{registry}"

[delivery]
topic = "{subscriptions}"
allow_networks = ["127.0.0.0/8"]

[[topics]]
name = "{orders}"
format = "avro"
key = "/order_id"

[[topics]]
name = "{unregistered}"
format = "avro"

[[subscriptions]]
name = "{subscription}"
topics = ["{orders}"]
url = "{url}"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
start = "earliest"
dead_letter_topic = "{dlq}"
retry = {{ max_attempts = 2, initial_backoff_ms = 10, max_backoff_ms = 10 }}
"#,
        bootstrap = kafka.bootstrap_servers(),
        registry = unique_name("_schemas"),
        subscriptions = unique_name("_subscriptions"),
        subscription = unique_name("traced"),
        url = receiver.url(PATH),
    );
    let gateway = GatewayProcess::start("sluice", BINARY, &config).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let registered = http
        .post(format!("{}/registry/subjects/{orders}-value/versions", gateway.base()))
        .json(&json!({ "schema": SCHEMA }))
        .send()
        .await?;
    assert!(registered.status().is_success(), "registering: {}", registered.text().await?);

    // A request refused for a missing schema: its warning names the request's trace.
    let (refused_trace, traceparent) = trace("0af7651916cd43dd8448eb211c80319c");
    let event = json!({"order_id": "o-1", "customer_id": "c-1", "total_cents": 1, "currency": "EUR", "placed_at": 1});
    let url = |topic: &str| format!("{}/v1/topics/{topic}/events", gateway.base());
    let refused = http.post(url(&unregistered)).header("traceparent", &traceparent).json(&event).send().await?;
    assert_eq!(refused.status(), 503, "{}", refused.text().await?);
    let warnings = lines_with(&gateway, "refusing a produce request", 1).await?;
    assert!(warnings[0].contains(&refused_trace), "no trace id in {warnings:#?}");
    // The same refusal without a trace: logged without one.
    let untraced = http.post(url(&unregistered)).json(&event).send().await?;
    assert_eq!(untraced.status(), 503);
    let warnings = lines_with(&gateway, "refusing a produce request", 2).await?;
    assert!(!warnings[1].contains("trace_id"), "{warnings:#?}");

    // An event whose subscriber always fails: every attempt and the dead-lettering name its trace.
    let (event_trace, traceparent) = trace("4bf92f3577b34da6a3ce929d0e0e4736");
    let stored = http.post(url(&orders)).header("traceparent", &traceparent).json(&event).send().await?;
    assert_eq!(stored.status(), 200, "{}", stored.text().await?);
    let dead_lettered = lines_with(&gateway, "event dead-lettered", 1).await?;
    assert!(dead_lettered[0].contains(&event_trace), "{dead_lettered:#?}");
    let attempts = lines_with(&gateway, "delivery attempt failed", 2).await?;
    assert_eq!(attempts.len(), 2, "max_attempts = 2: {attempts:#?}");
    assert!(attempts.iter().all(|l| l.contains(&event_trace)), "{attempts:#?}");
    Ok(())
}
