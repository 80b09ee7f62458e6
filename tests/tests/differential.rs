//! Sluice's Avro codec against independent implementations, on generated schemas and values
//! (`sluice_tests::avrogen`):
//!
//! - apache-avro (Rust): it decodes what Sluice encodes to the same value, and Sluice decodes
//!   what it encodes to the same JSON;
//! - fastavro (Python): it reads Sluice's bytes to the same value and writes the same bytes;
//! - Confluent's `AvroSerializer` (Python): records it writes to Kafka — and Java-style copies
//!   whose arrays and maps come in blocks with negative counts — reach a webhook subscriber,
//!   through the consume path, as the JSON that was serialized.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::codec::avro::AvroEncoder;
use sluice_tests::avrogen::{Case, cases};
use sluice_tests::receiver::Receiver;
use sluice_tests::{Kafka, python, unique_name};
use support::{Env, RegistryKind, route};

const SEED: u64 = 0x005e_eda7_0d1f;
const CASES: usize = 400;

fn ours(case: &Case) -> Vec<u8> {
    let encoder = AvroEncoder::compile(&case.schema).unwrap_or_else(|e| panic!("{e}: {}", case.schema));
    let text = case.json.to_string();
    let event = sluice::codec::json::parse(&text).expect("JSON");
    let mut bytes = Vec::new();
    encoder.encode(&event, true, &mut bytes).unwrap_or_else(|e| panic!("{e}: {} / {}", case.schema, case.json));
    bytes
}

#[test]
fn sluice_and_apache_avro_agree_on_generated_schemas_and_values() {
    let _deadline = sluice_tests::deadline();
    let mut disagreements = Vec::new();
    for (i, case) in cases(SEED, CASES).iter().enumerate() {
        let schema = Schema::parse_str(&case.schema).expect("apache-avro parses the schema");
        let bytes = ours(case);
        let reader = GenericDatumReader::builder(&schema).build().expect("a reader");
        let mut remaining = bytes.as_slice();
        match reader.read_value(&mut remaining) {
            Ok(value) if value == case.value && remaining.is_empty() => {}
            Ok(value) => disagreements.push(format!("{i}: apache-avro decodes {value:?}, not {:?}", case.value)),
            Err(e) => disagreements.push(format!("{i}: apache-avro cannot decode ours: {e}")),
        }
        // apache-avro writes arrays and maps in one block, or (with a target block size) in
        // several of negative counts with their byte sizes, as Java's blocking encoder does.
        let encoder = AvroEncoder::compile(&case.schema).expect("compiles");
        for block in [None, Some(4)] {
            let writer = GenericDatumWriter::builder(&schema).maybe_target_block_size(block).build().expect("a writer");
            let theirs = writer.write_value_to_vec(case.value.clone()).expect("apache-avro encodes");
            let mut json = Vec::new();
            match encoder.decode_to_json(&theirs, &mut json) {
                Ok(()) if serde_json::from_slice::<Value>(&json).ok().as_ref() == Some(&case.json) => {}
                Ok(()) => disagreements.push(format!(
                    "{i} (blocks {block:?}): decoded {}, not {}",
                    String::from_utf8_lossy(&json),
                    case.json
                )),
                Err(e) => disagreements.push(format!("{i} (blocks {block:?}): cannot decode apache-avro's bytes: {e}")),
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {CASES} cases (seed {SEED:#x}):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// Runs `tests/python/avro_differential.py` on the cases; returns its report lines.
async fn differential_py(cases: &[Case], extra: &[String]) -> anyhow::Result<(bool, String)> {
    let file = tempfile::NamedTempFile::new()?;
    let exported: Vec<Value> = cases
        .iter()
        .map(|c| {
            let hex: String = ours(c).iter().map(|b| format!("{b:02x}")).collect();
            json!({"schema": c.schema, "json": c.json.to_string(), "ours": hex})
        })
        .collect();
    std::fs::write(file.path(), serde_json::to_vec(&exported)?)?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/avro_differential.py");
    let mut command = Command::new(python().await?);
    command.arg(script).arg(file.path()).args(extra);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), report))
}

#[tokio::test(flavor = "multi_thread")]
async fn fastavro_reads_and_writes_what_sluice_does() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let (agreed, report) = differential_py(&cases(SEED, CASES), &[]).await?;
    assert!(agreed, "fastavro disagrees (seed {SEED:#x}):\n{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn records_from_confluents_serializer_and_java_style_blocks_are_delivered_as_the_json_serialized()
-> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    // Fewer cases here: each registers a schema version. A null value is a tombstone to
    // Confluent's serializer, not a record.
    let cases: Vec<Case> = cases(SEED ^ 0xc0, 50).into_iter().filter(|c| !c.json.is_null()).take(40).collect();
    let topic = unique_name("differential");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    Kafka::shared().create_topic(&format!("{topic}.dlq"), 1, &[]).await?;
    let env = Env::start(RegistryKind::Embedded, &route(&topic, "avro", None)).await?;
    let receiver = Receiver::start().await?;
    let body = json!({
        "name": "differential", "topics": [topic], "url": receiver.url("d"), "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "start": "earliest", "dead_letter_topic": format!("{topic}.dlq"), "concurrency": 64,
    });
    let created = env.http.post(format!("{}/v1/subscriptions", env.base)).json(&body).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    let extra = ["--registry", &env.registry_url, "--bootstrap", &env.bootstrap, "--topic", &topic].map(str::to_owned);
    let (agreed, report) = differential_py(&cases, &extra).await?;
    assert!(agreed, "{report}");

    let wanted = cases.len() * 2;
    let received = receiver.wait_until("d", Duration::from_secs(120), |r| r.len() >= wanted).await;
    let bodies: HashMap<String, Value> =
        received.iter().map(|r| (r.header("sluice-key").to_owned(), r.json())).collect();
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for writer in ["confluent", "blocked"] {
            let key = format!("{i}-{writer}");
            match bodies.get(&key) {
                Some(body) if *body == case.json => {}
                Some(body) => {
                    wrong.push(format!("{key}: delivered {body}, serialized {} ({})", case.json, case.schema))
                }
                None => wrong.push(format!("{key}: not delivered ({})", case.schema)),
            }
        }
    }
    if !wrong.is_empty() {
        // Why: what the gateway dead-lettered, with its reason.
        let dead =
            sluice_tests::consume_all(&env.bootstrap, &format!("{topic}.dlq"), wrong.len(), Duration::from_secs(5))
                .await?;
        for record in dead {
            use rdkafka::Message as _;
            use rdkafka::message::Headers as _;
            let reason =
                record.headers().and_then(|h| h.iter().find(|h| h.key.ends_with("dlq-reason")).and_then(|h| h.value));
            wrong.push(format!(
                "dead-lettered {}: {} (payload {:02x?})",
                String::from_utf8_lossy(record.key().unwrap_or_default()),
                String::from_utf8_lossy(reason.unwrap_or_default()),
                record.payload().unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{} of {wanted}:\n{}", wrong.len(), wrong.join("\n"));
    env.gateway.stop().await?;
    Ok(())
}
