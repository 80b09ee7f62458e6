//! Webhook delivery across gateway processes, as replicas live in production, and the chaos it
//! must ride out without skipping a record: a replica killed (SIGKILL) or stopped (SIGTERM)
//! while deliveries are retrying and started again, two replicas rebalancing in the middle of
//! retries, the broker restarted during delivery, a receiver down for a minute. The chaos tests
//! use the subscription's default start (`latest`), as users get it; each checks that every
//! record arrived (or was dead-lettered) and that each key's records arrived in order. The real
//! `sluice` binary, real Kafka brokers and a real HTTP receiver.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::receiver::{Behaviour, Received, Receiver};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice");
const SCHEMA: &str = include_str!("../../deploy/examples/schemas/order-placed-v1.avsc");
const PATH: &str = "hooks/orders";
const WAIT: Duration = Duration::from_secs(90);
/// Customers the chaos tests key their events by: ten keys, so each has a sequence to keep.
const CUSTOMERS: usize = 10;

/// A topic with a subscription to a receiver, and the config every gateway of a test shares.
struct World {
    topic: String,
    dlq: String,
    subscription: String,
    receiver: Receiver,
    config: String,
    http: reqwest::Client,
    bootstrap: String,
}

/// How a test's subscription is declared.
struct Setup<'a> {
    partitions: i32,
    /// `start = …` for the subscription, or nothing for the default.
    start: Option<&'a str>,
    /// The route's key pointer: `/order_id` (every event its own key) or `/customer_id`.
    key: &'a str,
    /// More lines of the `[[subscriptions]]` entry (`retry`, …).
    extra: &'a str,
    /// A broker of the test's own, instead of the shared one.
    kafka: Option<&'a Kafka>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self { partitions: 3, start: Some("earliest"), key: "/order_id", extra: "", kafka: None }
    }
}

impl World {
    async fn new(partitions: i32) -> anyhow::Result<Self> {
        Self::with(Setup { partitions, ..Setup::default() }).await
    }

    async fn with(setup: Setup<'_>) -> anyhow::Result<Self> {
        let kafka = setup.kafka.unwrap_or_else(|| Kafka::shared());
        let topic = unique_name("replicas");
        let dlq = format!("{topic}-dlq");
        kafka.create_topic(&topic, setup.partitions, &[]).await?;
        kafka.create_topic(&dlq, 1, &[]).await?;
        let receiver = Receiver::start().await?;
        let subscription = unique_name("sub");
        let start = setup.start.map(|s| format!("start = \"{s}\"\n")).unwrap_or_default();
        let config = format!(
            r#"
[kafka]
bootstrap_servers = "{bootstrap}"

[registry]
url = "embedded"
topic = "{registry}"

[delivery]
topic = "{subscriptions}"
allow_networks = ["127.0.0.0/8"]

[[topics]]
name = "{topic}"
format = "avro"
key = "{key}"

[[subscriptions]]
name = "{subscription}"
topics = ["{topic}"]
url = "{url}"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
{start}concurrency = 4
dead_letter_topic = "{dlq}"
{extra}
"#,
            bootstrap = kafka.bootstrap_servers(),
            registry = unique_name("_schemas"),
            subscriptions = unique_name("_subscriptions"),
            url = receiver.url(PATH),
            key = setup.key,
            extra = setup.extra,
        );
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { topic, dlq, subscription, receiver, config, http, bootstrap: kafka.bootstrap_servers() })
    }

    async fn register(&self, gateway: &GatewayProcess) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/registry/subjects/{}-value/versions", gateway.base(), self.topic))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(json!({ "schema": SCHEMA }).to_string())
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "registering: {}", response.text().await?);
        Ok(())
    }

    /// Produces orders `o-{first}`..`o-{last}` through a gateway, order `o-i` for customer
    /// `c-{i % 10}`; returns their ids.
    async fn produce(&self, gateway: &GatewayProcess, range: std::ops::Range<usize>) -> anyhow::Result<Vec<String>> {
        let ids: Vec<String> = range.clone().map(|i| format!("o-{i}")).collect();
        let events: Vec<Value> = range
            .map(|i| {
                json!({"order_id": format!("o-{i}"), "customer_id": format!("c-{}", i % CUSTOMERS),
                       "total_cents": 1999, "currency": "EUR", "placed_at": 1_795_773_600_123_i64})
            })
            .collect();
        let response =
            self.http.post(format!("{}/v1/topics/{}/events", gateway.base(), self.topic)).json(&events).send().await?;
        anyhow::ensure!(response.status().is_success(), "produce: {}", response.text().await?);
        Ok(ids)
    }

    async fn status(&self, gateway: &GatewayProcess) -> anyhow::Result<Value> {
        let url = format!("{}/v1/subscriptions/{}", gateway.base(), self.subscription);
        Ok(self.http.get(url).send().await?.json().await?)
    }

    /// Waits until the receiver has every one of `ids` at least once; returns all requests.
    async fn all_of(&self, ids: &[String]) -> Vec<Received> {
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.receiver
            .wait_until(PATH, WAIT, |received| {
                let got = order_ids(received);
                wanted.iter().all(|id| got.contains(*id))
            })
            .await
    }
}

fn order_ids(received: &[Received]) -> HashSet<String> {
    received.iter().filter_map(|r| r.json()["order_id"].as_str().map(str::to_owned)).collect()
}

/// Asserts that every id arrived, and that every copy of one event carried the same webhook-id.
fn assert_each_delivered(received: &[Received], ids: &[String]) {
    let got = order_ids(received);
    let missing: Vec<&String> = ids.iter().filter(|id| !got.contains(*id)).collect();
    assert!(missing.is_empty(), "{} of {} events never arrived: {missing:?}", missing.len(), ids.len());
    let mut webhook_ids: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in received {
        if let Some(id) = r.json()["order_id"].as_str() {
            webhook_ids.entry(id.to_owned()).or_default().insert(r.header("webhook-id").to_owned());
        }
    }
    for (order, seen) in webhook_ids {
        assert_eq!(seen.len(), 1, "copies of {order} carried different webhook-ids: {seen:?}");
    }
}

/// The partitions a replica holds, as `topic/partition` strings.
fn assigned(status: &Value) -> BTreeSet<String> {
    status["assigned"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(topic, partitions)| {
            partitions.as_array().into_iter().flatten().filter_map(Value::as_i64).map(move |p| format!("{topic}/{p}"))
        })
        .collect()
}

/// Polls `check` until it yields a value or `WAIT` passes.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leader_moving(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(code, NotLeaderForPartition | LeaderNotAvailable | UnknownTopicOrPartition)
}

async fn dead_lettered(world: &World) -> anyhow::Result<i64> {
    let (bootstrap, topic) = (world.bootstrap.clone(), world.dlq.clone());
    tokio::task::spawn_blocking(move || {
        use rdkafka::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
        // Right after a broker restart the partition may have no leader yet: that answer is
        // transient, so ask again until the broker has one (or the deadline says otherwise).
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)) {
                Ok((low, high)) => return Ok(high - low),
                Err(error)
                    if error.rdkafka_error_code().is_some_and(leader_moving) && std::time::Instant::now() < give_up =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(error) => return Err(error.into()),
            }
        }
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_delivery_redelivers_on_restart_and_skips_nothing() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let world = World::new(3).await?;
    // Slow enough that deliveries are still going when the gateway dies.
    world.receiver.set(PATH, Behaviour::Delay(Duration::from_millis(40)));
    let mut gateway = GatewayProcess::start("sluice", BINARY, &world.config).await?;
    world.register(&gateway).await?;
    let ids = world.produce(&gateway, 0..300).await?;

    world.receiver.wait_until(PATH, WAIT, |received| order_ids(received).len() >= 40).await;
    gateway.kill()?;
    let before = order_ids(&world.receiver.received(PATH)).len();
    assert!((40..300).contains(&before), "the kill should land mid-delivery; {before} of 300 had arrived");

    gateway.restart().await?;
    let received = world.all_of(&ids).await;
    assert_each_delivered(&received, &ids);
    assert_eq!(dead_lettered(&world).await?, 0, "nothing should have been dead-lettered");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_a_subscription_and_one_stopping_hands_its_partitions_over() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let world = World::new(4).await?;
    let a = GatewayProcess::start("sluice-a", BINARY, &world.config).await?;
    world.register(&a).await?;
    let mut b = GatewayProcess::start("sluice-b", BINARY, &world.config).await?;

    // Both replicas hold a share of the four partitions, and no partition is held twice.
    let (held_a, held_b) = eventually("both replicas hold partitions", async || {
        let (sa, sb) = (assigned(&world.status(&a).await?), assigned(&world.status(&b).await?));
        Ok((!sa.is_empty() && !sb.is_empty() && sa.len() + sb.len() == 4).then_some((sa, sb)))
    })
    .await?;
    assert!(held_a.is_disjoint(&held_b), "a partition held by both: {held_a:?} {held_b:?}");

    let first = world.produce(&a, 0..200).await?;
    assert_each_delivered(&world.all_of(&first).await, &first);
    let delivered = |status: &Value| status["delivered"].as_u64().unwrap_or(0);
    let (by_a, by_b) = (delivered(&world.status(&a).await?), delivered(&world.status(&b).await?));
    assert!(by_a > 0 && by_b > 0, "both replicas should deliver: a {by_a}, b {by_b}");
    assert!(by_a + by_b >= 200, "a {by_a} + b {by_b} deliveries for 200 events");

    // Stop b while it has deliveries in flight: a takes its partitions and delivers the rest.
    world.receiver.set(PATH, Behaviour::Delay(Duration::from_millis(30)));
    let second = world.produce(&a, 200..400).await?;
    world.receiver.wait_until(PATH, WAIT, |received| order_ids(received).len() >= 220).await;
    b.stop().await?;
    eventually("a holds every partition", async || Ok((assigned(&world.status(&a).await?).len() == 4).then_some(())))
        .await?;
    let received = world.all_of(&second).await;
    assert_each_delivered(&received, &[first, second].concat());
    assert_eq!(dead_lettered(&world).await?, 0, "nothing should have been dead-lettered");
    Ok(())
}

/// Order ids answered 200 by the receiver.
fn delivered_ids(received: &[Received]) -> HashSet<String> {
    received
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.json()["order_id"].as_str().map(str::to_owned))
        .collect()
}

/// Every id answered 200 at least once, or (when `dead` allows) went to the dead letter topic;
/// and each customer's orders were first delivered in the order they were produced.
fn assert_complete_and_in_order(received: &[Received], ids: &[String]) {
    let delivered = delivered_ids(received);
    let missing: Vec<&String> = ids.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(missing.is_empty(), "{} of {} events skipped: {missing:?}", missing.len(), ids.len());
    let mut first: BTreeMap<usize, usize> = BTreeMap::new();
    for (at, r) in received.iter().enumerate().filter(|(_, r)| r.status == 200) {
        let number = r.json()["order_id"].as_str().and_then(|id| id.strip_prefix("o-")).and_then(|n| n.parse().ok());
        if let Some(number) = number {
            first.entry(number).or_insert(at);
        }
    }
    for customer in 0..CUSTOMERS {
        let sequence: Vec<(usize, usize)> =
            first.iter().filter(|(n, _)| *n % CUSTOMERS == customer).map(|(n, at)| (*n, *at)).collect();
        for pair in sequence.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "customer c-{customer}: o-{} was first delivered after o-{}",
                pair[0].0,
                pair[1].0
            );
        }
    }
}

/// Retries that keep trying for minutes, quickly: the chaos must not exhaust them.
const PATIENT: &str = "retry = { max_attempts = 100000, initial_backoff_ms = 100, max_backoff_ms = 1000 }";

/// A chaos world: keyed by customer, the default start, patient retries.
async fn chaos(partitions: i32, kafka: Option<&Kafka>) -> anyhow::Result<World> {
    World::with(Setup { partitions, start: None, key: "/customer_id", extra: PATIENT, kafka }).await
}

/// Waits until the gateway holds all `partitions` (so records produced now come after the start
/// position the subscription committed).
async fn holds(world: &World, gateway: &GatewayProcess, partitions: usize) -> anyhow::Result<()> {
    eventually("the gateway holds its partitions", async || {
        Ok((assigned(&world.status(gateway).await?).len() == partitions).then_some(()))
    })
    .await
}

/// Waits until every one of `ids` has been tried at least once.
async fn all_tried(world: &World, ids: &[String]) {
    world.receiver.wait_until(PATH, WAIT, |received| order_ids(received).len() >= ids.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_start_stopped_while_the_first_records_retry_skips_nothing() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    // The scenario of the issue: a new subscription with the default start, its receiver down,
    // 20 events retried, the gateway stopped with SIGTERM and started again, the receiver back.
    let world = chaos(1, None).await?;
    world.receiver.set(PATH, Behaviour::Always(503));
    let mut gateway = GatewayProcess::start("sluice", BINARY, &world.config).await?;
    world.register(&gateway).await?;
    holds(&world, &gateway, 1).await?;
    let ids = world.produce(&gateway, 0..20).await?;
    // Only the first record of each key is tried while the receiver refuses: 10 keys.
    world.receiver.wait_until(PATH, WAIT, |received| order_ids(received).len() >= CUSTOMERS).await;
    gateway.stop().await?;
    gateway.restart().await?;
    world.receiver.set(PATH, Behaviour::Ok);
    let received = world.receiver.wait_until(PATH, WAIT, |r| delivered_ids(r).len() >= ids.len()).await;
    assert_complete_and_in_order(&received, &ids);
    assert_eq!(dead_lettered(&world).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_while_deliveries_retry_skips_nothing_on_restart() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let world = chaos(3, None).await?;
    // Every delivery fails twice before it goes through: retries are under way when it dies.
    world.receiver.set(PATH, Behaviour::FailFirst { times: 2, status: 503, retry_after: None });
    let mut gateway = GatewayProcess::start("sluice", BINARY, &world.config).await?;
    world.register(&gateway).await?;
    holds(&world, &gateway, 3).await?;
    let ids = world.produce(&gateway, 0..150).await?;
    world.receiver.wait_until(PATH, WAIT, |received| delivered_ids(received).len() >= 20).await;
    gateway.kill()?;
    let before = delivered_ids(&world.receiver.received(PATH)).len();
    assert!(before < 150, "the kill should land mid-delivery; {before} of 150 were delivered");
    gateway.restart().await?;
    let received = world.receiver.wait_until(PATH, WAIT, |r| delivered_ids(r).len() >= ids.len()).await;
    assert_complete_and_in_order(&received, &ids);
    assert_eq!(dead_lettered(&world).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_rebalancing_in_the_middle_of_retries_skip_nothing() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let world = chaos(4, None).await?;
    world.receiver.set(PATH, Behaviour::Always(503));
    let a = GatewayProcess::start("sluice-a", BINARY, &world.config).await?;
    world.register(&a).await?;
    holds(&world, &a, 4).await?;
    let ids = world.produce(&a, 0..100).await?;
    world.receiver.wait_until(PATH, WAIT, |received| order_ids(received).len() >= CUSTOMERS).await;
    // A second replica joins while every key's head is retrying: partitions move to it.
    let mut b = GatewayProcess::start("sluice-b", BINARY, &world.config).await?;
    eventually("both replicas hold partitions", async || {
        let (sa, sb) = (assigned(&world.status(&a).await?), assigned(&world.status(&b).await?));
        Ok((!sa.is_empty() && !sb.is_empty() && sa.len() + sb.len() == 4).then_some(()))
    })
    .await?;
    world.receiver.set(PATH, Behaviour::Ok);
    world.receiver.wait_until(PATH, WAIT, |received| delivered_ids(received).len() >= 30).await;
    // And leaves again in the middle of delivering.
    b.stop().await?;
    let received = world.receiver.wait_until(PATH, WAIT, |r| delivered_ids(r).len() >= ids.len()).await;
    assert_complete_and_in_order(&received, &ids);
    assert_eq!(dead_lettered(&world).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_restarted_during_delivery_skips_nothing() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let mut kafka = Kafka::start().await?;
    let world = chaos(3, Some(&kafka)).await?;
    world.receiver.set(PATH, Behaviour::Delay(Duration::from_millis(20)));
    let gateway = GatewayProcess::start("sluice", BINARY, &world.config).await?;
    world.register(&gateway).await?;
    holds(&world, &gateway, 3).await?;
    let ids = world.produce(&gateway, 0..300).await?;
    world.receiver.wait_until(PATH, WAIT, |received| delivered_ids(received).len() >= 40).await;
    kafka.restart().await?;
    let received = world.receiver.wait_until(PATH, WAIT, |r| delivered_ids(r).len() >= ids.len()).await;
    assert_complete_and_in_order(&received, &ids);
    assert_eq!(dead_lettered(&world).await?, 0);
    drop(gateway);
    kafka.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_minute_gets_everything_when_it_is_back() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let world = chaos(2, None).await?;
    world.receiver.set(PATH, Behaviour::Always(503));
    let gateway = GatewayProcess::start("sluice", BINARY, &world.config).await?;
    world.register(&gateway).await?;
    holds(&world, &gateway, 2).await?;
    let ids = world.produce(&gateway, 0..60).await?;
    all_tried(&world, &ids[..CUSTOMERS]).await;
    // Down for a minute, measured from its first refusal.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(delivered_ids(&world.receiver.received(PATH)).is_empty());
    world.receiver.set(PATH, Behaviour::Ok);
    let received = world.receiver.wait_until(PATH, WAIT, |r| delivered_ids(r).len() >= ids.len()).await;
    assert_complete_and_in_order(&received, &ids);
    assert_eq!(dead_lettered(&world).await?, 0);
    Ok(())
}
