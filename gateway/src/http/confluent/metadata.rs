//! The read-only metadata Confluent's clients call before they produce: v2 `GET /topics`,
//! `/topics/{t}`, `/topics/{t}/partitions[/{p}]`, and v3 clusters, topics and partitions.
//!
//! Sluice shows the topics a caller may produce to through it: topics its routes serve (an
//! exact name, or an existing topic a pattern matches) that exist in Kafka and that the
//! caller's scopes allow. Everything is read from one cluster metadata request per call.
//! v2's `configs` is empty: Sluice does not read topic configurations for this API.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ConfluentError, V2_MEDIA_TYPE};
use crate::auth::{Permission, Principal};
use crate::http::AppState;

/// A topic's partitions as the cluster describes them.
struct Topic {
    name: String,
    partitions: Vec<Partition>,
}

struct Partition {
    id: i32,
    /// −1: no leader.
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// The cluster's id and the topics the caller may see.
struct Snapshot {
    cluster_id: String,
    topics: Vec<Topic>,
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// One metadata request (of one topic, or all), filtered to what the caller may see.
async fn snapshot(app: &AppState, principal: &Principal, topic: Option<&str>) -> Result<Snapshot, ConfluentError> {
    let producer = app.pipeline.producer.clone();
    let only = topic.map(str::to_owned);
    let fetched = tokio::task::spawn_blocking(move || {
        let metadata = producer.fetch_metadata(only.as_deref(), TIMEOUT)?;
        let cluster_id = producer.cluster_id(TIMEOUT).unwrap_or_default();
        let topics: Vec<Topic> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| Topic {
                name: t.name().to_owned(),
                partitions: t
                    .partitions()
                    .iter()
                    .map(|p| Partition {
                        id: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    })
                    .collect(),
            })
            .collect();
        Ok::<_, rdkafka::error::KafkaError>((cluster_id, topics))
    })
    .await;
    let (cluster_id, mut topics) = match fetched {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return Err(unavailable(&error.to_string())),
        Err(error) => return Err(unavailable(&error.to_string())),
    };
    topics.retain(|t| app.routes.get(&t.name).is_some() && principal.allows(Permission::Produce(&t.name)));
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot { cluster_id, topics })
}

fn unavailable(why: &str) -> ConfluentError {
    let mut error = ConfluentError::new(StatusCode::SERVICE_UNAVAILABLE, 50003, format!("Kafka is unavailable: {why}"));
    error.retry_after_s = Some(1);
    error
}

/// Confluent's answer for a topic it does not host.
fn no_topic() -> ConfluentError {
    ConfluentError::new(StatusCode::NOT_FOUND, 40403, "This server does not host this topic-partition.")
}

async fn one_topic(app: &AppState, principal: &Principal, name: &str) -> Result<(String, Topic), ConfluentError> {
    let snapshot = snapshot(app, principal, Some(name)).await?;
    let topic = snapshot.topics.into_iter().find(|t| t.name == name).ok_or_else(no_topic)?;
    Ok((snapshot.cluster_id, topic))
}

fn v2_json(value: &Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(V2_MEDIA_TYPE));
    response
}

fn v2_partition_json(partition: &Partition) -> Value {
    let replicas: Vec<Value> = partition
        .replicas
        .iter()
        .map(|broker| {
            json!({"broker": broker, "leader": *broker == partition.leader, "in_sync": partition.isr.contains(broker)})
        })
        .collect();
    json!({"partition": partition.id, "leader": partition.leader, "replicas": replicas})
}

/// `GET /topics`: the names.
pub async fn v2_topics(State(app): State<Arc<AppState>>, Extension(principal): Extension<Arc<Principal>>) -> Response {
    match snapshot(&app, &principal, None).await {
        Ok(snapshot) => v2_json(&json!(snapshot.topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())),
        Err(error) => error.v2().into_response(),
    }
}

/// `GET /topics/{topic}`
pub async fn v2_topic(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(topic): Path<String>,
) -> Response {
    match one_topic(&app, &principal, &topic).await {
        Ok((_, topic)) => {
            let partitions: Vec<Value> = topic.partitions.iter().map(v2_partition_json).collect();
            v2_json(&json!({"name": topic.name, "configs": {}, "partitions": partitions}))
        }
        Err(error) => error.v2().into_response(),
    }
}

/// `GET /topics/{topic}/partitions`
pub async fn v2_partitions(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(topic): Path<String>,
) -> Response {
    match one_topic(&app, &principal, &topic).await {
        Ok((_, topic)) => v2_json(&Value::Array(topic.partitions.iter().map(v2_partition_json).collect())),
        Err(error) => error.v2().into_response(),
    }
}

/// `GET /topics/{topic}/partitions/{partition}`
pub async fn v2_partition(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((topic, partition)): Path<(String, String)>,
) -> Response {
    let found = async {
        let id: i32 =
            partition.parse().map_err(|_| ConfluentError::status(StatusCode::NOT_FOUND, "HTTP 404 Not Found"))?;
        let (_, topic) = one_topic(&app, &principal, &topic).await?;
        let partition = topic.partitions.iter().find(|p| p.id == id);
        partition
            .map(v2_partition_json)
            .ok_or_else(|| ConfluentError::new(StatusCode::NOT_FOUND, 40402, "Partition not found."))
    };
    match found.await {
        Ok(partition) => v2_json(&partition),
        Err(error) => error.v2().into_response(),
    }
}

/// Where v3 resources are, for their `self` links: this request's scheme and host.
struct Links {
    base: String,
    cluster: String,
}

impl Links {
    fn new(app: &AppState, headers: &HeaderMap, cluster: &str) -> Self {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let scheme = if app.http.tls.is_some() { "https" } else { "http" };
        Self { base: format!("{scheme}://{host}{}", app.http.confluent_prefix), cluster: cluster.to_owned() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v3/clusters/{}{path}", self.base, self.cluster)
    }

    fn related(&self, path: &str) -> Value {
        json!({"related": self.url(path)})
    }

    fn crn(&self, rest: &str) -> String {
        format!("crn:///kafka={}{rest}", self.cluster)
    }

    fn cluster(&self) -> Value {
        json!({
            "kind": "KafkaCluster",
            "metadata": {"self": self.url(""), "resource_name": self.crn("")},
            "cluster_id": self.cluster,
            "controller": Value::Null,
            "acls": self.related("/acls"),
            "brokers": self.related("/brokers"),
            "broker_configs": self.related("/broker-configs"),
            "consumer_groups": self.related("/consumer-groups"),
            "topics": self.related("/topics"),
            "partition_reassignments": self.related("/topics/-/partitions/-/reassignment"),
        })
    }

    fn topic(&self, topic: &Topic) -> Value {
        let at = format!("/topics/{}", topic.name);
        json!({
            "kind": "KafkaTopic",
            "metadata": {"self": self.url(&at), "resource_name": self.crn(&format!("/topic={}", topic.name))},
            "cluster_id": self.cluster,
            "topic_name": topic.name,
            "is_internal": topic.name.starts_with("__"),
            "replication_factor": topic.partitions.first().map_or(0, |p| p.replicas.len()),
            "partitions_count": topic.partitions.len(),
            "partitions": self.related(&format!("{at}/partitions")),
            "configs": self.related(&format!("{at}/configs")),
            "partition_reassignments": self.related(&format!("{at}/partitions/-/reassignment")),
            "authorized_operations": [],
        })
    }

    fn partition(&self, topic: &str, partition: &Partition) -> Value {
        let at = format!("/topics/{topic}/partitions/{}", partition.id);
        json!({
            "kind": "KafkaPartition",
            "metadata": {"self": self.url(&at), "resource_name": self.crn(&format!("/topic={topic}/partition={}", partition.id))},
            "cluster_id": self.cluster,
            "topic_name": topic,
            "partition_id": partition.id,
            "leader": if partition.leader >= 0 { self.related(&format!("{at}/replicas/{}", partition.leader)) } else { Value::Null },
            "replicas": self.related(&format!("{at}/replicas")),
            "reassignment": self.related(&format!("{at}/reassignment")),
        })
    }

    fn list(&self, kind: &str, path: &str, data: Vec<Value>) -> Value {
        json!({"kind": kind, "metadata": {"self": self.url(path), "next": Value::Null}, "data": data})
    }
}

/// A v3 answer, once the cluster in the path is this one.
async fn v3(
    app: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    cluster: Option<&str>,
    topic: Option<&str>,
    answer: impl FnOnce(&Links, Snapshot) -> Result<Value, ConfluentError>,
) -> Response {
    let result = async {
        let snapshot = snapshot(app, principal, topic).await?;
        if let Some(cluster) = cluster
            && cluster != snapshot.cluster_id
        {
            return Err(ConfluentError::status(StatusCode::NOT_FOUND, format!("Cluster {cluster} cannot be found.")));
        }
        let links = Links::new(app, headers, &snapshot.cluster_id);
        answer(&links, snapshot)
    };
    match result.await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v3/clusters`
pub async fn v3_clusters(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
) -> Response {
    v3(&app, &principal, &headers, None, None, |links, _| {
        let mut list = links.list("KafkaClusterList", "", vec![links.cluster()]);
        list["metadata"]["self"] = format!("{}/v3/clusters", links.base).into();
        Ok(list)
    })
    .await
}

/// `GET /v3/clusters/{cluster}`
pub async fn v3_cluster(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(cluster): Path<String>,
    headers: HeaderMap,
) -> Response {
    v3(&app, &principal, &headers, Some(&cluster), None, |links, _| Ok(links.cluster())).await
}

/// `GET /v3/clusters/{cluster}/topics`
pub async fn v3_topics(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(cluster): Path<String>,
    headers: HeaderMap,
) -> Response {
    v3(&app, &principal, &headers, Some(&cluster), None, |links, snapshot| {
        Ok(links.list("KafkaTopicList", "/topics", snapshot.topics.iter().map(|t| links.topic(t)).collect()))
    })
    .await
}

/// `GET /v3/clusters/{cluster}/topics/{topic}`
pub async fn v3_topic(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((cluster, topic)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    v3(&app, &principal, &headers, Some(&cluster), Some(&topic), |links, snapshot| {
        let found = snapshot.topics.iter().find(|t| t.name == topic).ok_or_else(no_topic)?;
        Ok(links.topic(found))
    })
    .await
}

/// `GET /v3/clusters/{cluster}/topics/{topic}/partitions`
pub async fn v3_partitions(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((cluster, topic)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    v3(&app, &principal, &headers, Some(&cluster), Some(&topic), |links, snapshot| {
        let found = snapshot.topics.iter().find(|t| t.name == topic).ok_or_else(no_topic)?;
        let data = found.partitions.iter().map(|p| links.partition(&topic, p)).collect();
        Ok(links.list("KafkaPartitionList", &format!("/topics/{topic}/partitions"), data))
    })
    .await
}

/// `GET /v3/clusters/{cluster}/topics/{topic}/partitions/{partition}`
pub async fn v3_partition(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((cluster, topic, partition)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    v3(&app, &principal, &headers, Some(&cluster), Some(&topic), |links, snapshot| {
        let not_found = || ConfluentError::status(StatusCode::NOT_FOUND, "HTTP 404 Not Found");
        let id: i32 = partition.parse().map_err(|_| not_found())?;
        let found = snapshot.topics.iter().find(|t| t.name == topic).ok_or_else(no_topic)?;
        let partition = found.partitions.iter().find(|p| p.id == id).ok_or_else(not_found)?;
        Ok(links.partition(&topic, partition))
    })
    .await
}
