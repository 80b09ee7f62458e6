//! `sluice schema check` and `sluice schema register` as a CI job runs them: the real binary,
//! against the embedded registry of a running gateway and against Apicurio, both outcomes.

use std::process::{Command, Output};

use serde_json::{Value, json};
use sluice_tests::{Apicurio, Kafka, unique_name};

const V1: &str = include_str!("../../deploy/examples/schemas/order-placed-v1.avsc");
const V2: &str = include_str!("../../deploy/examples/schemas/order-placed-v2.avsc");

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("the sluice binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Writes a variant of v1 with one field changed by `edit` to a temporary .avsc file.
fn variant(dir: &tempfile::TempDir, name: &str, edit: impl Fn(&mut Vec<Value>)) -> String {
    let mut schema: Value = serde_json::from_str(V1).expect("v1 is JSON");
    edit(schema["fields"].as_array_mut().expect("fields"));
    let path = dir.path().join(format!("{name}.avsc"));
    std::fs::write(&path, schema.to_string()).expect("temp file");
    path.display().to_string()
}

async fn exercise(registry: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let subject = unique_name("orders.placed-value");
    let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/schemas/order-placed-v1.avsc");
    let v2 = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/schemas/order-placed-v2.avsc");
    assert_ne!(V1, V2);
    let no_currency = variant(&dir, "no-currency", |fields| fields.retain(|f| f["name"] != "currency"));
    let string_total = variant(&dir, "string-total", |fields| {
        for f in fields.iter_mut().filter(|f| f["name"] == "total_cents") {
            f["type"] = json!("string");
        }
    });
    let base = ["--registry", registry, "--subject", subject.as_str()];
    let run = |command: &str, extra: &[&str], file: &str| {
        let mut args = vec!["schema", command];
        args.extend(base);
        args.extend(extra);
        args.push(file);
        sluice(&args)
    };

    let out = run("check", &[], v1);
    assert!(out.status.success(), "a new subject accepts anything: {}", text(&out));
    let out = run("register", &[], v1);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("with id"), "{}", text(&out));

    let response = reqwest::Client::new()
        .put(format!("{registry}/config/{subject}"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(json!({"compatibility": "FULL"}).to_string())
        .send()
        .await
        .expect("registry answers");
    assert!(response.status().is_success(), "{registry}: setting FULL");

    let out = run("check", &[], v2);
    assert_eq!(out.status.code(), Some(0), "v1 → v2 is FULL-compatible: {}", text(&out));
    assert!(text(&out).contains("under FULL"), "{}", text(&out));

    let out = run("check", &[], &no_currency);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/3"), "{report}");
    assert!(report.contains("version 1 cannot read the new schema"), "{report}");

    let out = run("check", &["--compatibility", "BACKWARD"], &no_currency);
    assert_eq!(out.status.code(), Some(0), "removing a field is BACKWARD-compatible: {}", text(&out));

    let out = run("check", &["--compatibility", "BACKWARD"], &string_total);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("TYPE_MISMATCH at /fields/2/type"), "{}", text(&out));

    let out = run("register", &[], v2);
    assert!(out.status.success(), "{}", text(&out));
    let out = run("register", &[], &string_total);
    assert_eq!(out.status.code(), Some(1), "the registry refuses an incompatible schema: {}", text(&out));

    let out = sluice(&["schema", "check", "--registry", "http://127.0.0.1:9", "--subject", "s", v1]);
    assert_eq!(out.status.code(), Some(2), "an unreachable registry is an error, not a verdict: {}", text(&out));
}

/// `.proto` files: one importing another through `--reference`, checked by Sluice's Protobuf
/// rules. `registers_removals`: whether the registry itself accepts a removed, reserved field
/// (Confluent's rules do; Apicurio 3.0.9's refuse any removal).
async fn exercise_protobuf(registry: &str, registers_removals: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let money = dir.path().join("money.proto");
    std::fs::write(
        &money,
        "syntax = \"proto3\";\npackage shop;\nmessage Money { string currency = 1; int64 units = 2; }\n",
    )
    .expect("write");
    let payment = |name: &str, body: &str| {
        let path = dir.path().join(format!("{name}.proto"));
        let text = format!(
            "syntax = \"proto3\";\npackage shop.v1;\nimport \"shop/money.proto\";\nmessage Payment {{ {body} }}\n"
        );
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let v1 = payment("v1", "string id = 1; shop.Money amount = 2; string note = 3;");
    let v2 = payment("v2", "reserved 3; reserved \"note\"; string id = 1; shop.Money amount = 2; string payer = 4;");
    let retyped = payment("retyped", "int64 id = 1; shop.Money amount = 2; string note = 3;");
    let (money_subject, subject) = (unique_name("shop.money"), unique_name("payments-value"));
    let reference = format!("shop/money.proto={money_subject}:1");
    let run = |command: &str, subject: &str, extra: &[&str], file: &str| {
        let mut args = vec!["schema", command, "--registry", registry, "--subject", subject];
        args.extend(extra);
        args.push(file);
        sluice(&args)
    };
    let out = run("register", &money_subject, &[], &money.display().to_string());
    assert!(out.status.success(), "{}", text(&out));
    let out = run("check", &subject, &[], &v1);
    assert!(!out.status.success(), "the import needs its reference: {}", text(&out));
    assert!(text(&out).contains("shop/money.proto"), "{}", text(&out));
    let out = run("register", &subject, &["--reference", &reference], &v1);
    assert!(out.status.success(), "{}", text(&out));
    let out = run("check", &subject, &["--reference", &reference], &v2);
    assert_eq!(out.status.code(), Some(0), "added, and removed with its number reserved: {}", text(&out));
    let out = run("check", &subject, &["--reference", &reference, "--compatibility", "FULL"], &retyped);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FIELD_SCALAR_KIND_CHANGED at #/Payment/1"), "{}", text(&out));
    if registers_removals {
        let out = run("register", &subject, &["--reference", &reference], &v2);
        assert!(out.status.success(), "{}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_check_and_register_against_the_embedded_registry() {
    let _deadline = sluice_tests::deadline();
    let config = sluice::config::load_str(
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap_servers = \"{}\"\n[registry]\ntopic = \"{}\"\n",
            Kafka::shared().bootstrap_servers(),
            unique_name("_schemas")
        ),
        |_| None,
    )
    .expect("config");
    let gateway = sluice::Gateway::start(config).await.expect("gateway starts");
    exercise(&format!("http://{}/registry", gateway.addr())).await;
    exercise_protobuf(&format!("http://{}/registry", gateway.addr()), true).await;
    gateway.stop().await.expect("gateway stops");
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_check_and_register_against_apicurio() {
    let _deadline = sluice_tests::deadline();
    let url = tokio::task::spawn_blocking(|| Apicurio::shared().ccompat_url()).await.expect("apicurio");
    exercise(&url).await;
    exercise_protobuf(&url, false).await;
}
