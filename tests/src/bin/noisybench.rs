//! A hostile plugin must not starve its neighbours: the noisy-neighbour run of issue 10.
//!
//! The release `sluice` binary runs as a child process with three JSON routes: `healthy` (no
//! plugin), `spin` (the `infinite-loop` fixture, which runs until its 50 ms limit on every call)
//! and `bomb` (the `memory-bomb` fixture, which grows its memory until its 64 MiB limit traps).
//! This process is the client:
//!
//! 1. baseline: single-event requests to `healthy` from `--connections` connections;
//! 2. flood: the same, while 8 connections post to `spin` and 4 to `bomb` without pause;
//! 3. after: the gateway's resident memory, sampled every 250 ms for 10 s.
//!
//! It passes when, during the flood, `healthy` keeps at least 70% of its baseline throughput and
//! at most twice its baseline p99, and the resident memory comes back to within 50 MiB of its
//! baseline within 10 s of the flood's end.
//!
//! Run: `cargo run --release -p sluice-tests --bin noisybench`. Without `--bootstrap` it starts
//! its own broker with the test harness.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use serde_json::{Value, json};
use sluice_tests::bench::load::{Clock, Outcome, http_scenario};
use sluice_tests::bench::{self, event, memory, with_broker};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds of each phase (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Connections sending single events to the healthy route.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Keep the plugins' circuit breakers shut (a failure threshold no flood reaches), so that every
    /// flood request runs its plugin to its limit: isolation by the blocking pool, the per-plugin
    /// concurrency cap and the fuel/epoch/memory limits alone.
    #[arg(long)]
    no_breaker: bool,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
}

/// Connections flooding the looping plugin's route, and the memory bomb's.
const SPINNERS: usize = 8;
const BOMBERS: usize = 4;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        bail!("run noisybench with --release: the figures are about the release binary");
    }
    let binary = bench::release_binary()?;
    with_broker(args.bootstrap.as_deref(), async |kafka, _| run(&args, &binary, kafka).await)
}

async fn run(args: &Args, binary: &std::path::Path, kafka: &Kafka) -> anyhow::Result<()> {
    let [healthy, spin, bomb] = ["healthy", "spin", "bomb"].map(unique_name);
    for topic in [&healthy, &spin, &bomb] {
        kafka.create_topic(topic, 1, &[]).await?;
    }
    let config = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
         [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
         [delivery]\ntopic = \"{subscriptions}\"\n\
         [plugin_host]\ntopic = \"{plugins}\"\n\
         [[plugins]]\nname = \"spin\"\npath = \"{looping}\"\n{breaker}\
         [[plugins]]\nname = \"bomb\"\npath = \"{bombing}\"\n{breaker}\
         [[topics]]\nname = \"{healthy}\"\nformat = \"json\"\nkey = \"/order_id\"\n\
         [[topics]]\nname = \"{spin}\"\nformat = \"json\"\nplugins = [\"spin\"]\n\
         [[topics]]\nname = \"{bomb}\"\nformat = \"json\"\nplugins = [\"bomb\"]\n",
        bootstrap = kafka.bootstrap_servers(),
        registry = unique_name("_bench_schemas"),
        subscriptions = unique_name("_bench_subscriptions"),
        plugins = unique_name("_bench_plugins"),
        breaker = if args.no_breaker { "circuit_failures = 4000000000\n" } else { "" },
        looping = sluice_tests::plugin_wasm("infinite-loop").display(),
        bombing = sluice_tests::plugin_wasm("memory-bomb").display(),
    );
    let mut gateway = GatewayProcess::start("sluice", binary, &config).await?;
    let pid = gateway.pid().ok_or_else(|| anyhow::anyhow!("the gateway is not running"))?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let base = gateway.base().to_owned();
    let singles: Arc<Vec<String>> = Arc::new((0..20_000).map(|i| event(i).to_string()).collect());
    let url = format!("{base}/v1/topics/{healthy}/events");
    let measure = Duration::from_secs(args.seconds);

    let baseline = http_scenario("healthy alone", &http, &url, singles.clone(), 1, args.connections, measure).await?;
    let rss_before = memory(pid)?.rss_kib;
    let mappings_before = bench::largest_mappings(pid, 8)?;

    // The flood runs from the start of the second phase's warm-up to its end.
    let clock = Clock::start(measure);
    let flooded = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let mut flood = Vec::new();
    for (topic, connections) in [(&spin, SPINNERS), (&bomb, BOMBERS)] {
        for _ in 0..connections {
            let (http, clock, flooded) = (http.clone(), clock.clone(), flooded.clone());
            let url = format!("{base}/v1/topics/{topic}/events");
            let body = json!({"order_id": "flood"}).to_string();
            flood.push(tokio::spawn(async move {
                while !clock.finished() {
                    let sent = http.post(&url).header("content-type", "application/json").body(body.clone());
                    let status = match sent.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    *flooded.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_insert(0) += 1;
                }
            }));
        }
    }
    let during = http_scenario("healthy, flooded", &http, &url, singles, 1, args.connections, measure).await?;
    for task in flood {
        task.await?;
    }
    let flood_ended = Instant::now();
    let rss_peak = memory(pid)?.peak_kib;
    let mut rss_after = Vec::new();
    let mut recovered_after = None;
    while flood_ended.elapsed() < Duration::from_secs(10) {
        let rss = memory(pid)?.rss_kib;
        rss_after.push(rss);
        if recovered_after.is_none() && rss <= rss_before + 50 * 1024 {
            recovered_after = Some(flood_ended.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if recovered_after.is_none() {
        eprintln!("largest mappings before the flood:\n  {}", mappings_before.join("\n  "));
        eprintln!("and 10 s after it:\n  {}", bench::largest_mappings(pid, 8)?.join("\n  "));
        let samples: Vec<String> = rss_after.iter().map(|kib| format!("{:.0}", mib(*kib))).collect();
        eprintln!("resident MiB every 250 ms after the flood: {}", samples.join(" "));
    }
    let plugins: Value = reqwest::get(format!("{base}/metrics")).await?.text().await.map(|text| {
        let circuit: Vec<&str> = text.lines().filter(|l| l.starts_with("sluice_plugin_circuit_open{")).collect();
        json!(circuit)
    })?;
    gateway.stop().await?;

    let report = Report {
        baseline,
        during,
        flood: std::mem::take(&mut *flooded.lock().unwrap_or_else(|e| e.into_inner())),
        rss_before,
        rss_peak,
        rss_last: rss_after.last().copied().unwrap_or_default(),
        recovered_after,
    };
    report.print(args, &plugins);
    report.verdict()
}

struct Report {
    baseline: Outcome,
    during: Outcome,
    flood: BTreeMap<u16, u64>,
    rss_before: u64,
    rss_peak: u64,
    rss_last: u64,
    recovered_after: Option<Duration>,
}

#[allow(clippy::cast_precision_loss)] // KiB far below 2^52
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    fn throughput_kept(&self) -> f64 {
        self.during.requests_per_sec / self.baseline.requests_per_sec
    }

    fn p99_ratio(&self) -> f64 {
        self.during.p99_ms / self.baseline.p99_ms
    }

    #[allow(clippy::print_stdout)] // the report is the output
    fn print(&self, args: &Args, circuits: &Value) {
        println!(
            "| healthy route, single events ({} connections, {} s) | requests/s | p50 ms | p99 ms | errors |",
            args.connections, args.seconds
        );
        println!("|---|---|---|---|---|");
        for o in [&self.baseline, &self.during] {
            println!("| {} | {:.0} | {:.2} | {:.2} | {} |", o.name, o.requests_per_sec, o.p50_ms, o.p99_ms, o.errors);
        }
        println!();
        println!(
            "flood: {} requests from {SPINNERS} connections to the looping plugin's route and {BOMBERS} to the memory bomb's; by status (0: no answer): {:?}",
            self.flood.values().sum::<u64>(),
            self.flood
        );
        println!(
            "throughput kept: {:.0}% (≥ 70%); p99: {:.2}× (≤ 2×)",
            100.0 * self.throughput_kept(),
            self.p99_ratio()
        );
        println!(
            "resident memory: {:.1} MiB before the flood, peak {:.1} MiB, {:.1} MiB 10 s after; back within 50 MiB after {}",
            mib(self.rss_before),
            mib(self.rss_peak),
            mib(self.rss_last),
            self.recovered_after
                .map_or_else(|| "— (not within 10 s)".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        );
        println!("circuit breakers at the end: {circuits}");
    }

    fn verdict(&self) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        if self.baseline.errors > 0 || self.during.errors > 0 {
            failed.push("the healthy route answered errors".to_owned());
        }
        if self.throughput_kept() < 0.7 {
            failed.push(format!("throughput kept {:.0}% < 70%", 100.0 * self.throughput_kept()));
        }
        if self.p99_ratio() > 2.0 {
            failed.push(format!("p99 rose {:.2}× > 2×", self.p99_ratio()));
        }
        if self.recovered_after.is_none() {
            failed.push("resident memory did not come back within 50 MiB in 10 s".to_owned());
        }
        if failed.is_empty() { Ok(()) } else { bail!("noisy neighbour: {}", failed.join("; ")) }
    }
}
