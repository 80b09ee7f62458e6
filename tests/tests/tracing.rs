//! One trace from the producer's request, through the Kafka record, to the subscriber: the
//! W3C `traceparent` a client sends is continued in the record's headers and in the webhook
//! request, and Sluice's own spans reach an OTLP/HTTP collector (a real HTTP receiver here).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sluice_tests::receiver::{Received, Receiver};
use sluice_tests::{Kafka, consume_all, unique_name};
use support::{Env, RegistryKind, order, route};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// `(trace id, parent span id)` of a `traceparent` value.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "not a traceparent: {traceparent}");
    assert_eq!((fields[0], fields[3]), ("00", "01"), "{traceparent}");
    (fields[1].to_owned(), fields[2].to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the exported span batches so far hold a span named `name` in the trace.
fn exported(batches: &[Received], name: &str) -> bool {
    batches.iter().any(|batch| {
        let body = &batch.body[..];
        let trace =
            (0..16).map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap_or(0)).collect::<Vec<_>>();
        body.windows(16).any(|w| w == trace.as_slice()) && body.windows(name.len()).any(|w| w == name.as_bytes())
    })
}

/// Subscribes the receiver's `/hook` to a topic from its start.
async fn subscribe(env: &Env, name: &str, topic: &str, receiver: &Receiver) -> anyhow::Result<()> {
    let subscription = json!({
        "name": name, "topics": [topic], "url": receiver.url("hook"), "secrets": [SECRET],
        "start": "earliest", "dead_letter_topic": format!("{topic}.dlq"),
    });
    let created = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&subscription).send().await?;
    anyhow::ensure!(created.status() == StatusCode::CREATED, "subscribing: {}", created.text().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_the_request_the_record_and_the_webhook() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("traced");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let receiver = Receiver::start().await?;
    let config = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"sluice-test\"\n{}",
        receiver.url("v1/traces"),
        route(&topic, "json", Some("/order_id"))
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    subscribe(&env, "traced", &topic, &receiver).await?;

    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let response = env
        .http
        .post(format!("{}/v1/topics/{topic}/events", env.base))
        .header("traceparent", &incoming)
        .json(&order("t-1"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);

    // The record carries the trace, under the gateway's produce span.
    let records = consume_all(&env.bootstrap, &topic, 1, WAIT).await?;
    let headers = {
        use rdkafka::message::{Headers as _, Message as _};
        let headers = records[0].headers().expect("record headers");
        headers
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
            .collect::<Vec<_>>()
    };
    let in_kafka =
        headers.iter().find(|(key, _)| key == "traceparent").map(|(_, v)| v.clone()).expect("traceparent header");
    let (trace_id, produce_span) = parts(&in_kafka);
    assert_eq!(trace_id, TRACE_ID);
    assert_ne!(produce_span, CALLER_SPAN, "the gateway's own span is the record's parent");

    // The webhook request continues it, under the delivery attempt's span.
    let hooks = receiver.wait_until("hook", WAIT, |r| !r.is_empty()).await;
    assert_eq!(hooks.len(), 1);
    let (trace_id, delivery_span) = parts(hooks[0].header("traceparent"));
    assert_eq!(trace_id, TRACE_ID);
    assert!(delivery_span != produce_span && delivery_span != CALLER_SPAN, "{delivery_span}");

    // Both spans reach the collector, in the same trace.
    let publish = format!("{topic} publish");
    let batches =
        receiver.wait_until("v1/traces", WAIT, |b| exported(b, &publish) && exported(b, "deliver traced")).await;
    assert!(exported(&batches, &publish), "no produce span among {} export(s)", batches.len());
    assert!(exported(&batches, "deliver traced"), "no delivery span among {} export(s)", batches.len());
    let produce_span_bytes: Vec<u8> =
        (0..8).map(|i| u8::from_str_radix(&produce_span[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
    assert!(
        batches.iter().any(|b| b.body.windows(8).any(|w| w == produce_span_bytes.as_slice())),
        "the exported produce span has the id the record names ({produce_span}); got {}",
        batches.iter().map(|b| hex(&b.body)).collect::<Vec<_>>().join(" ")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_exporter_the_callers_traceparent_passes_through_unchanged() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("untraced");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let receiver = Receiver::start().await?;
    let env = Env::start(RegistryKind::Embedded, &route(&topic, "json", None)).await?;
    subscribe(&env, "plain", &topic, &receiver).await?;
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let url = format!("{}/v1/topics/{topic}/events", env.base);
    let response = env.http.post(&url).header("traceparent", &incoming).json(&order("t-2")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    // And a request without one adds none.
    assert_eq!(env.http.post(&url).json(&order("t-3")).send().await?.status(), StatusCode::OK);

    let hooks = receiver.wait_until("hook", WAIT, |r| r.len() >= 2).await;
    assert_eq!(hooks.len(), 2);
    let hook = |id: &str| hooks.iter().find(|h| h.json()["order_id"] == id).expect("delivered");
    assert_eq!(hook("t-2").header("traceparent"), incoming);
    assert_eq!(hook("t-3").header("traceparent"), "");
    Ok(())
}
