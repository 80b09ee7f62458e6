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
    let _deadline = sluice_tests::deadline();
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
    let _deadline = sluice_tests::deadline();
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

#[tokio::test(flavor = "multi_thread")]
async fn confluents_python_client_drives_the_embedded_registry() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = replica(&unique_name("_schemas")).await?;
    run_script("registry_client.py", &[&env.registry_url, "orders.placed-value"]).await?;
    env.gateway.stop().await?;
    Ok(())
}

/// Every endpoint and error case of Confluent's API that Sluice supports, through Confluent's
/// Python client where it has the call and plain HTTP elsewhere (see the script's checks).
#[tokio::test(flavor = "multi_thread")]
async fn every_confluent_endpoint_and_error_case_answers_as_confluents_registry() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = replica(&unique_name("_schemas")).await?;
    run_script("registry_conformance.py", &[&env.registry_url]).await?;
    env.gateway.stop().await?;
    Ok(())
}

/// Runs one of `tests/python`'s scripts in the harness's venv; it must exit 0 and end with "ok".
async fn run_script(script: &str, args: &[&str]) -> anyhow::Result<()> {
    let python = sluice_tests::python().await?;
    let mut command = std::process::Command::new(python);
    command.arg(format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"))).args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Sends a request to the registry and returns the status and JSON answer.
async fn call(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = env.http.request(method, format!("{}{path}", env.registry_url));
    if let Some(body) = body {
        request = request.header("content-type", "application/vnd.schemaregistry.v1+json").body(body.to_string());
    }
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

fn order_schema(extra_fields: Value) -> String {
    let mut schema: Value = serde_json::from_str(ORDER_PLACED).expect("the seed schema is JSON");
    let extra = extra_fields.as_array().expect("an array of fields").iter().cloned();
    schema["fields"].as_array_mut().expect("fields").extend(extra);
    schema.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn compatibility_levels_lookups_and_deletes_follow_confluents_api() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use reqwest::Method;
    let env = replica(&unique_name("_schemas")).await?;
    let s = "orders-value";
    env.register(s, "AVRO", ORDER_PLACED).await?;

    // Default BACKWARD: a field without a default is refused, with the reason and location.
    let required = order_schema(json!([{"name": "channel", "type": "string"}]));
    let (status, body) =
        call(&env, Method::POST, &format!("/subjects/{s}/versions"), Some(json!({"schema": required}))).await?;
    assert_eq!((status, body["error_code"].as_u64()), (StatusCode::CONFLICT, Some(409)), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("READER_FIELD_MISSING_DEFAULT_VALUE") && message.contains("/fields/5"), "{message}");

    let (_, verdict) = call(
        &env,
        Method::POST,
        &format!("/compatibility/subjects/{s}/versions/latest?verbose=true"),
        Some(json!({"schema": required})),
    )
    .await?;
    assert_eq!(verdict["is_compatible"], false);
    assert!(verdict["messages"][0].as_str().unwrap().contains("channel"), "{verdict}");
    let defaulted = order_schema(json!([{"name": "channel", "type": "string", "default": "web"}]));
    let (_, verdict) =
        call(&env, Method::POST, &format!("/compatibility/subjects/{s}/versions"), Some(json!({"schema": defaulted})))
            .await?;
    assert_eq!(verdict, json!({"is_compatible": true}));

    // Levels: global, per subject, errors.
    assert_eq!(call(&env, Method::GET, "/config", None).await?.1, json!({"compatibilityLevel": "BACKWARD"}));
    let (status, body) = call(&env, Method::GET, &format!("/config/{s}"), None).await?;
    assert_eq!((status, body["error_code"].as_u64()), (StatusCode::NOT_FOUND, Some(40408)));
    assert_eq!(
        call(&env, Method::GET, &format!("/config/{s}?defaultToGlobal=true"), None).await?.1["compatibilityLevel"],
        "BACKWARD"
    );
    let (status, body) =
        call(&env, Method::PUT, &format!("/config/{s}"), Some(json!({"compatibility": "SIDEWAYS"}))).await?;
    assert_eq!((status, body["error_code"].as_u64()), (StatusCode::UNPROCESSABLE_ENTITY, Some(42203)));
    assert_eq!(
        call(&env, Method::PUT, &format!("/config/{s}"), Some(json!({"compatibility": "NONE"}))).await?.1,
        json!({"compatibility": "NONE"})
    );
    let v2 = env.register(s, "AVRO", &required).await?;
    assert_eq!(
        call(&env, Method::DELETE, &format!("/config/{s}"), None).await?.1,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        call(&env, Method::GET, &format!("/config/{s}?defaultToGlobal=true"), None).await?.1["compatibilityLevel"],
        "BACKWARD"
    );

    // Lookup by content.
    let (status, found) =
        call(&env, Method::POST, &format!("/subjects/{s}"), Some(json!({"schema": required}))).await?;
    assert_eq!(
        (status, found["version"].as_u64(), found["id"].as_u64()),
        (StatusCode::OK, Some(2), Some(u64::from(v2)))
    );
    let (status, body) =
        call(&env, Method::POST, &format!("/subjects/{s}"), Some(json!({"schema": defaulted}))).await?;
    assert_eq!((status, body["error_code"].as_u64()), (StatusCode::NOT_FOUND, Some(40403)));

    // Deletes: permanent only after soft; soft-deleted versions leave listings, ids stay.
    let (status, body) = call(&env, Method::DELETE, &format!("/subjects/{s}/versions/2?permanent=true"), None).await?;
    assert_eq!((status, body["error_code"].as_u64()), (StatusCode::NOT_FOUND, Some(40407)));
    assert_eq!(call(&env, Method::DELETE, &format!("/subjects/{s}/versions/2"), None).await?.1, json!(2));
    assert_eq!(call(&env, Method::GET, &format!("/subjects/{s}/versions"), None).await?.1, json!([1]));
    assert_eq!(call(&env, Method::GET, &format!("/subjects/{s}/versions?deleted=true"), None).await?.1, json!([1, 2]));
    assert_eq!(call(&env, Method::GET, &format!("/schemas/ids/{v2}"), None).await?.0, StatusCode::OK);
    let (status, body) = call(&env, Method::DELETE, &format!("/subjects/{s}?permanent=true"), None).await?;
    assert_eq!((status, body["error_code"].as_u64()), (StatusCode::NOT_FOUND, Some(40405)));
    assert_eq!(call(&env, Method::DELETE, &format!("/subjects/{s}"), None).await?.1, json!([1]));
    assert_eq!(call(&env, Method::GET, "/subjects", None).await?.1, json!([]));
    assert_eq!(call(&env, Method::DELETE, &format!("/subjects/{s}?permanent=true"), None).await?.1, json!([1, 2]));
    assert_eq!(call(&env, Method::GET, &format!("/schemas/ids/{v2}"), None).await?.1["error_code"], 40403);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_references_across_subjects_register_produce_and_decode() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use reqwest::Method;
    let topic = unique_name("customers");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let env = Env::start_on(
        RegistryKind::Embedded,
        &Kafka::shared().bootstrap_servers(),
        &support::route(&topic, "avro", Some("/id")),
        "",
        None,
    )
    .await?;
    let address = json!({"type": "record", "name": "Address", "namespace": "shop",
        "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]});
    env.register("shop.Address", "AVRO", &address.to_string()).await?;
    let customer = json!({"type": "record", "name": "Customer", "namespace": "shop",
        "fields": [{"name": "id", "type": "string"}, {"name": "home", "type": "Address"},
                   {"name": "work", "type": ["null", "Address"], "default": null}]});
    let references = json!([{"name": "shop.Address", "subject": "shop.Address", "version": 1}]);
    let (status, body) = call(
        &env,
        Method::POST,
        &format!("/subjects/{topic}-value/versions"),
        Some(json!({"schema": customer.to_string(), "references": references})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, latest) = call(&env, Method::GET, &format!("/subjects/{topic}-value/versions/latest"), None).await?;
    assert_eq!(latest["references"], references);
    let (_, users) = call(&env, Method::GET, "/subjects/shop.Address/versions/1/referencedby", None).await?;
    assert_eq!(users, json!([body["id"]]));
    let (status, refused) = call(&env, Method::DELETE, "/subjects/shop.Address/versions/1", None).await?;
    assert_eq!((status, refused["error_code"].as_u64()), (StatusCode::UNPROCESSABLE_ENTITY, Some(42206)), "{refused}");

    let event =
        json!({"id": "c-1", "home": {"city": "Lyon", "zip": "69001"}, "work": {"city": "Paris", "zip": "75001"}});
    let reply = env.post(&topic, &event).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let decoded = env.decode_independently(&topic, "avro", 1).await?;
    assert_eq!(decoded[0]["value"], event, "Confluent's deserializer resolves the reference too");
    env.gateway.stop().await?;
    Ok(())
}

/// A union default of a later branch registers (as Avro 1.12 and Confluent 8.2 accept it) unless
/// `registry.strict_avro_defaults` asks for Avro 1.11's first-branch rule.
#[tokio::test(flavor = "multi_thread")]
async fn union_defaults_of_any_branch_register_unless_strict_defaults_are_asked_for() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use sluice::registry::embedded::EmbeddedRegistry;
    use sluice::registry::{RegistryError, Schema};
    let text = format!("[kafka]\nbootstrap_servers = \"{}\"\n", Kafka::shared().bootstrap_servers());
    let kafka = sluice::config::load_str(&text, |_| None).map_err(|p| anyhow::anyhow!("{p:?}"))?.kafka;
    let schema = Schema::new(
        sluice::codec::SchemaType::Avro,
        r#"{"type": "record", "name": "Visit", "fields": [{"name": "channel", "type": ["null", "string"], "default": "web"}]}"#,
    );
    let lenient = EmbeddedRegistry::start(&kafka, &unique_name("_schemas"), false).await?;
    assert!(lenient.register("visits-value", schema.clone()).await? > 0);
    let strict = EmbeddedRegistry::start(&kafka, &unique_name("_schemas"), true).await?;
    match strict.register("visits-value", schema).await {
        Err(RegistryError::InvalidSchema(why)) => {
            assert!(why.contains("'channel'") && why.contains("/fields/0"), "{why}")
        }
        other => panic!("strict defaults registered it: {other:?}"),
    }
    Ok(())
}
