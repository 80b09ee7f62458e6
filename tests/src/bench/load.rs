//! Driving a gateway with HTTP load for a measured window, and what came of it: shared by the
//! benchmark binaries so that their figures are measured the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One scenario's figures over its measured window.
#[derive(Debug)]
pub struct Outcome {
    pub name: &'static str,
    pub events_per_sec: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// Runs `connections` loops, each sending a body and awaiting its answer, for warm-up + `measure`.
pub async fn http_scenario(
    name: &'static str,
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<String>>,
    events_per_body: usize,
    connections: usize,
    measure: Duration,
) -> anyhow::Result<Outcome> {
    let (http, url) = (http.clone(), Arc::<str>::from(url));
    let (latencies, requests, errors) = closed_loop(connections, measure, move |i| {
        let (http, url, body) = (http.clone(), url.clone(), bodies[i % bodies.len()].clone());
        async move {
            match http.post(&*url).header("content-type", "application/json").body(body).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await?;
    Ok(outcome(name, &latencies, requests, requests * events_per_body as u64, errors, measure))
}

/// Runs `workers` loops, each awaiting one `request(i)` at a time (true: it succeeded), with the
/// workers' `i`s interleaved, for warm-up + `measure`. Returns the latencies, the number of
/// requests and of failures among those that started in the measured window.
pub async fn closed_loop<F, R>(
    workers: usize,
    measure: Duration,
    request: F,
) -> anyhow::Result<(Histogram<u64>, u64, u64)>
where
    F: Fn(usize) -> R + Clone + Send + 'static,
    R: Future<Output = bool> + Send,
{
    let clock = Clock::start(measure);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (request, clock) = (request.clone(), clock.clone());
            tokio::spawn(async move {
                let mut latencies = new_histogram();
                let (mut requests, mut errors) = (0u64, 0u64);
                let mut i = worker * 7919;
                while !clock.finished() {
                    let started = Instant::now();
                    let ok = request(i).await;
                    i += workers;
                    if clock.measuring(started) {
                        requests += 1;
                        errors += u64::from(!ok);
                        record(&mut latencies, started.elapsed());
                    }
                }
                (latencies, requests, errors)
            })
        })
        .collect();
    join_counts(tasks).await
}

/// Warm-up, then a measured window; a sample counts if it started inside the window.
#[derive(Debug, Clone)]
pub struct Clock {
    measure_from: Instant,
    end: Instant,
    done: Arc<AtomicBool>,
}

impl Clock {
    pub fn start(measure: Duration) -> Self {
        let measure_from = Instant::now() + measure / 5;
        Self { measure_from, end: measure_from + measure, done: Arc::default() }
    }

    pub fn finished(&self) -> bool {
        if self.done.load(Ordering::Relaxed) {
            return true;
        }
        let over = Instant::now() >= self.end;
        if over {
            self.done.store(true, Ordering::Relaxed);
        }
        over
    }

    pub fn measuring(&self, started: Instant) -> bool {
        started >= self.measure_from && started < self.end
    }
}

/// Microseconds, from 1 µs to 60 s, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
    histogram.saturating_record(micros);
}

/// Sums the histograms and counts of a scenario's tasks.
pub async fn join_counts(
    tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64, u64)>>,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut total = new_histogram();
    let (mut count, mut errors) = (0, 0);
    for task in tasks {
        let (histogram, n, e) = task.await?;
        total.add(histogram)?;
        count += n;
        errors += e;
    }
    Ok((total, count, errors))
}

/// A scenario's rates and latency percentiles over its measured window.
pub fn outcome(
    name: &'static str,
    latencies: &Histogram<u64>,
    requests: u64,
    events: u64,
    errors: u64,
    measure: Duration,
) -> Outcome {
    let seconds = measure.as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    Outcome {
        name,
        events_per_sec: events as f64 / seconds,
        requests_per_sec: requests as f64 / seconds,
        p50_ms: latencies.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
    }
}
