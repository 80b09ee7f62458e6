//! Webhook deliveries never go through a proxy from the environment: a proxy resolves the
//! subscriber's name itself, past the gateway's address checks (DNS rebinding, internal names).
//! The real `sluice` binary with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` pointing at a
//! receiver that records whatever reaches it.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::receiver::Receiver;
use sluice_tests::{GatewayProcess, Kafka, unique_name};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice");
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_ignore_proxy_environment_variables() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let kafka = Kafka::shared();
    let topic = unique_name("proxied");
    kafka.create_topic(&topic, 1, &[]).await?;
    kafka.create_topic(&format!("{topic}.dlq"), 1, &[]).await?;
    let proxy = Receiver::start().await?;
    let proxy_url = proxy.url("");
    let config = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n\n[registry]\nurl = \"embedded\"\ntopic = \"{}\"\n\n\
         [delivery]\ntopic = \"{}\"\n\n[[topics]]\nname = \"{topic}\"\nformat = \"json\"\n",
        kafka.bootstrap_servers(),
        unique_name("_schemas"),
        unique_name("_subscriptions"),
    );
    let env =
        [("HTTP_PROXY", proxy_url.as_str()), ("HTTPS_PROXY", proxy_url.as_str()), ("ALL_PROXY", proxy_url.as_str())];
    let gateway = GatewayProcess::start_with_env("sluice-proxied", BINARY, &config, &env).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).no_proxy().build()?;
    // A public address (TEST-NET addresses are refused): unreachable from here, so every
    // attempt fails — directly. Through the proxy it would arrive at the receiver.
    let body = json!({
        "name": "proxied", "topics": [topic], "url": "http://93.184.215.14/hook",
        "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "start": "earliest",
        "dead_letter_topic": format!("{topic}.dlq"), "timeout_ms": 500,
        "retry": {"max_attempts": 3, "initial_backoff_ms": 50, "max_backoff_ms": 100},
    });
    let created = http.post(format!("{}/v1/subscriptions", gateway.base())).json(&body).send().await?;
    anyhow::ensure!(created.status().as_u16() == 201, "{}", created.text().await?);
    let produced =
        http.post(format!("{}/v1/topics/{topic}/events", gateway.base())).json(&json!({"n": 1})).send().await?;
    anyhow::ensure!(produced.status().is_success(), "{}", produced.text().await?);
    // Wait until the gateway has tried (and, after three attempts, dead-lettered the event).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status: Value =
            http.get(format!("{}/v1/subscriptions/proxied", gateway.base())).send().await?.json().await?;
        if status["dead_lettered"] == 1 {
            assert!(status["failed_attempts"].as_u64() >= Some(3), "{status}");
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{}",
            gateway.failure(format!("never gave up: {status}"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let through_proxy = proxy.received("hook");
    assert!(through_proxy.is_empty(), "a delivery went through the proxy: {through_proxy:?}");
    Ok(())
}
