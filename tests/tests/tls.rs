//! HTTPS end to end: the gateway serves a generated certificate, a client that trusts only that
//! certificate's CA produces over it, and a renewed certificate written over the files is served
//! to new connections without a restart.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sluice_tests::{Kafka, unique_name};
use support::{Env, RegistryKind, order, route};

const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

fn client(ca_pem: &str) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        // Each request on a new connection, so a reloaded certificate is seen at once.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()?)
}

fn write(dir: &Path, cert: &str, key: &str) -> anyhow::Result<()> {
    // Key first: a reload between the two writes sees a pair that does not match and keeps the
    // old one until the next look.
    std::fs::write(dir.join("key.pem"), key)?;
    std::fs::write(dir.join("cert.pem"), cert)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_a_generated_certificate_and_picks_up_a_renewed_one() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("https");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let dir = tempfile::tempdir()?;
    let (first_ca, first_cert, first_key) = support::certificates(&NAMES)?;
    write(dir.path(), &first_cert, &first_key)?;
    let config = format!(
        "[http.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_interval_s = 1\n{}",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display(),
        route(&topic, "json", Some("/order_id")),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let https = format!("https://localhost:{}", env.gateway.addr().port());

    let trusting_first = client(&first_ca)?;
    let produced = trusting_first.post(format!("{https}/v1/topics/{topic}/events")).json(&order("s-1")).send().await?;
    assert_eq!(produced.status(), StatusCode::OK);
    let body: serde_json::Value = produced.json().await?;
    assert_eq!(body["results"][0]["offset"], 0, "{body}");
    // Plain HTTP on the same port is not served.
    let plain =
        reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", env.gateway.addr().port())).send().await;
    assert!(plain.map_or(true, |r| r.status() != StatusCode::OK), "plain HTTP answered on the HTTPS listener");

    // A renewed certificate from another CA: new connections get it, without a restart.
    let (second_ca, second_cert, second_key) = support::certificates(&NAMES)?;
    write(dir.path(), &second_cert, &second_key)?;
    let trusting_second = client(&second_ca)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match trusting_second.get(format!("{https}/healthz")).send().await {
            Ok(response) if response.status() == StatusCode::OK => break,
            _ if Instant::now() < deadline => {
                // The next reload is at most a second away; wait for it instead of spinning.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("the renewed certificate was not served within 30 s: {other:?}"),
        }
    }
    assert!(
        trusting_first.get(format!("{https}/healthz")).send().await.is_err(),
        "the old certificate is still served"
    );
    Ok(())
}
