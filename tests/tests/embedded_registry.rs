//! The embedded registry against a real broker: its Confluent API, durability across restarts,
//! and replicas that register at the same time without handing out the same id twice.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::{Kafka, unique_name};
use support::{Env, ORDER_PLACED, RegistryKind};

async fn replica(registry_topic: &str) -> anyhow::Result<Env> {
    Env::start_on(RegistryKind::Embedded, &Kafka::shared().bootstrap_servers(), "", "", Some(registry_topic)).await
}

fn avro_string(name: &str) -> String {
    json!({"type": "record", "name": name, "fields": [{"name": "s", "type": "string"}]}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_confluent_api_subset_with_confluent_errors() -> anyhow::Result<()> {
    let env = replica(&unique_name("_schemas")).await?;
    let id = env.register("orders-value", "AVRO", ORDER_PLACED).await?;
    assert_eq!(env.register("orders-value", "AVRO", ORDER_PLACED).await?, id, "same schema, same id");
    let again = env.register("orders-copy-value", "AVRO", ORDER_PLACED).await?;
    assert_eq!(again, id, "identical content under another subject shares the id");
    let json_id = env.register("carts-value", "JSON", r#"{"type":"object"}"#).await?;
    assert_ne!(json_id, id);

    let get = |path: String| {
        let http = env.http.clone();
        let url = format!("{}{path}", env.registry_url);
        async move {
            let response = http.get(url).send().await?;
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::Ok((status, body))
        }
    };
    assert_eq!(get("/subjects".into()).await?.1, json!(["carts-value", "orders-copy-value", "orders-value"]));
    assert_eq!(get("/subjects/orders-value/versions".into()).await?.1, json!([1]));
    let (_, latest) = get("/subjects/orders-value/versions/latest".into()).await?;
    assert_eq!((latest["id"].as_u64(), latest["version"].as_u64()), (Some(u64::from(id)), Some(1)));
    assert!(latest.get("schemaType").is_none(), "AVRO is implied, as in Confluent's API");
    let (_, by_id) = get(format!("/schemas/ids/{json_id}")).await?;
    assert_eq!(by_id["schemaType"], "JSON");

    for (path, status, code) in [
        ("/subjects/nope/versions/latest".to_owned(), StatusCode::NOT_FOUND, 40401),
        ("/subjects/orders-value/versions/7".to_owned(), StatusCode::NOT_FOUND, 40402),
        ("/schemas/ids/999999".to_owned(), StatusCode::NOT_FOUND, 40403),
        ("/subjects/orders-value/versions/zero".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, 42202),
    ] {
        let (got, body) = get(path.clone()).await?;
        assert_eq!((got, body["error_code"].as_u64()), (status, Some(code)), "{path}: {body}");
    }
    let response = env
        .http
        .post(format!("{}/subjects/bad-value/versions", env.registry_url))
        .body(json!({"schema": "{\"type\": \"recordz\"}"}).to_string())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json::<Value>().await?["error_code"], 42201);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_registering_at_once_agree_on_ids_and_schemas_survive_restarts() -> anyhow::Result<()> {
    let topic = unique_name("_schemas");
    let a = replica(&topic).await?;
    let b = replica(&topic).await?;

    // Both replicas register different schemas at the same time, several rounds.
    let mut ids = Vec::new();
    for round in 0..4 {
        let (sa, sb) = (avro_string(&format!("A{round}")), avro_string(&format!("B{round}")));
        let (subject_a, subject_b) = (format!("a{round}"), format!("b{round}"));
        let (ia, ib) = tokio::join!(a.register(&subject_a, "AVRO", &sa), b.register(&subject_b, "AVRO", &sb));
        ids.push(ia?);
        ids.push(ib?);
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no id was handed out twice: {ids:?}");

    // Each replica answers every subject with the same id, whichever replica registered it.
    for (i, id) in ids.iter().enumerate() {
        let subject = if i % 2 == 0 { format!("a{}", i / 2) } else { format!("b{}", i / 2) };
        assert_eq!(a.latest_id(&subject).await?, *id, "replica A on {subject}");
        assert_eq!(b.latest_id(&subject).await?, *id, "replica B on {subject}");
    }

    a.gateway.stop().await?;
    b.gateway.stop().await?;
    let c = replica(&topic).await?;
    for (i, id) in ids.iter().enumerate() {
        let subject = if i % 2 == 0 { format!("a{}", i / 2) } else { format!("b{}", i / 2) };
        assert_eq!(c.latest_id(&subject).await?, *id, "a restarted gateway reads {subject} back from Kafka");
    }
    let next = c.register("c0", "AVRO", &avro_string("C0")).await?;
    assert!(next > *unique.last().unwrap(), "new ids continue after the stored ones");
    c.gateway.stop().await?;
    Ok(())
}
