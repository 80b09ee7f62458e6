//! Webhook delivery: the consume path, as stages that mirror the produce path.
//!
//! - [`worker`]: one subscription on this replica, wiring the stages below;
//! - [`consumer`]: its Kafka consumer, start positions and rebalances;
//! - [`offsets`] and [`queues`]: what may be committed, and the per-key queues (pure);
//! - [`pipeline`]: one record: decode → plugins → webhook with retries → or dead letter;
//! - [`webhook`] and [`sign`]: the Standard Webhooks request and its signature;
//! - [`store`], [`seal`] and `reseal`: API-created subscriptions and every subscription's state
//!   in Kafka, their signing secrets encrypted;
//! - [`status`]: a subscription as the API shows it;
//! - [`guard`]: which addresses webhooks may reach.
//!
//! What a subscription is lives in [`crate::config::subscription`]; consumer-group
//! administration in [`crate::kafka::groups`]; the dead-letter writer in
//! [`crate::kafka::dead_letter`].
//!
//! Every replica runs every active subscription's worker; they share each subscription's
//! consumer group, so Kafka spreads the partitions and moves a lost replica's partitions to
//! the others. The manager here follows the store: it starts, stops and restarts workers as
//! subscriptions are created, paused, resumed, replayed, disabled or deleted, on any replica.

pub mod consumer;
pub mod deps;
pub mod guard;
pub mod offsets;
pub mod pipeline;
pub mod queues;
mod redrive;
mod reseal;
pub mod seal;
pub mod sign;
pub mod stats;
pub mod status;
pub mod store;
pub mod webhook;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use self::deps::Deps;
use self::guard::Guard;
use self::stats::{Stats, WorkerState};
pub use self::status::Status;
use self::store::{Key, RunState, StateRecord, StoredSpec, SubscriptionsState};
use self::worker::Exit;
use crate::config::subscription::SubscriptionSpec;
use crate::kafka::groups::{self, Positions};
use crate::kafka::log::{CompactedLog, LogError, Outcome, Plan, record};

/// A worker that could not start is started again after this long, doubling up to
/// [`MAX_RESTART_BACKOFF`].
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(60);

/// Why a subscription operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("invalid subscription")]
    Invalid(Vec<(String, String)>),
    #[error("{0}")]
    UrlNotAllowed(String),
    #[error("subscription '{0}' already exists")]
    Exists(String),
    #[error("no subscription '{0}'")]
    NotFound(String),
    #[error("subscription '{0}' is declared in the configuration file; change it there")]
    Declared(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("this gateway already has its limit of {0} API-created subscriptions ([delivery] max_subscriptions)")]
    TooMany(usize),
    #[error("subscriptions are unavailable: {0}")]
    Unavailable(String),
}

impl From<LogError> for SubscriptionError {
    fn from(error: LogError) -> Self {
        SubscriptionError::Unavailable(error.0)
    }
}

/// Where a replay starts.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayFrom {
    /// An RFC 3339 time: each partition from its first record at or after it.
    pub timestamp: Option<String>,
    /// Offsets by topic and partition (partitions not named start from the earliest record).
    pub offsets: Option<BTreeMap<String, BTreeMap<i32, i64>>>,
}

/// A running worker.
struct Running {
    generation: u64,
    stop: watch::Sender<bool>,
    stats: Arc<Stats>,
    /// Ends once the worker has committed its offsets and left the group.
    done: watch::Receiver<bool>,
}

/// The subscriptions of this replica.
pub struct Deliveries {
    log: Arc<CompactedLog<SubscriptionsState>>,
    declared: BTreeMap<String, SubscriptionSpec>,
    deps: Deps,
    guard: Guard,
    running: Mutex<HashMap<String, Running>>,
    /// Subscriptions whose stored secrets this replica is sealing again (see `reseal`).
    resealing: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("declared", &self.declared.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Deliveries {
    /// Reads the store and starts the active subscriptions, then follows the store.
    pub async fn start(
        log: CompactedLog<SubscriptionsState>,
        declared: Vec<SubscriptionSpec>,
        deps: Deps,
        guard: Guard,
    ) -> Arc<Self> {
        let deliveries = Arc::new(Self {
            log: Arc::new(log),
            declared: declared.into_iter().map(|s| (s.name.clone(), s)).collect(),
            deps,
            guard,
            running: Mutex::default(),
            resealing: Mutex::default(),
        });
        deliveries.reconcile();
        let weak = Arc::downgrade(&deliveries);
        let mut changes = deliveries.log.watch();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(deliveries) = weak.upgrade() else { break };
                deliveries.reconcile();
            }
        });
        deliveries
    }

    /// Stops every worker on this replica and waits until they have committed their offsets.
    pub async fn stop_all(&self) {
        let stopping: Vec<Running> =
            self.running.lock().unwrap_or_else(PoisonError::into_inner).drain().map(|(_, r)| r).collect();
        for running in &stopping {
            let _ = running.stop.send(true);
        }
        for mut running in stopping {
            let _ = running.done.wait_for(|done| *done).await;
        }
    }

    fn specs(&self, state: &SubscriptionsState) -> BTreeMap<String, (SubscriptionSpec, &'static str)> {
        let mut specs: BTreeMap<String, (SubscriptionSpec, &'static str)> =
            self.declared.iter().map(|(n, s)| (n.clone(), (s.clone(), "config"))).collect();
        for (name, spec) in &state.created {
            if specs.contains_key(name) {
                continue;
            }
            match self.deps.sealer.open(name, &spec.secrets) {
                Ok(secrets) => {
                    specs.insert(name.clone(), (SubscriptionSpec { secrets, ..spec.clone() }, "api"));
                }
                // Not delivered unsigned, and not shown as if it worked: said loudly instead.
                Err(error) => tracing::error!(subscription = %name, error, "cannot use this subscription"),
            }
        }
        specs
    }

    /// Brings the workers of this replica in line with the store.
    fn reconcile(self: &Arc<Self>) {
        self.reseal_stale();
        let wanted: BTreeMap<String, (SubscriptionSpec, u64)> = {
            let state = self.log.read();
            let metrics = crate::telemetry::metrics::metrics();
            self.specs(&state)
                .into_iter()
                .filter_map(|(name, (spec, _))| {
                    let record = state.state(&name);
                    metrics.subscription_state(&name, record.state.as_str());
                    (record.state == RunState::Active).then_some((name, (spec, record.generation)))
                })
                .collect()
        };
        let existing: BTreeSet<String> = self.specs(&self.log.read()).into_keys().collect();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|name, worker| {
            let keep = wanted.get(name).is_some_and(|(_, generation)| *generation == worker.generation);
            if !keep {
                tracing::info!(subscription = name, "stopping delivery on this replica");
                let _ = worker.stop.send(true);
                if !existing.contains(name) {
                    // Deleted: its series go too, so that creating and deleting subscriptions
                    // cannot grow the metrics without bound.
                    crate::telemetry::metrics::metrics().forget_subscription(name);
                }
            }
            keep
        });
        for (name, (spec, generation)) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            tracing::info!(subscription = name, generation, "starting delivery on this replica");
            let (stop, stopped) = watch::channel(false);
            let (finished, done) = watch::channel(false);
            let stats = Arc::new(Stats::default());
            running.insert(name.clone(), Running { generation, stop, stats: stats.clone(), done });
            let (deps, this) = (self.deps.clone(), Arc::downgrade(self));
            tokio::spawn(async move {
                let exit = run_until_stopped(spec, generation, deps, stats, stopped).await;
                let _ = finished.send(true);
                let Some(this) = this.upgrade() else { return };
                if let Exit::Gone(reason) = exit {
                    tracing::warn!(subscription = name, reason, "subscriber is gone; disabling the subscription");
                    if let Err(error) = this.set_state(&name, RunState::Disabled, Some(reason), None).await {
                        tracing::error!(subscription = name, error = %error, "cannot record the subscription as disabled");
                    }
                }
            });
        }
    }

    /// Creates a subscription through the API.
    pub async fn create(&self, spec: SubscriptionSpec) -> Result<(), SubscriptionError> {
        let mut problems = spec.problems();
        problems.extend(spec.internal_topic_problems(&self.deps.internal));
        // The same check the configuration file gets: a plugin must be declared (a declared one
        // without a loaded version holds delivery until it has one).
        for (i, plugin) in spec.plugins.iter().enumerate() {
            if !self.deps.plugins.is_declared(plugin) {
                problems.push((format!("plugins/{i}"), format!("'{plugin}' is not declared in [[plugins]]")));
            }
        }
        if !problems.is_empty() {
            return Err(SubscriptionError::Invalid(problems));
        }
        self.guard.check_url(&spec.url).await.map_err(SubscriptionError::UrlNotAllowed)?;
        let name = spec.name.clone();
        if self.declared.contains_key(&name) || self.log.read().created.contains_key(&name) {
            return Err(SubscriptionError::Exists(name));
        }
        if self.log.read().created.len() >= self.deps.max_subscriptions {
            return Err(SubscriptionError::TooMany(self.deps.max_subscriptions));
        }
        let sealed = self.deps.sealer.seal(&name, &spec.secrets).map_err(SubscriptionError::Unavailable)?;
        let stored =
            record(&Key::Subscription { name: name.clone() }, Some(&StoredSpec { spec: &spec, secrets: &sealed }))?;
        let state = record(
            &Key::State { name: name.clone() },
            Some(&StateRecord { state: RunState::Active, reason: None, generation: 0 }),
        )?;
        let check = name.clone();
        self.log
            .write(|current: &SubscriptionsState| {
                if current.created.contains_key(&check) {
                    return Err(SubscriptionError::Exists(check.clone()));
                }
                let name = check.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![stored.clone(), state.clone()],
                    result: (),
                    applied: Box::new(move |s: &SubscriptionsState| s.created.contains_key(&name)),
                }))
            })
            .await?;
        tracing::info!(subscription = name, url = spec.url, "subscription created");
        Ok(())
    }

    /// Deletes an API-created subscription.
    pub async fn delete(&self, name: &str) -> Result<(), SubscriptionError> {
        if self.declared.contains_key(name) {
            return Err(SubscriptionError::Declared(name.to_owned()));
        }
        let target = name.to_owned();
        self.log
            .write(|current: &SubscriptionsState| {
                if !current.created.contains_key(&target) {
                    return Err(SubscriptionError::NotFound(target.clone()));
                }
                let name = target.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![
                        record::<_, ()>(&Key::Subscription { name: name.clone() }, None)?,
                        record::<_, ()>(&Key::State { name: name.clone() }, None)?,
                    ],
                    result: (),
                    applied: Box::new(move |s: &SubscriptionsState| !s.created.contains_key(&name)),
                }))
            })
            .await
    }

    pub async fn pause(&self, name: &str) -> Result<(), SubscriptionError> {
        self.require(name)?;
        self.set_state(name, RunState::Paused, Some("paused through the API".into()), None).await
    }

    pub async fn resume(&self, name: &str) -> Result<(), SubscriptionError> {
        self.require(name)?;
        self.set_state(name, RunState::Active, None, None).await
    }

    /// Delivers again from a position: every replica stops the subscription, the group's
    /// offsets are moved, and delivery starts again under a new generation (new message ids).
    pub async fn replay(&self, name: &str, from: ReplayFrom) -> Result<u64, SubscriptionError> {
        let spec = self.require(name)?;
        let positions = match (from.timestamp, from.offsets) {
            (Some(text), None) => {
                let time = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| SubscriptionError::BadRequest(format!("'{text}' is not an RFC 3339 time")))?;
                Positions::Time(i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            }
            (None, Some(offsets)) => Positions::Offsets(offsets),
            _ => return Err(SubscriptionError::BadRequest("give either timestamp or offsets".into())),
        };
        let previous = self.log.read().state(name);
        self.set_state(name, RunState::Paused, Some("replaying".into()), None).await?;
        let moved = self.commit_start(&spec, &positions).await;
        let generation = previous.generation + 1;
        // Whatever happened, leave the subscription as it was (with the new generation if moved).
        let restored = if previous.state == RunState::Active { RunState::Active } else { previous.state };
        let next = if moved.is_ok() { generation } else { previous.generation };
        self.set_state(name, restored, previous.reason.clone(), Some(next)).await?;
        moved?;
        tracing::info!(subscription = name, generation, "replay started");
        Ok(generation)
    }

    /// A subscription's spec (what access to it is decided by).
    pub fn spec(&self, name: &str) -> Result<SubscriptionSpec, SubscriptionError> {
        self.require(name)
    }

    fn require(&self, name: &str) -> Result<SubscriptionSpec, SubscriptionError> {
        self.specs(&self.log.read())
            .remove(name)
            .map(|(spec, _)| spec)
            .ok_or_else(|| SubscriptionError::NotFound(name.to_owned()))
    }

    async fn set_state(
        &self,
        name: &str,
        state: RunState,
        reason: Option<String>,
        generation: Option<u64>,
    ) -> Result<(), SubscriptionError> {
        let target = name.to_owned();
        self.log
            .write(|current: &SubscriptionsState| {
                let generation = generation.unwrap_or_else(|| current.state(&target).generation);
                let wanted = StateRecord { state, reason: reason.clone(), generation };
                if current.states.get(&target) == Some(&wanted) {
                    return Ok::<_, SubscriptionError>(Outcome::Nothing(()));
                }
                let (name, check) = (target.clone(), wanted.clone());
                Ok(Outcome::Write(Plan {
                    records: vec![record(&Key::State { name: name.clone() }, Some(&wanted))?],
                    result: (),
                    applied: Box::new(move |s: &SubscriptionsState| s.states.get(&name) == Some(&check)),
                }))
            })
            .await
    }

    /// Moves the subscription group's offsets (its members must have left: the subscription is
    /// paused). Waits for the group to be empty first.
    async fn commit_start(&self, spec: &SubscriptionSpec, positions: &Positions) -> Result<(), SubscriptionError> {
        let (kafka, spec, positions) = (self.deps.kafka.clone(), spec.clone(), positions.clone());
        tokio::task::spawn_blocking(move || groups::move_group(&kafka, &spec.group_id(), &spec.topics, &positions))
            .await
            .map_err(|e| SubscriptionError::Unavailable(e.to_string()))?
            .map_err(|e| SubscriptionError::Unavailable(e.to_string()))
    }
}

/// Runs a subscription's worker until it is stopped or its subscriber is gone; a worker that
/// cannot start (a name that does not resolve yet, a consumer that cannot be created) is
/// started again with backoff, its state and reason in the status meanwhile.
async fn run_until_stopped(
    spec: SubscriptionSpec,
    generation: u64,
    deps: Deps,
    stats: Arc<Stats>,
    mut stopped: watch::Receiver<bool>,
) -> Exit {
    let spec = Arc::new(spec);
    let mut backoff = RESTART_BACKOFF;
    loop {
        match worker::run(spec.clone(), generation, deps.clone(), stats.clone(), stopped.clone()).await {
            Exit::Failed(reason) => {
                tracing::error!(
                    subscription = spec.name,
                    reason,
                    retry_in_ms = backoff.as_millis(),
                    "delivery could not start"
                );
                stats.set_worker(&spec.name, WorkerState::Failed, Some(reason));
                if pipeline::wait(backoff, &mut stopped).await {
                    return Exit::Stopped;
                }
                backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
            }
            other => return other,
        }
    }
}
