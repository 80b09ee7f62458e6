//! The gateway against a secured Kafka, configured through the typed `[kafka]` settings:
//! - SASL with `PLAIN` and with `SCRAM-SHA-256` credentials; wrong credentials are refused with
//!   a clear error instead of a hang;
//! - TLS, verifying the broker's certificate against a CA file (and refusing a broker whose
//!   certificate that CA did not sign).
//!
//! Everything the gateway does in Kafka (produce, the embedded registry, the subscriptions
//! store) goes through the secured listener.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use sluice_tests::{Kafka, SASL_USERS, unique_name};
use support::{Env, RegistryKind, order, record_count, route};

/// Starts a gateway that must refuse to start, within a bound; its error, lower-cased.
async fn refused_start(bootstrap: &str, topic: &str, kafka_section: &str) -> String {
    let started = tokio::time::timeout(
        Duration::from_secs(120),
        Env::start_on(RegistryKind::Embedded, bootstrap, &route(topic, "json", None), kafka_section, None),
    )
    .await
    .expect("a gateway that cannot use Kafka's security settings gives up instead of hanging");
    let error = started.err().expect("such a gateway must not start");
    format!("{error:#}").to_lowercase()
}

fn sasl_section(mechanism: &str, user: &str, password: &str) -> String {
    format!(
        "security_protocol = \"sasl_plaintext\"\n\
         sasl = {{ mechanism = \"{mechanism}\", username = \"{user}\", password = \"{password}\" }}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_produces_through_sasl_plain_and_scram() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let kafka = Kafka::start_with_sasl().await?;
    let sasl = kafka.secured_bootstrap_servers().expect("a SASL listener");
    let topic = unique_name("sasl");
    kafka.create_topic(&topic, 1, &[]).await?;

    for (mechanism, (user, password)) in [("PLAIN", SASL_USERS[0]), ("SCRAM-SHA-256", SASL_USERS[1])] {
        let section = sasl_section(mechanism, user, password);
        let env =
            Env::start_on(RegistryKind::Embedded, &sasl, &route(&topic, "json", Some("/order_id")), &section, None)
                .await?;
        let reply = env.post(&topic, &order(mechanism)).await?;
        assert_eq!(reply.status, StatusCode::OK, "{mechanism}: {}", reply.body);
        let ready = env.http.get(format!("{}/readyz", env.base)).send().await?;
        assert_eq!(ready.status(), StatusCode::OK, "{mechanism}");
    }
    // Both records are in the topic (read through the plain listener).
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 2);

    // A wrong password does not get a gateway that pretends to work.
    let section = sasl_section("SCRAM-SHA-256", SASL_USERS[1].0, "not-the-password");
    let error = refused_start(&sasl, &topic, &section).await;
    assert!(error.contains("auth"), "{error}");
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 2);
    Ok(())
}

/// A CA (PEM) and a keystore for `localhost` signed by it (key, then certificate).
fn broker_certificate() -> anyhow::Result<(String, String)> {
    let (ca, leaf, key) = support::certificates(&["localhost"])?;
    Ok((ca, format!("{key}{leaf}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_produces_over_tls_and_verifies_the_broker() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let dir = tempfile::tempdir()?;
    let (ca, keystore) = broker_certificate()?;
    std::fs::write(dir.path().join("keystore.pem"), keystore)?;
    std::fs::write(dir.path().join("ca.pem"), ca)?;
    let (other_ca, _) = broker_certificate()?;
    std::fs::write(dir.path().join("other-ca.pem"), other_ca)?;
    let kafka = Kafka::start_with_tls(&dir.path().join("keystore.pem")).await?;
    let tls = kafka.secured_bootstrap_servers().expect("a TLS listener");
    let topic = unique_name("tls");
    kafka.create_topic(&topic, 1, &[]).await?;

    let section =
        |ca: &str| format!("security_protocol = \"ssl\"\ntls = {{ ca_file = \"{}\" }}", dir.path().join(ca).display());
    let env = Env::start_on(
        RegistryKind::Embedded,
        &tls,
        &route(&topic, "json", Some("/order_id")),
        &section("ca.pem"),
        None,
    )
    .await?;
    let reply = env.post(&topic, &order("tls-1")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 1);

    // Trusting another CA, the gateway does not talk to this broker.
    let error = refused_start(&tls, &topic, &section("other-ca.pem")).await;
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(record_count(&kafka.bootstrap_servers(), &topic).await?, 1);
    Ok(())
}
