//! Every metric Sluice exports, defined once, and their encoding for `GET /metrics`
//! (OpenMetrics text, which Prometheus scrapes).
//!
//! The metrics are process-wide: one gateway per process in production. Label values come
//! from configuration (topics, subscriptions, plugins) or small fixed sets (outcomes, error
//! types, HTTP statuses and matched routes), never from request data, so their number stays
//! bounded.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route pattern (`/v1/topics/{topic}/events`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransformLabels {
    /// A configured transform's name.
    pub transform: String,
    /// `transformed` (committed through the plugins) or `dead_lettered`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub topic: String,
    /// `produced`, `enqueued`, `refused`, `dropped` or `dead_lettered`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub topic: String,
    /// The problem type's slug (`schema-violation`, `missing-key`, …).
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    pub plugin: String,
    pub version: String,
    /// `produce`, `consume`, `failure` or `describe`.
    pub hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginFailureLabels {
    pub plugin: String,
    pub version: String,
    /// `trap`, `timeout`, `memory`, `bad-output`, …
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginNameLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCounterLabels {
    pub plugin: String,
    /// The name the plugin gave `counter-add`.
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    pub subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub subscription: String,
    /// The subscriber's HTTP status, or `error` when it did not answer.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryOutcomeLabels {
    pub subscription: String,
    /// `delivered`, `skipped`, `dropped` or `dead_lettered`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionStateLabels {
    pub subscription: String,
    /// One of [`SUBSCRIPTION_STATES`].
    pub state: &'static str,
}

/// The states `sluice_subscription_state` reports: `active`, `paused` and `disabled` as stored;
/// `failed` while this replica cannot start its worker (retried), `holding` while a plugin it
/// names has no loaded version.
pub const SUBSCRIPTION_STATES: [&str; 5] = ["active", "paused", "disabled", "failed", "holding"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub subscription: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `subject` (a route's schema) or `id` (a record's writer schema).
    pub lookup: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, 100 µs to ~26 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Seconds, 1 ms to ~36 h: a record may wait for its subscriber that long.
fn end_to_end() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 28))
}

/// The metrics of this process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Histograms<RouteLabels>,
    pub events: Family<EventLabels, Counter>,
    pub refused: Family<RefusedLabels, Counter>,
    pub plugin_calls: Family<PluginCallLabels, Counter>,
    pub plugin_failures: Family<PluginFailureLabels, Counter>,
    pub plugin_duration: Histograms<PluginLabels>,
    pub plugin_counters: Family<PluginCounterLabels, Counter>,
    pub plugin_circuit_open: Family<PluginNameLabels, Gauge>,
    pub delivery_attempts: Family<AttemptLabels, Counter>,
    pub delivery_duration: Histograms<SubscriptionLabels>,
    pub delivery_outcomes: Family<DeliveryOutcomeLabels, Counter>,
    pub delivery_latency: Histograms<SubscriptionLabels>,
    pub subscription_state: Family<SubscriptionStateLabels, Gauge>,
    pub consumer_lag: Family<LagLabels, Gauge>,
    pub producer_queue: Gauge,
    pub registry_cache: Family<CacheLabels, Counter>,
    pub transform_records: Family<TransformLabels, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route and status",
            http_requests.clone(),
        );
        let http_duration = Histograms::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by matched route",
            http_duration.clone(),
        );
        let events = Family::default();
        registry.register("events", "Events by topic and outcome on the produce path", events.clone());
        let refused = Family::default();
        registry.register("events_refused", "Refused events by topic and problem type", refused.clone());
        let transform_records = Family::default();
        registry.register(
            "transform_records",
            "Input records a transform committed, by transform and outcome",
            transform_records.clone(),
        );
        let plugin_calls = Family::default();
        registry.register("plugin_calls", "Plugin calls by plugin version and hook", plugin_calls.clone());
        let plugin_failures = Family::default();
        registry.register("plugin_failures", "Failed plugin calls by plugin version and kind", plugin_failures.clone());
        let plugin_duration = Histograms::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Time of one plugin call (one batch), by plugin version",
            plugin_duration.clone(),
        );
        let plugin_counters = Family::default();
        registry.register("plugin_counter", "Counters plugins add to with counter-add", plugin_counters.clone());
        let plugin_circuit_open = Family::default();
        registry.register(
            "plugin_circuit_open",
            "1 while a plugin's circuit breaker refuses its calls after repeated failures",
            plugin_circuit_open.clone(),
        );
        let delivery_attempts = Family::default();
        registry.register(
            "delivery_attempts",
            "Webhook requests by subscription and the subscriber's HTTP status",
            delivery_attempts.clone(),
        );
        let delivery_duration = Histograms::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "delivery_duration_seconds",
            "Time of one webhook request, by subscription",
            delivery_duration.clone(),
        );
        let delivery_outcomes = Family::default();
        registry.register(
            "delivery_outcomes",
            "Records handled by subscription and outcome",
            delivery_outcomes.clone(),
        );
        let delivery_latency = Histograms::new_with_constructor(end_to_end as fn() -> Histogram);
        registry.register(
            "delivery_latency_seconds",
            "Time from a record's timestamp to its delivery (end to end), by subscription",
            delivery_latency.clone(),
        );
        let subscription_state = Family::default();
        registry.register(
            "subscription_state",
            "1 for the state each subscription is in on this replica (active, paused, disabled, failed, holding)",
            subscription_state.clone(),
        );
        let consumer_lag = Family::default();
        registry.register(
            "consumer_lag",
            "Records after the committed offset, per subscription partition held by this replica",
            consumer_lag.clone(),
        );
        let producer_queue = Gauge::default();
        registry.register(
            "producer_queue",
            "Events handed to the producer and not yet acknowledged",
            producer_queue.clone(),
        );
        let registry_cache = Family::default();
        registry.register("registry_cache_lookups", "Schema cache lookups by kind and result", registry_cache.clone());
        Self {
            registry,
            http_requests,
            http_duration,
            events,
            refused,
            transform_records,
            plugin_calls,
            plugin_failures,
            plugin_duration,
            plugin_counters,
            plugin_circuit_open,
            delivery_attempts,
            delivery_duration,
            delivery_outcomes,
            delivery_latency,
            subscription_state,
            consumer_lag,
            producer_queue,
            registry_cache,
        }
    }

    /// All metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A transform committed a batch of `records` input records, `dead` of them dead-lettered.
    pub fn transformed(&self, transform: &str, records: usize, dead: usize) {
        let count = |outcome, n: usize| {
            self.transform_records
                .get_or_create(&TransformLabels { transform: transform.to_owned(), outcome })
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        };
        count("transformed", records - dead);
        if dead > 0 {
            count("dead_lettered", dead);
        }
    }

    pub fn events(&self, topic: &str, outcome: &'static str, n: u64) {
        self.events.get_or_create(&EventLabels { topic: topic.to_owned(), outcome }).inc_by(n);
    }

    pub fn refusals(&self, topic: &str, kind: &'static str, n: u64) {
        self.events(topic, "refused", n);
        self.refused.get_or_create(&RefusedLabels { topic: topic.to_owned(), r#type: kind }).inc_by(n);
    }

    pub fn cache(&self, lookup: &'static str, hit: bool) {
        self.registry_cache.get_or_create(&CacheLabels { lookup, result: if hit { "hit" } else { "miss" } }).inc();
    }

    /// Removes a deleted subscription's series (its lag series go with its partitions).
    pub fn forget_subscription(&self, subscription: &str) {
        let name = || subscription.to_owned();
        for outcome in DELIVERY_OUTCOMES {
            self.delivery_outcomes.remove(&DeliveryOutcomeLabels { subscription: name(), outcome });
        }
        for status in (100..600).map(|s: u16| s.to_string()).chain(["error".to_owned()]) {
            self.delivery_attempts.remove(&AttemptLabels { subscription: name(), status });
        }
        self.delivery_duration.remove(&SubscriptionLabels { subscription: name() });
        self.delivery_latency.remove(&SubscriptionLabels { subscription: name() });
        for state in SUBSCRIPTION_STATES {
            self.subscription_state.remove(&SubscriptionStateLabels { subscription: name(), state });
        }
    }

    /// A subscription's delivery series, for its worker to keep.
    pub fn subscription(&self, subscription: &str) -> SubscriptionSeries {
        let labels = SubscriptionLabels { subscription: subscription.to_owned() };
        SubscriptionSeries {
            subscription: subscription.to_owned(),
            duration: self.delivery_duration.get_or_create(&labels).clone(),
            latency: self.delivery_latency.get_or_create(&labels).clone(),
            outcomes: DELIVERY_OUTCOMES.map(|outcome| {
                let labels = DeliveryOutcomeLabels { subscription: subscription.to_owned(), outcome };
                self.delivery_outcomes.get_or_create(&labels).clone()
            }),
            attempts: std::sync::Mutex::default(),
        }
    }

    /// Records behind in a partition this replica holds for a subscription.
    pub fn consumer_lag(&self, subscription: &str, topic: &str, partition: i32, behind: i64) {
        let labels = LagLabels { subscription: subscription.to_owned(), topic: topic.to_owned(), partition };
        self.consumer_lag.get_or_create(&labels).set(behind);
    }

    /// Forgets the lag of partitions this replica no longer holds: another replica reports them.
    pub fn forget_lag(&self, subscription: &str, partitions: &[(String, i32)]) {
        for (topic, partition) in partitions {
            let labels =
                LagLabels { subscription: subscription.to_owned(), topic: topic.clone(), partition: *partition };
            self.consumer_lag.remove(&labels);
        }
    }

    /// Sets the state a subscription is in on this replica.
    pub fn subscription_state(&self, subscription: &str, current: &str) {
        for state in SUBSCRIPTION_STATES {
            self.subscription_state
                .get_or_create(&SubscriptionStateLabels { subscription: subscription.to_owned(), state })
                .set(i64::from(state == current));
        }
    }

    pub fn plugin_circuit(&self, plugin: &str, open: bool) {
        self.plugin_circuit_open.get_or_create(&PluginNameLabels { plugin: plugin.to_owned() }).set(i64::from(open));
    }
}

/// How a record ended on the consume path, as `sluice_delivery_outcomes_total` labels it.
pub const DELIVERY_OUTCOMES: [&str; 4] = ["delivered", "skipped", "dropped", "dead_lettered"];

/// One subscription's delivery series, looked up once by its worker: a lookup by labels clones
/// and hashes them under the family's lock, which, several times per delivery, cost more than
/// the counting. Created at 0, so a subscription's series exist before its first event.
#[derive(Debug)]
pub struct SubscriptionSeries {
    subscription: String,
    duration: Histogram,
    latency: Histogram,
    /// In [`DELIVERY_OUTCOMES`] order.
    outcomes: [Counter; 4],
    /// Attempts by status label: a handful per subscription.
    attempts: std::sync::Mutex<Vec<(String, Counter)>>,
}

impl SubscriptionSeries {
    /// One webhook request: its answer (the HTTP status, or `error`) and time.
    pub fn attempt(&self, status: &str, took: std::time::Duration) {
        let counter = {
            let mut attempts = self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match attempts.iter().find(|(label, _)| label == status) {
                Some((_, counter)) => counter.clone(),
                None => {
                    let labels = AttemptLabels { subscription: self.subscription.clone(), status: status.to_owned() };
                    let counter = metrics().delivery_attempts.get_or_create(&labels).clone();
                    attempts.push((status.to_owned(), counter.clone()));
                    counter
                }
            }
        };
        counter.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// A record delivered `age` after its timestamp.
    pub fn delivered_after(&self, age: std::time::Duration) {
        self.latency.observe(age.as_secs_f64());
    }

    /// A record's outcome, one of [`DELIVERY_OUTCOMES`].
    pub fn outcome(&self, outcome: &str) {
        if let Some(i) = DELIVERY_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].inc();
        }
    }
}

/// The metrics of this process.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
