//! README command 1: `sluice dev` starts with nothing installed, and the README's curl example
//! gets a partition and an offset back. The example is read from README.md, so the test breaks
//! when the README and the program disagree.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::readme_block;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dev_mode_serves_the_readme_example() {
    let _deadline = sluice_tests::deadline();
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, kafka_port) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dev", "--listen", &format!("127.0.0.1:{port}"), "--kafka", &format!("127.0.0.1:{kafka_port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice dev starts");
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);

    // The banner is printed once the route, schema and listener are ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout");
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Try:") || Instant::now() > deadline {
            break;
        }
    }
    assert!(banner.contains("in-memory"), "the banner says Kafka is in memory: {banner}");

    let command = readme_block("dev-curl").replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let output = Command::new("sh").args(["-c", &command]).output().expect("curl runs");
    assert!(output.status.success(), "{output:?}");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
    let result = &answer["results"][0];
    assert!(result["partition"].is_i64() && result["offset"].is_i64(), "partition and offset: {answer}");
    assert_eq!(result["schema_id"], 1);
    let event_id = result["event_id"].as_str().expect("an event id").to_owned();

    // Any Kafka client reads the record at the bootstrap address the banner prints.
    let bootstrap = format!("127.0.0.1:{kafka_port}");
    assert!(banner.contains(&format!("bootstrap {bootstrap}")), "the banner gives the bootstrap address: {banner}");
    let record = read_one(&bootstrap, "orders.placed", result["partition"].as_i64().unwrap() as i32);
    assert_eq!(record.0.as_deref(), Some(&b"o-1001"[..]), "keyed by /order_id");
    assert_eq!(record.1.first(), Some(&0u8), "Confluent's wire format: magic byte 0");
    assert_eq!(record.2.as_deref(), Some(event_id.as_bytes()), "the event-id header");

    let refused = command.replace("\"total_cents\":1999", "\"total_cents\":\"12\"");
    let output = Command::new("sh").args(["-c", &refused]).output().expect("curl runs");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
    assert_eq!(
        (answer["status"].as_u64(), &answer["errors"][0]["pointer"]),
        (Some(422), &serde_json::json!("/total_cents"))
    );

    // The Protobuf route's example: JSON in, a partition and an offset back, a pointer when refused.
    let command = readme_block("dev-curl-protobuf").replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let output = Command::new("sh").args(["-c", &command]).output().expect("curl runs");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
    assert!(answer["results"][0]["offset"].is_i64(), "{answer}");
    assert_eq!(answer["results"][0]["schema_id"], 2, "{answer}");
    let refused = command.replace("\"amount_cents\":\"1999\"", "\"amount_cents\":\"lots\"");
    let output = Command::new("sh").args(["-c", &refused]).output().expect("curl runs");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
    assert_eq!(
        (answer["status"].as_u64(), &answer["errors"][0]["pointer"]),
        (Some(422), &serde_json::json!("/amount_cents"))
    );

    // The schema CI commands of the README, as written, against the dev gateway's registry.
    let schema_ci = readme_block("schema-ci")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("sluice schema", &format!("{} schema", env!("CARGO_BIN_EXE_sluice")));
    let output = Command::new("sh")
        .args(["-ec", &schema_ci])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("sh runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("ok: deploy/examples/schemas/order-placed-v2.avsc is compatible"), "{printed}");
    assert!(printed.contains("order-placed-v2.avsc under 'orders.placed-value' with id 3"), "{printed}");
    assert!(printed.contains("ok: deploy/examples/schemas/payment-confirmed-v2.proto is compatible"), "{printed}");
    assert!(printed.contains("payment-confirmed-v2.proto under 'payments.confirmed-value' with id 4"), "{printed}");

    // The README's subscription example, to dev mode's own inbox: the event produced above
    // arrives there, decoded back to JSON and signed.
    let subscribe = readme_block("dev-webhook").replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let (create, show) = subscribe.split_once("\ncurl -s http").expect("two commands in the block");
    let output = Command::new("sh").args(["-c", create]).output().expect("curl runs");
    let created: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {output:?}\n{create}"));
    assert_eq!(created["state"], "active", "{created}");
    assert!(created.get("secrets").is_none(), "secrets never come back: {created}");
    let show = format!("curl -s http{show}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let output = Command::new("sh").args(["-c", &show]).output().expect("curl runs");
        let inbox: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
        if let Some(first) = inbox["received"].as_array().and_then(|r| r.first()) {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "nothing delivered to the inbox: {inbox}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(delivered["body"]["order_id"], "o-1001", "{delivered}");
    assert_eq!(delivered["body"]["placed_at"], 1_795_773_600_000_i64, "timestamps come back as epoch millis");
    assert_eq!(delivered["headers"]["sluice-key"], "o-1001");
    assert_eq!(delivered["headers"]["event-id"], event_id.as_str(), "webhooks pass the event id on");
    assert!(delivered["headers"]["webhook-signature"].as_str().is_some_and(|s| s.starts_with("v1,")), "{delivered}");

    // The bytes route's example: two lines, two records.
    let lines = |name: &str| -> Vec<serde_json::Value> {
        let command = readme_block(name).replace("localhost:8080", &format!("127.0.0.1:{port}"));
        let output = Command::new("sh").args(["-ec", &command]).output().expect("sh runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}")))
            .collect()
    };
    let answer = lines("dev-bytes").remove(0);
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{answer}");
    assert!(results.iter().all(|r| r["offset"].is_i64()), "{answer}");
    let record = read_one(&bootstrap, "raw.logs", 0);
    assert_eq!(record.1, b"level=info msg=started", "the line as sent");

    // The Confluent REST Proxy examples: a v2 answer with an offset, then a v3 delivery report.
    let answers = lines("dev-confluent");
    assert_eq!(answers.len(), 2, "{answers:?}");
    let offset = &answers[0]["offsets"][0];
    assert!(offset["offset"].is_i64() && offset["error_code"].is_null(), "{answers:?}");
    assert_eq!(
        (answers[1]["error_code"].as_u64(), answers[1]["topic_name"].as_str()),
        (Some(200), Some("orders.placed"))
    );
    assert_eq!(answers[1]["key"], serde_json::json!({"type": "STRING", "size": 3}));
}

/// The first record of a partition, read as a plain Kafka client would: key, value, `event-id`.
fn read_one(bootstrap: &str, topic: &str, partition: i32) -> (Option<Vec<u8>>, Vec<u8>, Option<Vec<u8>>) {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::{Headers as _, Message as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "readme-reader")
        .create()
        .expect("a consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, rdkafka::Offset::Beginning).expect("an offset");
    consumer.assign(&assignment).expect("assigned");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                let event_id = message
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "event-id").and_then(|h| h.value.map(<[u8]>::to_vec)));
                return (message.key().map(<[u8]>::to_vec), message.payload().unwrap_or_default().to_vec(), event_id);
            }
            Some(Err(error)) => panic!("reading {topic} through {bootstrap}: {error}"),
            None => {}
        }
    }
    panic!("nothing to read from {topic}/{partition} through {bootstrap}");
}
