//! Routes' topics as declared (issue 16): `[topics.create]` creates a missing topic with its
//! settings, a changed partition count refuses start-up (or warns, saying the key → partition
//! mapping changed), and `min.insync.replicas` below 2 is refused on a three-broker cluster.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use reqwest::StatusCode;
use serde_json::json;
use sluice::config::TopicChecks;
use sluice_tests::{Kafka, unique_name};
use support::{Env, RegistryKind};

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create()?)
}

/// A topic's partition count, replication factor and (non-default and default) configs.
async fn describe(bootstrap: &str, topic: &str) -> anyhow::Result<(usize, usize, HashMap<String, String>)> {
    let probe: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let name = topic.to_owned();
    let metadata =
        tokio::task::spawn_blocking(move || probe.fetch_metadata(Some(&name), Duration::from_secs(10))).await??;
    let found = metadata.topics().iter().find(|t| t.name() == topic).expect("the topic");
    let (partitions, replicas) =
        (found.partitions().len(), found.partitions().first().map_or(0, |p| p.replicas().len()));
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin(bootstrap)?.describe_configs(&[ResourceSpecifier::Topic(topic)], &options).await?;
    let resource = described.into_iter().next().expect("one resource").map_err(|code| anyhow::anyhow!("{code}"))?;
    let configs = resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))).collect();
    Ok((partitions, replicas, configs))
}

fn route(topic: &str, create: &str) -> String {
    format!("[[topics]]\nname = \"{topic}\"\nformat = \"json\"\nkey = \"/id\"\n{create}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_topic_is_created_and_a_changed_partition_count_refuses_start_up() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let bootstrap = Kafka::shared().bootstrap_servers();
    let topic = unique_name("declared");
    let create = "[topics.create]\npartitions = 4\nretention_ms = 3600000\ncleanup_policy = \"compact,delete\"\n";
    let env = Env::start(RegistryKind::Embedded, &route(&topic, create)).await?;
    let (partitions, replicas, configs) = describe(&bootstrap, &topic).await?;
    assert_eq!((partitions, replicas), (4, 1), "created as declared, replicated as the one broker allows");
    assert_eq!(configs["retention.ms"], "3600000");
    assert_eq!(configs["cleanup.policy"], "compact,delete");
    let reply = env.post(&topic, &json!({"id": "k-1"})).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    env.gateway.stop().await?;

    // The same topic declared with another partition count: refused, saying why.
    let changed = route(&topic, &create.replace("partitions = 4", "partitions = 6"));
    let refused = Env::start(RegistryKind::Embedded, &changed).await.err().expect("start-up is refused");
    let text = format!("{refused:#}");
    assert!(text.contains(&format!("topic '{topic}' has 4 partitions, but [topics.create] declares 6")), "{text}");
    assert!(text.contains("key → partition mapping of new records differs"), "{text}");

    // With topic_checks = "warn" it starts, with the same finding logged; the topic is untouched.
    let warn = Env::start_on(RegistryKind::Embedded, &bootstrap, &changed, "topic_checks = \"warn\"\n", None).await?;
    let config =
        sluice::config::load_str(&format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n{changed}"), |_| None)
            .map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let client = sluice::kafka::client_config(&config.kafka);
    let findings = sluice::kafka::manage::prepare(&client, &config.topics, TopicChecks::Warn).await?;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].to_string().contains("key → partition mapping"), "{}", findings[0]);
    assert_eq!(describe(&bootstrap, &topic).await?.0, 4, "Sluice never changes an existing topic");
    warn.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn min_insync_replicas_below_two_is_refused_on_three_brokers() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let cluster = Kafka::start_cluster(3).await?;
    let bootstrap = cluster.bootstrap_servers();

    // A topic replicated three times with min.insync.replicas = 1, made by someone else.
    let weak = unique_name("weak");
    let new = NewTopic::new(&weak, 3, TopicReplication::Fixed(3)).set("min.insync.replicas", "1");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin(&bootstrap)?.create_topics([&new], &options).await? {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating {topic}: {code}"))?;
    }
    let refused = Env::start_on(RegistryKind::Embedded, &bootstrap, &route(&weak, ""), "", None)
        .await
        .err()
        .expect("start-up is refused");
    let text = format!("{refused:#}");
    assert!(text.contains(&format!("topic '{weak}' has min.insync.replicas = 1 on a cluster of 3 brokers")), "{text}");
    let warned =
        Env::start_on(RegistryKind::Embedded, &bootstrap, &route(&weak, ""), "topic_checks = \"warn\"\n", None).await?;
    warned.gateway.stop().await?;

    // A declared topic on this cluster gets three replicas and min.insync.replicas = 2 by default.
    let safe = unique_name("safe");
    let env =
        Env::start_on(RegistryKind::Embedded, &bootstrap, &route(&safe, "[topics.create]\npartitions = 2\n"), "", None)
            .await?;
    let (partitions, replicas, configs) = describe(&bootstrap, &safe).await?;
    assert_eq!((partitions, replicas, configs["min.insync.replicas"].as_str()), (2, 3, "2"));
    let reply = env.post(&safe, &json!({"id": "k-1"})).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    env.gateway.stop().await?;
    Ok(())
}
