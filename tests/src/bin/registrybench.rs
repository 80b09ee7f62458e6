//! The embedded schema registry's latency: registering new schemas, looking up known ones and
//! fetching them by id, as a CI job or a serializer does.
//!
//! It runs the release `sluice` binary as a child process with the embedded registry on its own
//! broker and drives its Confluent API over HTTP from this process:
//!
//! - `register (sequential)`: `--schemas` new schemas, each under a new subject, one request at a
//!   time (a CI job registering its schemas);
//! - `register (N concurrent)`: as many again from `--concurrency` clients at once;
//! - `lookup`: `POST /subjects/{subject}` with a schema already registered (what a serializer
//!   with `auto.register.schemas=false` asks on start);
//! - `get by id`: `GET /schemas/ids/{id}` (what a deserializer asks for each new id).
//!
//! Run: `cargo run --release -p sluice-tests --bin registrybench`. It builds the `sluice` binary
//! (release) itself. Without `--bootstrap` it starts its own broker with the test harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sluice_tests::bench::load::{new_histogram, record};
use sluice_tests::bench::{self, with_broker};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

#[derive(Debug, Parser)]
struct Args {
    /// New schemas registered one at a time (and again concurrently).
    #[arg(long, default_value_t = 300)]
    schemas: usize,
    /// Clients registering at once in the concurrent scenario.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Lookups and reads by id, each.
    #[arg(long, default_value_t = 5000)]
    reads: usize,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        bail!("run registrybench with --release: the figures are about the release binary");
    }
    let binary = bench::release_binary()?;
    with_broker(args.bootstrap.as_deref(), async |kafka, _| run(&args, &binary, kafka).await)
}

/// One scenario's figures.
struct Row {
    name: String,
    latencies: Histogram<u64>,
    elapsed: Duration,
}

impl Row {
    #[allow(clippy::cast_precision_loss, clippy::print_stdout)] // counts far below 2^52; the report
    fn print(&self) {
        let ms = |q: f64| self.latencies.value_at_quantile(q) as f64 / 1000.0;
        let per_sec = self.latencies.len() as f64 / self.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            self.name,
            self.latencies.len(),
            per_sec,
            ms(0.5),
            ms(0.99),
            self.latencies.max() as f64 / 1000.0
        );
    }
}

async fn run(args: &Args, binary: &std::path::Path, kafka: &Kafka) -> anyhow::Result<()> {
    let config = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
         [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
         [plugin_host]\ntopic = \"{plugins}\"\n\
         [delivery]\ntopic = \"{subscriptions}\"\n",
        bootstrap = kafka.bootstrap_servers(),
        registry = unique_name("_bench_schemas"),
        plugins = unique_name("_bench_plugins"),
        subscriptions = unique_name("_bench_subscriptions"),
    );
    let mut gateway = GatewayProcess::start("sluice", binary, &config).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let registry = format!("{}/registry", gateway.base());
    let run = unique_name("bench");

    let mut rows = Vec::new();
    let started = Instant::now();
    let mut sequential = new_histogram();
    let mut registered = Vec::with_capacity(args.schemas);
    for i in 0..args.schemas {
        let subject = format!("{run}-seq-{i}");
        let (id, elapsed) = register(&http, &registry, &subject, &schema(i)).await?;
        record(&mut sequential, elapsed);
        registered.push((subject, i, id));
    }
    rows.push(Row { name: "register (sequential)".into(), latencies: sequential, elapsed: started.elapsed() });

    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..args.concurrency {
        let (http, registry, run) = (http.clone(), registry.clone(), run.clone());
        let count = args.schemas.div_ceil(args.concurrency);
        clients.push(tokio::spawn(async move {
            let mut latencies = new_histogram();
            for i in 0..count {
                let n = client * count + i;
                let (_, elapsed) = register(&http, &registry, &format!("{run}-par-{n}"), &schema(n)).await?;
                record(&mut latencies, elapsed);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut concurrent = new_histogram();
    for client in clients {
        concurrent.add(client.await??)?;
    }
    rows.push(Row {
        name: format!("register ({} concurrent)", args.concurrency),
        latencies: concurrent,
        elapsed: started.elapsed(),
    });

    let registered = Arc::new(registered);
    let mut lookups = new_histogram();
    let started = Instant::now();
    for n in 0..args.reads {
        let (subject, i, id) = &registered[n % registered.len()];
        let begin = Instant::now();
        let found: Value = http
            .post(format!("{registry}/subjects/{subject}"))
            .body(json!({"schema": schema(*i)}).to_string())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        record(&mut lookups, begin.elapsed());
        if found["id"].as_u64() != Some(u64::from(*id)) {
            bail!("lookup of {subject} answered {found}, not id {id}");
        }
    }
    rows.push(Row { name: "lookup".into(), latencies: lookups, elapsed: started.elapsed() });

    let mut by_id = new_histogram();
    let started = Instant::now();
    for n in 0..args.reads {
        let (_, _, id) = &registered[n % registered.len()];
        let begin = Instant::now();
        http.get(format!("{registry}/schemas/ids/{id}")).send().await?.error_for_status()?.bytes().await?;
        record(&mut by_id, begin.elapsed());
    }
    rows.push(Row { name: "get by id".into(), latencies: by_id, elapsed: started.elapsed() });
    gateway.stop().await?;

    print_table(&rows);
    Ok(())
}

#[allow(clippy::print_stdout)] // the report is the output
fn print_table(rows: &[Row]) {
    println!("| scenario | requests | per second | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        row.print();
    }
}

/// A distinct record schema per `i`, the size of a typical event schema (~600 bytes).
fn schema(i: usize) -> String {
    json!({
        "type": "record",
        "name": format!("Event{i}"),
        "namespace": "dev.sluice.bench",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "customer_id", "type": "string"},
            {"name": "amount_cents", "type": "long"},
            {"name": "currency", "type": "string", "default": "EUR"},
            {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "note", "type": ["null", "string"], "default": null},
        ],
    })
    .to_string()
}

async fn register(
    http: &reqwest::Client,
    registry: &str,
    subject: &str,
    schema: &str,
) -> anyhow::Result<(u32, Duration)> {
    let begin = Instant::now();
    let response = http
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(json!({ "schema": schema }).to_string())
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    let elapsed = begin.elapsed();
    if !status.is_success() {
        bail!("registering {subject} answered {status}: {body}");
    }
    let id = body["id"].as_u64().with_context(|| format!("no id in {body}"))?;
    Ok((u32::try_from(id)?, elapsed))
}
