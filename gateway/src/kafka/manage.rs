//! Routes' topics as declared: `[topics.create]` creates a missing topic at start and checks an
//! existing one, and every route's topic is checked for `min.insync.replicas` on clusters where
//! it matters.
//!
//! What is checked, against one metadata request and one `DescribeConfigs`:
//! - a declared topic's partition count (a different count sends a key to a different partition
//!   than the one its earlier records are on, so per-key order breaks across the change),
//!   replication factor, `min.insync.replicas`, `retention.ms` and `cleanup.policy`;
//! - on a cluster of 3 or more brokers, `min.insync.replicas` ≥ 2 for every exact route's topic:
//!   with 1, an `acks=all` write is acknowledged by the leader alone when the others lag, and lost
//!   if that broker fails.
//!
//! Each finding is logged; with `kafka.topic_checks = "refuse"` (the default) start-up then stops
//! with all of them, with `"warn"` it goes on. Sluice never changes an existing topic.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;

use crate::config::{CreateTopic, TopicChecks, TopicConfig};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A route's topic that is not as it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error(
        "topic '{topic}' has {actual} partitions, but [topics.create] declares {declared}: the key → partition \
         mapping of new records differs from the declared one, so a key's new records go to another partition \
         than its earlier ones"
    )]
    Partitions { topic: String, declared: i32, actual: i32 },
    #[error(
        "topic '{topic}' has min.insync.replicas = {actual} on a cluster of {brokers} brokers: an acknowledged \
         write can be lost with one broker; set it to 2 or more"
    )]
    MinInsyncTooLow { topic: String, actual: i32, brokers: usize },
    #[error("topic '{topic}' has {setting} = {actual}, but [topics.create] declares {declared}")]
    Differs { topic: String, setting: &'static str, declared: String, actual: String },
}

/// Why start-up cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("cannot read or create the routes' topics: {0}")]
    Kafka(String),
    #[error("routed topics are not as they should be (kafka.topic_checks = \"warn\" starts anyway):\n  {}",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused(Vec<Finding>),
}

/// A topic as the cluster has it.
struct Existing {
    partitions: i32,
    replication: usize,
    /// Every partition has a leader.
    led: bool,
}

/// Creates the declared topics that are missing and checks the routes' topics (see the module's
/// documentation). Returns the findings it logged (and, in `warn` mode, started with).
pub async fn prepare(
    client: &ClientConfig,
    routes: &[TopicConfig],
    checks: TopicChecks,
) -> Result<Vec<Finding>, ManageError> {
    let kafka = |e: &dyn std::fmt::Display| ManageError::Kafka(e.to_string());
    let exact: Vec<&TopicConfig> = routes.iter().filter(|r| !crate::route::is_pattern(&r.name)).collect();
    let (brokers, mut existing) = metadata(client).await?;
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(|e| kafka(&e))?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT));

    // Missing declared topics, created as declared.
    let mut created = Vec::new();
    for route in &exact {
        let Some(create) = &route.create else { continue };
        if existing.contains_key(&route.name) {
            continue;
        }
        let replication = create.replication_factor.map_or_else(|| brokers.clamp(1, 3), |r| r as usize);
        let settings = settings(create, brokers);
        let mut new = NewTopic::new(&route.name, create.partitions, TopicReplication::Fixed(replication as i32));
        for (key, value) in &settings {
            new = new.set(key, value);
        }
        for result in admin.create_topics([&new], &options).await.map_err(|e| kafka(&e))? {
            match result {
                Ok(_) => {
                    tracing::info!(
                        topic = route.name,
                        partitions = create.partitions,
                        replication,
                        ?settings,
                        "created a routed topic as [topics.create] declares it"
                    );
                    created.push(route.name.clone());
                }
                // Another replica created it first: checked below, as any existing topic.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(ManageError::Kafka(format!("cannot create topic {topic}: {code}"))),
            }
        }
    }
    if !created.is_empty() {
        // A created topic is served once the metadata shows it (with a leader per partition):
        // the routes' first requests must find it.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            existing = metadata(client).await?.1;
            if created.iter().all(|name| existing.get(name).is_some_and(|t| t.led)) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ManageError::Kafka(format!("created topics {created:?} have no leaders yet")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // What every existing routed topic is configured with.
    let checked: Vec<&TopicConfig> = exact
        .iter()
        .copied()
        .filter(|r| existing.contains_key(&r.name) && (r.create.is_some() || brokers >= 3))
        .collect();
    let specifiers: Vec<ResourceSpecifier<'_>> = checked.iter().map(|r| ResourceSpecifier::Topic(&r.name)).collect();
    let mut configs: HashMap<String, HashMap<String, String>> = HashMap::new();
    if !specifiers.is_empty() {
        for result in admin.describe_configs(&specifiers, &options).await.map_err(|e| kafka(&e))? {
            let resource =
                result.map_err(|code| ManageError::Kafka(format!("cannot describe topic configs: {code}")))?;
            let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &resource.specifier else { continue };
            let entries = resource.entries.iter().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect();
            configs.insert(name.clone(), entries);
        }
    }

    let mut findings = Vec::new();
    for route in checked {
        let topic = &existing[&route.name];
        let config = configs.get(&route.name).cloned().unwrap_or_default();
        findings.extend(check(&route.name, route.create.as_ref(), topic, &config, brokers));
    }
    for finding in &findings {
        tracing::warn!(finding = %finding, "routed topic is not as it should be");
    }
    match checks {
        TopicChecks::Refuse if !findings.is_empty() => Err(ManageError::Refused(findings)),
        _ => Ok(findings),
    }
}

/// The topic configs `[topics.create]` sets.
fn settings(create: &CreateTopic, brokers: usize) -> Vec<(&'static str, String)> {
    let mut settings = Vec::new();
    let min_insync = create.min_insync_replicas.or((brokers >= 3).then_some(2));
    if let Some(min) = min_insync {
        settings.push(("min.insync.replicas", min.to_string()));
    }
    if let Some(ms) = create.retention_ms {
        settings.push(("retention.ms", ms.to_string()));
    }
    if let Some(policy) = &create.cleanup_policy {
        settings.push(("cleanup.policy", policy.clone()));
    }
    settings
}

/// What is wrong with one existing topic.
fn check(
    name: &str,
    create: Option<&CreateTopic>,
    topic: &Existing,
    config: &HashMap<String, String>,
    brokers: usize,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let min_insync = config.get("min.insync.replicas").and_then(|v| v.parse::<i32>().ok());
    if let Some(create) = create {
        if topic.partitions != create.partitions {
            findings.push(Finding::Partitions {
                topic: name.to_owned(),
                declared: create.partitions,
                actual: topic.partitions,
            });
        }
        let mut differs = |setting: &'static str, declared: Option<String>, actual: Option<String>| {
            if let Some(declared) = declared
                && actual.as_deref() != Some(&*declared)
            {
                let actual = actual.unwrap_or_else(|| "unknown".into());
                findings.push(Finding::Differs { topic: name.to_owned(), setting, declared, actual });
            }
        };
        differs(
            "replication factor",
            create.replication_factor.map(|r| r.to_string()),
            Some(topic.replication.to_string()),
        );
        differs(
            "min.insync.replicas",
            create.min_insync_replicas.map(|m| m.to_string()),
            min_insync.map(|m| m.to_string()),
        );
        differs("retention.ms", create.retention_ms.map(|m| m.to_string()), config.get("retention.ms").cloned());
        let policy = |text: &str| {
            let mut parts: Vec<&str> = text.split(',').map(str::trim).collect();
            parts.sort_unstable();
            parts.join(",")
        };
        differs(
            "cleanup.policy",
            create.cleanup_policy.as_deref().map(policy),
            config.get("cleanup.policy").map(|p| policy(p)),
        );
    }
    if brokers >= 3
        && let Some(actual) = min_insync
        && actual < 2
        && !findings.iter().any(|f| matches!(f, Finding::Differs { setting: "min.insync.replicas", .. }))
    {
        findings.push(Finding::MinInsyncTooLow { topic: name.to_owned(), actual, brokers });
    }
    findings
}

/// The cluster's broker count and its topics' partition counts and replication.
async fn metadata(client: &ClientConfig) -> Result<(usize, HashMap<String, Existing>), ManageError> {
    let probe: BaseConsumer = client.create().map_err(|e| ManageError::Kafka(e.to_string()))?;
    let metadata = tokio::task::spawn_blocking(move || probe.fetch_metadata(None, TIMEOUT))
        .await
        .map_err(|e| ManageError::Kafka(e.to_string()))?
        .map_err(|e| ManageError::Kafka(format!("metadata request failed: {e}")))?;
    let topics = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| {
            let partitions = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
            let replication = t.partitions().first().map_or(0, |p| p.replicas().len());
            let led = t.partitions().iter().all(|p| p.leader() >= 0);
            (t.name().to_owned(), Existing { partitions, replication, led })
        })
        .collect();
    Ok((metadata.brokers().len(), topics))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(partitions: i32) -> CreateTopic {
        CreateTopic {
            partitions,
            replication_factor: None,
            min_insync_replicas: None,
            retention_ms: None,
            cleanup_policy: None,
        }
    }

    #[test]
    fn a_changed_partition_count_says_the_key_mapping_changed() {
        let topic = Existing { partitions: 6, replication: 1, led: true };
        let findings = check("orders", Some(&declared(3)), &topic, &HashMap::new(), 1);
        assert_eq!(findings, [Finding::Partitions { topic: "orders".into(), declared: 3, actual: 6 }]);
        assert!(findings[0].to_string().contains("key → partition mapping"));
    }

    #[test]
    fn min_insync_replicas_below_two_matters_from_three_brokers() {
        let topic = Existing { partitions: 3, replication: 3, led: true };
        let one: HashMap<String, String> = [("min.insync.replicas".to_owned(), "1".to_owned())].into();
        assert_eq!(check("t", None, &topic, &one, 1), []);
        assert_eq!(
            check("t", None, &topic, &one, 3),
            [Finding::MinInsyncTooLow { topic: "t".into(), actual: 1, brokers: 3 }]
        );
        let two: HashMap<String, String> = [("min.insync.replicas".to_owned(), "2".to_owned())].into();
        assert_eq!(check("t", None, &topic, &two, 3), []);
    }

    #[test]
    fn declared_settings_are_compared_and_created_with_safe_defaults() {
        let create = CreateTopic {
            replication_factor: Some(3),
            retention_ms: Some(86_400_000),
            cleanup_policy: Some("delete,compact".into()),
            ..declared(3)
        };
        let config: HashMap<String, String> = [
            ("retention.ms".to_owned(), "604800000".to_owned()),
            ("cleanup.policy".to_owned(), "compact,delete".to_owned()),
        ]
        .into();
        let findings = check("t", Some(&create), &Existing { partitions: 3, replication: 1, led: true }, &config, 1);
        let settings: Vec<&str> = findings
            .iter()
            .map(|f| match f {
                Finding::Differs { setting, .. } => *setting,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(settings, ["replication factor", "retention.ms"], "cleanup.policy's order does not matter");
        assert_eq!(settings_of(&declared(1), 3), [("min.insync.replicas", "2".to_owned())]);
        assert_eq!(settings_of(&declared(1), 1), []);
    }

    fn settings_of(create: &CreateTopic, brokers: usize) -> Vec<(&'static str, String)> {
        settings(create, brokers)
    }
}
