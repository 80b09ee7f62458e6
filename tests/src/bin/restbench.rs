//! Confluent REST Proxy's v2 Avro produce, through Sluice and through Karapace's REST proxy, side
//! by side on one broker in one run.
//!
//! Both get the same requests from this process (a closed loop of `--connections` HTTP
//! connections): `POST /topics/{topic}` with `application/vnd.kafka.avro.v2+json`,
//! `key_schema_id` and `value_schema_id` (each peer's ids from its own registry), records keyed
//! by a string, one record per request (`single`) or 50 (`batch of 50`). A request counts only if
//! it is answered 200 with no per-record error. Sluice is the release `sluice serve` binary with
//! its embedded registry and the default config (idempotent, `acks=all`, zstd, linger 5 ms).
//! Karapace's REST proxy and registry are not part of this repository: run them yourself on the
//! same broker (Karapace 6.2.0, producer set to `acks=all`, zstd, linger 5 ms:
//! `KARAPACE_PRODUCER_ACKS=all KARAPACE_PRODUCER_COMPRESSION_TYPE=zstd
//! KARAPACE_PRODUCER_LINGER_MS=5`) and pass their URLs with `--karapace-rest` and
//! `--karapace-registry`, and the broker with `--bootstrap`; without them Sluice runs alone.
//!
//! The schema is the produce benchmark's order event with `placed_at` a plain `long` and
//! `channel` a plain string: Karapace's Avro writer takes neither a `timestamp-millis` nor a
//! union from JSON.
//!
//! Run: `cargo run --release -p sluice-tests --bin restbench -- --seconds 15 --rounds 2
//! [--bootstrap HOST:PORT --karapace-rest URL --karapace-registry URL]`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::{Value, json};
use sluice_tests::bench::load::{Outcome, closed_loop, outcome};
use sluice_tests::bench::{self, PARTITIONS, SCHEMA, event, with_broker};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

const V2_AVRO: &str = "application/vnd.kafka.avro.v2+json";
const BATCH: usize = 50;

#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds per scenario (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Concurrent connections per scenario.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Rounds: each runs every scenario of both peers, back to back.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// A running Karapace REST proxy on the same broker (e.g. `http://127.0.0.1:8082`).
    #[arg(long, requires = "karapace_registry")]
    karapace_rest: Option<String>,
    /// Its schema registry (e.g. `http://127.0.0.1:8081`).
    #[arg(long, requires = "karapace_rest")]
    karapace_registry: Option<String>,
    /// A shell command that starts Karapace's registry and REST proxy on the benchmark's broker:
    /// `{bootstrap}`, `{registry_port}` and `{rest_port}` are filled in.
    #[arg(long, conflicts_with = "karapace_rest")]
    karapace_start: Option<String>,
    /// A shell command that stops them.
    #[arg(long, requires = "karapace_start")]
    karapace_stop: Option<String>,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        bail!("run restbench with --release: the figures are about the release binary");
    }
    let binary = bench::release_binary()?;
    with_broker(args.bootstrap.as_deref(), async |kafka, _| run(&args, &binary, kafka).await)
}

/// The peer schema: see the module's note.
fn schema() -> String {
    SCHEMA
        .replace(r#"{"type": "long", "logicalType": "timestamp-millis"}"#, r#""long""#)
        .replace(r#"["null", "string"], "default": null"#, r#""string", "default": """#)
}

fn peer_event(i: usize) -> Value {
    let mut event = event(i);
    event["channel"] = json!("web");
    event
}

/// One peer: where its v2 API is, and the schema ids it encodes with.
struct Peer {
    name: &'static str,
    url: String,
    key_id: u64,
    value_id: u64,
}

async fn register(http: &reqwest::Client, registry: &str, subject: &str, schema: &str) -> anyhow::Result<u64> {
    let answer: Value = http
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(json!({"schema": schema}).to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["id"].as_u64().with_context(|| format!("no id in {answer}"))
}

async fn peer(
    http: &reqwest::Client,
    name: &'static str,
    base: &str,
    registry: &str,
    topic: &str,
) -> anyhow::Result<Peer> {
    let value_id = register(http, registry, &format!("{topic}-value"), &schema()).await?;
    let key_id = register(http, registry, &format!("{topic}-key"), r#""string""#).await?;
    Ok(Peer { name, url: format!("{base}/topics/{topic}"), key_id, value_id })
}

fn bodies(peer: &Peer, per_request: usize) -> Arc<Vec<String>> {
    let events: Vec<Value> = (0..20_000).map(peer_event).collect();
    let bodies = events
        .chunks(per_request)
        .map(|chunk| {
            let records: Vec<Value> = chunk.iter().map(|e| json!({"key": e["order_id"], "value": e})).collect();
            json!({"key_schema_id": peer.key_id, "value_schema_id": peer.value_id, "records": records}).to_string()
        })
        .collect();
    Arc::new(bodies)
}

/// A scenario: `per_request` records per request, a request counting only when every record
/// got an offset.
async fn scenario(
    name: &'static str,
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<String>>,
    per_request: usize,
    args: &Args,
) -> anyhow::Result<Outcome> {
    let (http, url) = (http.clone(), Arc::<str>::from(url));
    let (latencies, requests, errors) = closed_loop(args.connections, Duration::from_secs(args.seconds), move |i| {
        let (http, url, body) = (http.clone(), url.clone(), bodies[i % bodies.len()].clone());
        async move {
            let Ok(response) = http.post(&*url).header("content-type", V2_AVRO).body(body).send().await else {
                return false;
            };
            let ok = response.status() == reqwest::StatusCode::OK;
            let Ok(answer) = response.json::<Value>().await else { return false };
            ok && answer["offsets"].as_array().is_some_and(|o| o.iter().all(|o| o["error_code"].is_null()))
        }
    })
    .await?;
    Ok(outcome(name, &latencies, requests, requests * per_request as u64, errors, Duration::from_secs(args.seconds)))
}

async fn run(args: &Args, binary: &std::path::Path, kafka: &Kafka) -> anyhow::Result<()> {
    let bootstrap = kafka.bootstrap_servers();
    let sluice_topic = unique_name("bench-rest-sluice");
    let karapace_topic = unique_name("bench-rest-karapace");
    for topic in [&sluice_topic, &karapace_topic] {
        kafka.create_topic(topic, PARTITIONS, &[]).await?;
    }
    let config = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
         [[topics]]\nname = \"{sluice_topic}\"\nformat = \"avro\"\n",
        registry = unique_name("_bench_schemas"),
    );
    let mut gateway = GatewayProcess::start("sluice", binary, &config).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(30)).build()?;
    let base = gateway.base().to_owned();
    let mut peers = vec![peer(&http, "Sluice", &base, &format!("{base}/registry"), &sluice_topic).await?];
    let mut karapace = args.karapace_rest.clone().zip(args.karapace_registry.clone());
    if let Some(command) = &args.karapace_start {
        let free_port = || Ok::<_, std::io::Error>(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
        let (registry_port, rest_port) = (free_port()?, free_port()?);
        let command = command
            .replace("{bootstrap}", &bootstrap)
            .replace("{registry_port}", &registry_port.to_string())
            .replace("{rest_port}", &rest_port.to_string());
        let status = std::process::Command::new("sh").args(["-c", &command]).status()?;
        anyhow::ensure!(status.success(), "--karapace-start failed ({status})");
        karapace = Some((format!("http://127.0.0.1:{rest_port}"), format!("http://127.0.0.1:{registry_port}")));
    }
    if let Some((rest, registry)) = &karapace {
        peers.push(peer(&http, "Karapace", rest, registry, &karapace_topic).await?);
    }

    let mut results: Vec<(usize, &'static str, Outcome)> = Vec::new();
    for round in 1..=args.rounds {
        for peer in &peers {
            for (label, per_request) in [("single", 1), ("batch of 50", BATCH)] {
                let bodies = bodies(peer, per_request);
                let outcome = scenario(label, &http, &peer.url, bodies, per_request, args).await?;
                results.push((round, peer.name, outcome));
            }
        }
    }
    gateway.stop().await?;
    if let Some(command) = &args.karapace_stop {
        std::process::Command::new("sh").args(["-c", command]).status()?;
    }

    print(args, &results);
    if results.iter().any(|(_, _, o)| o.errors > 0) {
        bail!("some requests failed; the figures are not comparable");
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the report is the output
fn print(args: &Args, results: &[(usize, &'static str, Outcome)]) {
    println!(
        "| round | peer | scenario ({} connections) | events/s | requests/s | p50 ms | p99 ms | errors |",
        args.connections
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (round, peer, o) in results {
        let per_request = if o.name == "single" { 1.0 } else { BATCH as f64 };
        println!(
            "| {round} | {peer} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
            o.name,
            o.events_per_sec,
            o.events_per_sec / per_request,
            o.p50_ms,
            o.p99_ms,
            o.errors
        );
    }
}
