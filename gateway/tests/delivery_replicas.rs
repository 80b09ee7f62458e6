//! Webhook delivery across gateway processes, as replicas live in production: one killed with
//! SIGKILL mid-delivery and started again, and two sharing one subscription until one stops.
//! The real `sluice` binary, the harness's real Kafka broker and a real HTTP receiver.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::receiver::{Behaviour, Received, Receiver};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice");
const SCHEMA: &str = include_str!("../../deploy/examples/schemas/order-placed-v1.avsc");
const PATH: &str = "hooks/orders";
const WAIT: Duration = Duration::from_secs(90);

/// A topic with a subscription to a receiver, and the config every gateway of a test shares.
struct World {
    topic: String,
    dlq: String,
    subscription: String,
    receiver: Receiver,
    config: String,
    http: reqwest::Client,
}

impl World {
    async fn new(partitions: i32) -> anyhow::Result<Self> {
        let kafka = Kafka::shared();
        let topic = unique_name("replicas");
        let dlq = format!("{topic}-dlq");
        kafka.create_topic(&topic, partitions, &[]).await?;
        kafka.create_topic(&dlq, 1, &[]).await?;
        let receiver = Receiver::start().await?;
        let subscription = unique_name("sub");
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
key = "/order_id"

[[subscriptions]]
name = "{subscription}"
topics = ["{topic}"]
url = "{url}"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
start = "earliest"
concurrency = 4
dead_letter_topic = "{dlq}"
"#,
            bootstrap = kafka.bootstrap_servers(),
            registry = unique_name("_schemas"),
            subscriptions = unique_name("_subscriptions"),
            url = receiver.url(PATH),
        );
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { topic, dlq, subscription, receiver, config, http })
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

    /// Produces orders `o-{first}`..`o-{last}` through a gateway; returns their ids.
    async fn produce(&self, gateway: &GatewayProcess, range: std::ops::Range<usize>) -> anyhow::Result<Vec<String>> {
        let ids: Vec<String> = range.map(|i| format!("o-{i}")).collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({"order_id": id, "customer_id": "c-42", "total_cents": 1999, "currency": "EUR",
                       "placed_at": 1_795_773_600_123_i64})
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

async fn dead_lettered(world: &World) -> anyhow::Result<i64> {
    let (bootstrap, topic) = (Kafka::shared().bootstrap_servers(), world.dlq.clone());
    tokio::task::spawn_blocking(move || {
        use rdkafka::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
        let (low, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10))?;
        Ok(high - low)
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
