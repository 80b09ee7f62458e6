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
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
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
    assert!(delivered["headers"]["webhook-signature"].as_str().is_some_and(|s| s.starts_with("v1,")), "{delivered}");
}
