//! Shared set-up for the gateway's integration tests: a gateway in this process against the
//! harness's real Kafka, with either Apicurio or the embedded registry behind it.

#![allow(dead_code)] // each test binary uses a different part

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sluice::Gateway;
use sluice_tests::{Apicurio, Kafka, python, unique_name};

/// The two kinds of registry every produce test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    Apicurio,
    Embedded,
}

pub const BOTH: [RegistryKind; 2] = [RegistryKind::Apicurio, RegistryKind::Embedded];

pub const ORDER_PLACED: &str = include_str!("../../../deploy/examples/schemas/order-placed-v1.avsc");

/// A running gateway and what it talks to.
pub struct Env {
    pub gateway: Gateway,
    pub base: String,
    pub registry_url: String,
    pub bootstrap: String,
    pub kind: RegistryKind,
    pub http: reqwest::Client,
}

/// A reply to a produce request.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// The TOML of a gateway config for these tests: `routes` is `[[topics]]` text, `extra` any
/// other sections; `registry_section` is filled in from the kind.
pub fn config_text(bootstrap: &str, registry_section: &str, routes: &str, extra_kafka: &str) -> String {
    format!(
        r#"
[http]
listen = "127.0.0.1:0"
max_body_bytes = 65536
max_events_per_request = 500

[kafka]
bootstrap_servers = "{bootstrap}"
delivery_timeout_ms = 4000
{extra_kafka}

{registry_section}

{routes}
"#
    )
}

impl Env {
    /// Starts a gateway on the shared broker; `routes` is `[[topics]]` TOML.
    pub async fn start(kind: RegistryKind, routes: &str) -> anyhow::Result<Self> {
        Self::start_on(kind, &Kafka::shared().bootstrap_servers(), routes, "", None).await
    }

    /// Starts a gateway on a given broker; `registry_topic` pins the embedded registry's topic
    /// (default: a fresh one, so tests do not share registry state).
    pub async fn start_on(
        kind: RegistryKind,
        bootstrap: &str,
        routes: &str,
        extra_kafka: &str,
        registry_topic: Option<&str>,
    ) -> anyhow::Result<Self> {
        let registry_section = match kind {
            RegistryKind::Apicurio => {
                let url = tokio::task::spawn_blocking(|| Apicurio::shared().ccompat_url()).await?;
                format!("[registry]\nurl = \"{url}\"\ncache_ttl_ms = 500")
            }
            RegistryKind::Embedded => {
                let topic = registry_topic.map_or_else(|| unique_name("_sluice_schemas"), str::to_owned);
                format!("[registry]\nurl = \"embedded\"\ntopic = \"{topic}\"\ncache_ttl_ms = 500")
            }
        };
        // Each gateway keeps its subscriptions apart from other tests' unless told otherwise.
        let delivery = if routes.contains("[delivery]") {
            String::new()
        } else {
            format!("[delivery]\ntopic = \"{}\"\nallow_networks = [\"127.0.0.0/8\"]\n", unique_name("_subscriptions"))
        };
        // Gateways in one test process share a host name: each needs its own transactional ids.
        let exactly_once = if routes.contains("[exactly_once]") {
            String::new()
        } else {
            format!("[exactly_once]\nreplica_id = \"{}\"\n", unique_name("replica"))
        };
        let text =
            config_text(bootstrap, &registry_section, &format!("{delivery}\n{exactly_once}\n{routes}"), extra_kafka);
        let config = sluice::config::load_str(&text, |_| None)
            .map_err(|problems| anyhow::anyhow!("test config refused: {problems:?}\n{text}"))?;
        let gateway = Gateway::start(config).await?;
        let base = format!("http://{}", gateway.addr());
        let registry_url = match kind {
            RegistryKind::Apicurio => tokio::task::spawn_blocking(|| Apicurio::shared().ccompat_url()).await?,
            RegistryKind::Embedded => format!("{base}/registry"),
        };
        Ok(Self {
            gateway,
            base,
            registry_url,
            bootstrap: bootstrap.to_owned(),
            kind,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        })
    }

    /// Registers a schema through the registry's Confluent API and returns its id.
    pub async fn register(&self, subject: &str, schema_type: &str, schema: &str) -> anyhow::Result<u32> {
        self.register_with_references(subject, schema_type, schema, json!([])).await
    }

    /// Registers a schema that refers to others (`[{name, subject, version}]`).
    pub async fn register_with_references(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        references: Value,
    ) -> anyhow::Result<u32> {
        let mut body = json!({ "schema": schema, "references": references });
        if schema_type != "AVRO" {
            body["schemaType"] = json!(schema_type);
        }
        let response = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.registry_url))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        if !status.is_success() {
            bail!("registering {subject} failed with {status}: {answer}");
        }
        answer["id"].as_u64().and_then(|id| u32::try_from(id).ok()).context("no id in the answer")
    }

    /// The id the registry gives the latest version of a subject.
    pub async fn latest_id(&self, subject: &str) -> anyhow::Result<u32> {
        let answer: Value = self
            .http
            .get(format!("{}/subjects/{subject}/versions/latest", self.registry_url))
            .send()
            .await?
            .json()
            .await?;
        answer["id"].as_u64().and_then(|id| u32::try_from(id).ok()).with_context(|| format!("no id in {answer}"))
    }

    /// Posts raw text as JSON to a topic's produce endpoint.
    pub async fn post_raw(
        &self,
        topic: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<Reply> {
        let response = self
            .http
            .post(format!("{}/v1/topics/{topic}/events", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .with_context(|| format!("answer {status} is not JSON: {}", String::from_utf8_lossy(&bytes)))?;
        Ok(Reply { status, headers, body })
    }

    pub async fn post(&self, topic: &str, events: &Value) -> anyhow::Result<Reply> {
        self.post_raw(topic, "application/json", events.to_string()).await
    }

    /// Reads `count` records back with Confluent's Python client and deserializer.
    pub async fn decode_independently(&self, topic: &str, format: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        independent_decode(&self.bootstrap, topic, &self.registry_url, format, count).await
    }
}

/// Runs `tests/python/decode.py` and parses its JSON lines.
pub async fn independent_decode(
    bootstrap: &str,
    topic: &str,
    registry_url: &str,
    format: &str,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    python_lines("decode.py", &[bootstrap, topic, registry_url, format, &count.to_string()]).await
}

/// Reads `count` whole records with Confluent's Python client (`tests/python/read_records.py`):
/// keys and values deserialized through the registry when framed, headers, partitions.
pub async fn read_records(
    bootstrap: &str,
    topic: &str,
    registry_url: &str,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    python_lines("read_records.py", &[bootstrap, topic, registry_url, &count.to_string()]).await
}

/// Reads `count` records as CloudEvents with the CloudEvents SDK's Kafka binding
/// (`tests/python/read_cloudevents.py`): `{"attributes", "data"}` each.
pub async fn read_cloudevents(
    bootstrap: &str,
    topic: &str,
    registry_url: &str,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    python_lines("read_cloudevents.py", &[bootstrap, topic, registry_url, &count.to_string()]).await
}

/// Runs a script of `tests/python` in the harness's venv and parses the JSON line it prints per
/// record.
pub async fn python_lines(script: &str, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let python = python().await?;
    let path = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(python);
    command.arg(path).args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        bail!(
            "{script} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout)?
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("bad line from {script}: {line}")))
        .collect()
}

/// How many records of a topic a `read_committed` consumer sees.
pub async fn record_count(bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    let records = sluice_tests::read_to_end(bootstrap, topic, sluice_tests::Isolation::ReadCommitted).await?;
    Ok(i64::try_from(records.len())?)
}

/// An `OrderPlaced` event as a client would send it.
pub fn order(id: &str) -> Value {
    json!({
        "order_id": id,
        "customer_id": "c-42",
        "total_cents": 1999,
        "currency": "EUR",
        "placed_at": 1_795_773_600_123_i64
    })
}

/// An `[[topics]]` entry.
pub fn route(name: &str, format: &str, key: Option<&str>) -> String {
    let key = key.map(|k| format!("key = \"{k}\"\n")).unwrap_or_default();
    format!("[[topics]]\nname = \"{name}\"\nformat = \"{format}\"\n{key}")
}

/// A fresh CA and a leaf certificate for `names` signed by it: `(CA PEM, leaf PEM, leaf key
/// PEM)` (the key is unencrypted PKCS#8). Each has a name of its own: OpenSSL takes a leaf whose
/// subject equals its issuer's for self-signed.
pub fn certificates(names: &[&str]) -> anyhow::Result<(String, String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Sluice test CA");
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    leaf.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("localhost"));
    let leaf_pem = leaf.signed_by(&key, &issuer)?.pem();
    Ok((ca_pem, leaf_pem, key.serialize_pem()))
}
