//! The OpenAPI document at `/openapi.json` against the live router: every route in the source is
//! documented and nothing else is, every documented operation answers with a documented status,
//! undocumented methods get 405, and a property-based fuzzer (schemathesis) finds no 5xx and no
//! answer that contradicts the document.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_tests::receiver::Receiver;
use sluice_tests::{Kafka, python, unique_name};
use support::{Env, ORDER_PLACED, RegistryKind, order, route};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` in a source file, with a prefix.
fn routes_in(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (start, _) in source.match_indices(".route(\"") {
        let rest = &source[start + ".route(\"".len()..];
        let Some(end) = rest.find('"') else { continue };
        // A nested router's `/` is its prefix itself.
        let path = match &rest[..end] {
            "/" if !prefix.is_empty() => prefix.to_owned(),
            route => format!("{prefix}{route}"),
        };
        // The method router: up to the parenthesis closing `.route(`.
        let mut depth = 1;
        let mut chain = String::new();
        for c in rest[end + 1..].chars() {
            depth += i32::from(c == '(') - i32::from(c == ')');
            if depth == 0 {
                break;
            }
            chain.push(if depth == 1 { c } else { ' ' });
        }
        for method in METHODS {
            let called = chain.match_indices(method).any(|(i, _)| {
                i == 0 || !chain.as_bytes()[i - 1].is_ascii_alphanumeric() && chain.as_bytes()[i - 1] != b'_'
            });
            if called {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// A gateway with auth on, a routed Avro topic, a registered schema and a subscription; returns
/// it, its admin key and sample values for the path parameters.
async fn gateway() -> anyhow::Result<(Env, String, Vec<(&'static str, String)>)> {
    let topic = unique_name("openapi");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let (key, sha256) = sluice::auth::new_key().map_err(anyhow::Error::msg)?;
    let config = format!(
        "[[auth.api_keys]]\nname = \"ops\"\nsha256 = \"{sha256}\"\nscopes = [\"admin\"]\n{}",
        route(&topic, "avro", Some("/order_id"))
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let subject = format!("{topic}-value");
    let schema = json!({"schema": ORDER_PLACED});
    let registered = env
        .http
        .post(format!("{}/subjects/{subject}/versions", env.registry_url))
        .bearer_auth(&key)
        .json(&schema)
        .send()
        .await?;
    let id: Value = registered.json().await?;
    let samples = vec![
        ("topic", topic),
        ("name", "sample".to_owned()),
        ("subject", subject),
        ("version", "1".to_owned()),
        ("id", id["id"].to_string()),
    ];
    Ok((env, key, samples))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_matches_the_router() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (env, key, samples) = gateway().await?;
    let response = env.http.get(format!("{}/openapi.json", env.base)).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await?;
    assert_eq!(document["openapi"], "3.1.0");

    // Every route in the source is documented, and every documented operation is routed.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../gateway/src");
    let mut routed = BTreeSet::new();
    for (file, prefix) in
        [("http/mod.rs", ""), ("http/subscriptions.rs", ""), ("registry/embedded/api.rs", "/registry")]
    {
        let source = std::fs::read_to_string(format!("{src}/{file}")).with_context(|| file.to_owned())?;
        routed.extend(routes_in(&source, prefix));
    }
    let operations = documented(&document);
    assert!(routed.len() > 25, "the source scan found only {routed:?}");
    let undocumented: Vec<_> = routed.difference(&operations).collect();
    let unrouted: Vec<_> = operations.difference(&routed).collect();
    assert!(undocumented.is_empty() && unrouted.is_empty(), "undocumented: {undocumented:?}\nunrouted: {unrouted:?}");

    // A subscription for the `{name}` operations.
    let receiver = Receiver::start().await?;
    let topic = &samples[0].1;
    let body = json!({
        "name": "sample", "topics": [topic], "url": receiver.url("sample"), "secrets": [SECRET],
        "dead_letter_topic": format!("{topic}.dlq"),
    });
    let created = env.http.post(format!("{}/v1/subscriptions", env.base)).bearer_auth(&key).json(&body).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);

    // Each operation, called with real values, answers with a status its entry documents; the
    // deletes go last so that the rest find what they need.
    let mut calls: Vec<(String, String)> = operations.into_iter().collect();
    calls.sort_by_key(|(method, _)| method == "DELETE");
    for (method, template) in calls {
        let mut path = template.clone();
        for (name, value) in &samples {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let body = match (method.as_str(), template.as_str()) {
            ("POST", "/v1/topics/{topic}/events") => Some(order("o-1")),
            ("POST", "/v1/subscriptions") => Some(json!({"name": "other", "topics": [topic], "url": receiver.url("o"),
                "secrets": [SECRET], "dead_letter_topic": "x"})),
            ("POST", "/v1/subscriptions/{name}/replay") => Some(json!({"timestamp": "2026-01-01T00:00:00Z"})),
            ("PUT", _) => Some(json!({"compatibility": "BACKWARD"})),
            ("POST", _) => Some(json!({"schema": ORDER_PLACED})),
            _ => None,
        };
        let mut request = env.http.request(Method::from_bytes(method.as_bytes())?, format!("{}{path}", env.base));
        request = request.bearer_auth(&key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let answer = response.text().await?;
        let entry = &document["paths"][&template][method.to_lowercase()];
        assert!(
            entry["responses"].get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which its entry does not document: {answer}"
        );
        assert!(!answer.contains("urn:sluice:problem:not-found"), "{method} {path} is not routed: {answer}");
    }

    // Methods a path does not document are refused as such.
    for (template, item) in document["paths"].as_object().into_iter().flatten() {
        let mut path = template.clone();
        for (name, value) in &samples {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if item.get(method.to_lowercase()).is_some() {
                continue;
            }
            let request = env.http.request(Method::from_bytes(method.as_bytes())?, format!("{}{path}", env.base));
            let status = request.bearer_auth(&key).send().await?.status();
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    Ok(())
}

/// schemathesis's configuration for this API: real path values for the operations that need an
/// existing topic or subscription, and, for the operations whose requests are checked beyond
/// what a JSON schema can say, 422 among the answers to well-formed requests.
fn schemathesis_config(topic: &str) -> String {
    format!(
        r#"
[parameters]
"path.topic" = "{topic}"
"path.name" = "sample"

# Schema text must parse as its schemaType (and be compatible with the subject's versions): an
# OpenAPI string cannot say "valid Avro".
[[operations]]
include-path-regex = "^/registry/(subjects/[^/]+(/versions)?|compatibility/.*)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# The registry's mode (READONLY, IMPORT — which the fuzzer itself sets through /mode) refuses
# writes with 42205, and switching to IMPORT needs an empty scope: states a schema cannot say.
[[operations]]
include-path-regex = "^/registry/(config|mode|subjects)(/.*)?$"
include-method-regex = "(?i)^(put|delete)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# A subscriber URL must resolve to a public address; its topics must exist.
[[operations]]
include-path = "/v1/subscriptions"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# A soft-deleted version is still there for `?deleted=true` (Confluent's soft delete: gone from
# the normal view, kept until a permanent delete); schemathesis's use-after-free check reads the
# flag as the same resource. The normal view is what must be gone.
[[operations]]
include-path-regex = "^/registry/subjects/[^/]+/versions(/[^/]+)?$"
include-method = "GET"
parameters = {{ "query.deleted" = false }}

# An event must fit the route's registry schema.
[[operations]]
include-path = "/v1/topics/{{topic}}/events"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_property_based_fuzzer_finds_no_server_error_and_no_undocumented_answer() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (env, key, samples) = gateway().await?;
    let python = python().await?;
    let schemathesis = python.with_file_name("schemathesis");
    let scratch = tempfile::tempdir()?;
    let config = scratch.path().join("schemathesis.toml");
    std::fs::write(&config, schemathesis_config(&samples[0].1))?;
    let mut command = Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", env.base)])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        // Every check schemathesis has, none excluded.
        .args(["--checks", "all"])
        // One worker: Python 3.11's parser is not safe for the fuzzer's threads.
        .args(["--workers", "1", "--max-time", "120", "--request-timeout", "20"])
        .env("NO_COLOR", "1")
        // Its example database and reports go there, not into the checkout.
        .current_dir(scratch.path());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "schemathesis failed:\n{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("passed"), "{report}");
    // Every operation was selected and tested.
    let count = |label: &str| {
        let line = report.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_default();
        line.split_whitespace().nth(1).unwrap_or_default().to_owned()
    };
    let (selected, tested) = (count("Selected:"), count("Tested:"));
    let (chosen, all) = selected.split_once('/').unwrap_or_default();
    assert!(!all.is_empty() && chosen == all, "not every operation was selected: {selected}\n{report}");
    assert!(tested.parse::<usize>().ok() >= all.parse().ok(), "not every operation was tested: {tested} of {all}");
    Ok(())
}
