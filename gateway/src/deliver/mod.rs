//! Webhook delivery: the consume path.
//!
//! - [`spec`]: what a subscription is;
//! - [`store`]: API-created subscriptions and every subscription's state, in Kafka;
//! - [`worker`]: one subscription's consumer, queues and deliveries on this replica;
//! - [`sign`]: Standard Webhooks signatures;
//! - [`guard`]: which addresses webhooks may reach.
//!
//! Every replica runs every active subscription's worker; they share each subscription's
//! consumer group, so Kafka spreads the partitions and moves a lost replica's partitions to
//! the others. The manager here follows the store: it starts, stops and restarts workers as
//! subscriptions are created, paused, resumed, replayed, disabled or deleted, on any replica.

pub mod guard;
pub mod seal;
pub mod sign;
pub mod spec;
pub mod store;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::watch;

use self::guard::Guard;
use self::spec::{Start, SubscriptionSpec};
use self::store::{Key, RunState, StateRecord, StoredSpec, SubscriptionsState};
use self::worker::{Deps, Exit, Stats};
use crate::kafka::client_config;
use crate::kafka::log::{CompactedLog, LogError, Outcome, Plan, record};

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A subscription as the API shows it.
#[derive(Debug, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
    /// `config` or `api`.
    pub source: &'static str,
    pub state: RunState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub generation: u64,
    /// On this replica.
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub in_flight: usize,
    /// Records taken from Kafka on this replica and waiting for an outcome.
    pub buffered: usize,
    /// Whether this replica stopped fetching because the subscriber is not keeping up.
    pub fetch_paused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Partitions this replica delivers now, by topic (the group spreads them over replicas).
    pub assigned: BTreeMap<String, Vec<i32>>,
    /// Records not yet delivered, by topic and partition (whole group).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lag: BTreeMap<String, BTreeMap<i32, i64>>,
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
                // API-created subscriptions get their time's offsets at creation; one declared in
                // the config file gets them here, the first time its group runs.
                if let Ok(Start::Time(ms)) = spec.start_position() {
                    let (kafka, declared) = (deps.kafka.clone(), spec.clone());
                    let started = tokio::task::spawn_blocking(move || start_new_group_at(&kafka, &declared, ms)).await;
                    if let Ok(Err(error)) = started {
                        tracing::warn!(
                            subscription = name,
                            error,
                            "cannot set the start offsets of a new subscription"
                        );
                    }
                }
                let exit = worker::run(Arc::new(spec), generation, deps, stats, stopped).await;
                let _ = finished.send(true);
                let Some(this) = this.upgrade() else { return };
                match exit {
                    Exit::Stopped => {}
                    Exit::Gone(reason) => {
                        tracing::warn!(subscription = name, reason, "subscriber is gone; disabling the subscription");
                        if let Err(error) = this.set_state(&name, RunState::Disabled, Some(reason), None).await {
                            tracing::error!(subscription = name, error = %error, "cannot record the subscription as disabled");
                        }
                    }
                    Exit::Failed(error) => tracing::error!(subscription = name, error, "delivery could not start"),
                }
            });
        }
    }

    /// Starts sealing again the stored secrets that are not sealed with the first of
    /// `secrets_keys` (stored before there were keys, or before a rotation), once per
    /// subscription at a time on this replica. Other replicas may do the same at the same time;
    /// each write is checked against the state it lands on, so one of them wins and the others
    /// find nothing to do.
    fn reseal_stale(self: &Arc<Self>) {
        let sealer = &self.deps.sealer;
        let stale: Vec<String> = self
            .log
            .read()
            .created
            .iter()
            .filter(|(name, spec)| !sealer.is_current(name, &spec.secrets) && sealer.open(name, &spec.secrets).is_ok())
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if !self.resealing.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone()) {
                continue;
            }
            let this = Arc::downgrade(self);
            tokio::spawn(async move {
                let Some(this) = this.upgrade() else { return };
                match this.reseal(&name).await {
                    Ok(()) => tracing::info!(subscription = name, "signing secrets sealed with the first secrets key"),
                    Err(error) => {
                        tracing::warn!(subscription = name, error = %error, "cannot seal the signing secrets again; will retry on the next change")
                    }
                }
                this.resealing.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
            });
        }
    }

    /// Writes subscription `name` again with its secrets sealed with the first key.
    async fn reseal(&self, name: &str) -> Result<(), SubscriptionError> {
        let sealer = self.deps.sealer.clone();
        self.log
            .write(|current: &SubscriptionsState| {
                let Some(spec) = current.created.get(name) else { return Ok(Outcome::Nothing(())) };
                if sealer.is_current(name, &spec.secrets) {
                    return Ok(Outcome::Nothing(()));
                }
                let secrets = sealer.open(name, &spec.secrets).map_err(SubscriptionError::Unavailable)?;
                let sealed = sealer.seal(name, &secrets).map_err(SubscriptionError::Unavailable)?;
                let stored =
                    record(&Key::Subscription { name: name.to_owned() }, Some(&StoredSpec { spec, secrets: &sealed }))?;
                let (name, sealer) = (name.to_owned(), sealer.clone());
                Ok(Outcome::Write(Plan {
                    records: vec![stored],
                    result: (),
                    applied: Box::new(move |s: &SubscriptionsState| {
                        s.created.get(&name).is_none_or(|spec| sealer.is_current(&name, &spec.secrets))
                    }),
                }))
            })
            .await
    }

    /// Creates a subscription through the API.
    pub async fn create(&self, spec: SubscriptionSpec) -> Result<(), SubscriptionError> {
        let mut problems = spec.problems();
        problems.extend(spec.internal_topic_problems(&self.deps.internal));
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
        let start = spec.start_position().map_err(SubscriptionError::BadRequest)?;
        // A subscription starting at a time starts paused, gets its offsets, then runs.
        let first = if matches!(start, Start::Time(_)) { RunState::Paused } else { RunState::Active };
        let sealed = self.deps.sealer.seal(&name, &spec.secrets).map_err(SubscriptionError::Unavailable)?;
        let stored =
            record(&Key::Subscription { name: name.clone() }, Some(&StoredSpec { spec: &spec, secrets: &sealed }))?;
        let state = record(
            &Key::State { name: name.clone() },
            Some(&StateRecord { state: first, reason: None, generation: 0 }),
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
        if let Start::Time(ms) = start {
            self.commit_start(&spec, &Positions::Time(ms)).await?;
            self.set_state(&name, RunState::Active, None, None).await?;
        }
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

    /// Delivers the records of the subscription's dead letter topic again, from where the last
    /// redrive stopped up to the end as it is now. Records that fail again go back to it.
    pub async fn redrive(self: &Arc<Self>, name: &str) -> Result<i64, SubscriptionError> {
        let spec = self.require(name)?;
        let redrive = SubscriptionSpec {
            name: format!("{}-redrive", spec.name),
            topics: vec![spec.dead_letter_topic.clone()],
            start: "earliest".into(),
            ..spec.clone()
        };
        let ends = {
            let (kafka, group, topic) = (self.deps.kafka.clone(), redrive.group_id(), spec.dead_letter_topic.clone());
            tokio::task::spawn_blocking(move || pending_to_end(&kafka, &group, &topic))
                .await
                .map_err(|e| SubscriptionError::Unavailable(e.to_string()))?
                .map_err(SubscriptionError::Unavailable)?
        };
        let pending: i64 = ends.iter().map(|(_, from, to)| to - from).sum();
        if pending == 0 {
            return Ok(0);
        }
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let generation = self.log.read().state(name).generation;
        let deps = self.deps.clone();
        let redrive = Arc::new(redrive);
        let watcher_stats = stats.clone();
        let target = pending as u64;
        tokio::spawn(async move {
            let work = tokio::spawn(worker::run(redrive.clone(), generation, deps, stats, stopped));
            // Stop once as many records were handled as were waiting when the redrive began.
            let started = Instant::now();
            loop {
                let handled = watcher_stats.delivered.load(std::sync::atomic::Ordering::Relaxed)
                    + watcher_stats.dead_lettered.load(std::sync::atomic::Ordering::Relaxed)
                    + watcher_stats.skipped.load(std::sync::atomic::Ordering::Relaxed);
                if handled >= target || started.elapsed() > Duration::from_secs(3600) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = stop.send(true);
            let _ = work.await;
            tracing::info!(subscription = redrive.name, "redrive finished");
        });
        Ok(pending)
    }

    /// Every subscription, with its state and this replica's counters.
    pub async fn list(&self) -> Vec<Status> {
        let names: Vec<String> = self.specs(&self.log.read()).into_keys().collect();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Ok(status) = self.status(&name, false).await {
                out.push(status);
            }
        }
        out
    }

    /// One subscription; `lag` asks Kafka for the group's offsets (slower).
    pub async fn status(&self, name: &str, lag: bool) -> Result<Status, SubscriptionError> {
        let (spec, source, state) = {
            let current = self.log.read();
            let (spec, source) =
                self.specs(&current).remove(name).ok_or_else(|| SubscriptionError::NotFound(name.to_owned()))?;
            (spec, source, current.state(name))
        };
        let stats = self.running.lock().unwrap_or_else(PoisonError::into_inner).get(name).map(|r| r.stats.clone());
        let stats = stats.unwrap_or_default();
        let lag = if lag {
            let (kafka, spec) = (self.deps.kafka.clone(), spec.clone());
            tokio::task::spawn_blocking(move || group_lag(&kafka, &spec))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        use std::sync::atomic::Ordering as A;
        Ok(Status {
            source,
            state: state.state,
            reason: state.reason,
            generation: state.generation,
            delivered: stats.delivered.load(A::Relaxed),
            failed_attempts: stats.failed_attempts.load(A::Relaxed),
            dead_lettered: stats.dead_lettered.load(A::Relaxed),
            skipped: stats.skipped.load(A::Relaxed),
            in_flight: stats.in_flight.load(A::Relaxed),
            buffered: stats.buffered.load(A::Relaxed),
            fetch_paused: stats.paused.load(A::Relaxed),
            last_error: stats.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            assigned: stats.assignment(),
            lag,
            spec,
        })
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
        tokio::task::spawn_blocking(move || move_group(&kafka, &spec, &positions))
            .await
            .map_err(|e| SubscriptionError::Unavailable(e.to_string()))?
            .map_err(SubscriptionError::Unavailable)
    }
}

#[derive(Debug, Clone)]
enum Positions {
    Time(i64),
    Offsets(BTreeMap<String, BTreeMap<i32, i64>>),
}

fn admin_consumer(kafka: &crate::config::KafkaConfig, group: &str) -> Result<BaseConsumer, String> {
    let mut config = client_config(kafka);
    config.set("group.id", group).set("enable.auto.commit", "false");
    config.create().map_err(|e| format!("cannot create a consumer: {e}"))
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, String> {
    let metadata =
        consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT).map_err(|e| format!("metadata of {topic}: {e}"))?;
    Ok(metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
}

/// Waits until the group has no members, then commits the positions for every partition.
fn move_group(
    kafka: &crate::config::KafkaConfig,
    spec: &SubscriptionSpec,
    positions: &Positions,
) -> Result<(), String> {
    let group = spec.group_id();
    let consumer = admin_consumer(kafka, &group)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let groups = consumer
            .fetch_group_list(Some(&group), KAFKA_TIMEOUT)
            .map_err(|e| format!("cannot describe group {group}: {e}"))?;
        if groups.groups().iter().all(|g| g.members().is_empty()) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("group {group} still has members after 60 s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut list = TopicPartitionList::new();
    for topic in &spec.topics {
        for partition in partitions(&consumer, topic)? {
            let offset = match positions {
                Positions::Time(ms) => Offset::Offset(*ms),
                Positions::Offsets(offsets) => {
                    Offset::Offset(offsets.get(topic).and_then(|p| p.get(&partition)).copied().unwrap_or(0))
                }
            };
            list.add_partition_offset(topic, partition, offset).map_err(|e| e.to_string())?;
        }
    }
    let list = match positions {
        // The first offset at or after the time, per partition (the end where there is none).
        Positions::Time(_) => {
            let mut found =
                consumer.offsets_for_times(list, KAFKA_TIMEOUT).map_err(|e| format!("offsets for the time: {e}"))?;
            for element in found.clone().elements() {
                if element.offset() == Offset::End {
                    let (_, high) = consumer
                        .fetch_watermarks(element.topic(), element.partition(), KAFKA_TIMEOUT)
                        .map_err(|e| e.to_string())?;
                    found
                        .set_partition_offset(element.topic(), element.partition(), Offset::Offset(high))
                        .map_err(|e| e.to_string())?;
                }
            }
            found
        }
        Positions::Offsets(_) => list,
    };
    consumer.assign(&list).map_err(|e| e.to_string())?;
    consumer.commit(&list, CommitMode::Sync).map_err(|e| format!("cannot commit the start offsets: {e}"))
}

/// Commits the offsets of time `ms` for a subscription whose group has never committed and has no
/// members: a new subscription. Anything else is left as it is.
fn start_new_group_at(kafka: &crate::config::KafkaConfig, spec: &SubscriptionSpec, ms: i64) -> Result<(), String> {
    let group = spec.group_id();
    let consumer = admin_consumer(kafka, &group)?;
    let mut list = TopicPartitionList::new();
    for topic in &spec.topics {
        for partition in partitions(&consumer, topic)? {
            list.add_partition(topic, partition);
        }
    }
    let committed = consumer.committed_offsets(list, KAFKA_TIMEOUT).map_err(|e| e.to_string())?;
    if committed.elements().iter().any(|e| e.offset().to_raw().is_some_and(|o| o >= 0)) {
        return Ok(());
    }
    let groups = consumer.fetch_group_list(Some(&group), KAFKA_TIMEOUT).map_err(|e| e.to_string())?;
    if groups.groups().iter().any(|g| !g.members().is_empty()) {
        return Ok(());
    }
    drop(consumer);
    move_group(kafka, spec, &Positions::Time(ms))
}

/// For a group and one topic: (partition, committed offset or earliest, end) per partition.
fn pending_to_end(
    kafka: &crate::config::KafkaConfig,
    group: &str,
    topic: &str,
) -> Result<Vec<(i32, i64, i64)>, String> {
    let consumer = admin_consumer(kafka, group)?;
    let mut out = Vec::new();
    let parts = partitions(&consumer, topic)?;
    let mut list = TopicPartitionList::new();
    for partition in &parts {
        list.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(list, KAFKA_TIMEOUT).map_err(|e| e.to_string())?;
    for partition in parts {
        let (low, high) = consumer.fetch_watermarks(topic, partition, KAFKA_TIMEOUT).map_err(|e| e.to_string())?;
        let from = committed
            .find_partition(topic, partition)
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(low);
        out.push((partition, from, high));
    }
    Ok(out)
}

/// Records between the group's committed offsets and the ends of its topics.
fn group_lag(
    kafka: &crate::config::KafkaConfig,
    spec: &SubscriptionSpec,
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, String> {
    let mut out = BTreeMap::new();
    for topic in &spec.topics {
        let pending = pending_to_end(kafka, &spec.group_id(), topic)?;
        out.insert(topic.clone(), pending.into_iter().map(|(p, from, to)| (p, (to - from).max(0))).collect());
    }
    Ok(out)
}
