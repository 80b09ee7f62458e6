//! Confluent REST Proxy compatibility (issue 16): v2 and v3 produce requests sent as Confluent's
//! documentation shows them, for every embedded format, with schemas by text and by id and
//! explicit partitions, a v3 stream of 1,000 records answered record by record, and the
//! metadata clients read first; every record read back with Confluent's Python client.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_tests::{Kafka, unique_name};
use support::{BOTH, Env, RegistryKind, independent_decode, python_lines, read_records};

/// One route per embedded format; each test makes its own topics under them.
const ROUTES: &str = r#"
[[topics]]
name = "cfk-bin-*"
format = "bytes"

[[topics]]
name = "cfk-json-*"
format = "json"

[[topics]]
name = "cfk-avro-*"
format = "avro"

[[topics]]
name = "cfk-jsc-*"
format = "json-schema"

[[topics]]
name = "cfk-proto-*"
format = "protobuf"
"#;

const V2: &str = "application/vnd.kafka.v2+json";

/// An answer: status, content type and JSON body.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn post(env: &Env, path: &str, content_type: &str, body: &str) -> anyhow::Result<Answer> {
    let response = env
        .http
        .post(format!("{}{path}", env.base))
        .header("content-type", content_type)
        .header("accept", "application/vnd.kafka.v2+json, application/vnd.kafka+json, application/json")
        .body(body.to_owned())
        .send()
        .await?;
    answer(response).await
}

async fn get(env: &Env, path: &str) -> anyhow::Result<Answer> {
    answer(env.http.get(format!("{}{path}", env.base)).send().await?).await
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Answer> {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{status} {text}: {e}"))?;
    Ok(Answer { status, content_type, body })
}

async fn topic(prefix: &str, partitions: i32) -> anyhow::Result<String> {
    let name = unique_name(prefix);
    Kafka::shared().create_topic(&name, partitions, &[]).await?;
    Ok(name)
}

fn offsets(answer: &Answer) -> Vec<(i64, i64)> {
    answer.body["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("no offsets: {}", answer.body))
        .iter()
        .map(|o| {
            assert_eq!((&o["error_code"], &o["error"]), (&Value::Null, &Value::Null), "{o}");
            (o["partition"].as_i64().expect("a partition"), o["offset"].as_i64().expect("an offset"))
        })
        .collect()
}

/// The record read back at a partition and offset.
fn at(records: &[Value], (partition, offset): (i64, i64)) -> &Value {
    records
        .iter()
        .find(|r| r["partition"] == partition && r["offset"] == offset)
        .unwrap_or_else(|| panic!("no record at {partition}/{offset}: {records:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_binary_and_json_requests_as_documented() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = Env::start(RegistryKind::Embedded, ROUTES).await?;

    // Binary: the documentation's request, then its partition variant.
    let binary = topic("cfk-bin", 3).await?;
    let body = r#"{"records":[{"key":"a2V5","value":"Y29uZmx1ZW50"},{"value":"a2Fma2E=","partition":1},{"value":"bG9ncw=="}]}"#;
    let answer = post(&env, &format!("/topics/{binary}"), "application/vnd.kafka.binary.v2+json", body).await?;
    assert_eq!((answer.status, answer.content_type.as_str()), (StatusCode::OK, V2), "{}", answer.body);
    assert_eq!((&answer.body["key_schema_id"], &answer.body["value_schema_id"]), (&Value::Null, &Value::Null));
    let first = offsets(&answer);
    assert_eq!(first[1].0, 1, "the record's own partition");
    let body = r#"{"records":[{"key":"a2V5","value":"Y29uZmx1ZW50"},{"value":"a2Fma2E="}]}"#;
    let answer =
        post(&env, &format!("/topics/{binary}/partitions/2"), "application/vnd.kafka.binary.v2+json", body).await?;
    let second = offsets(&answer);
    assert!(second.iter().all(|(partition, _)| *partition == 2), "the path's partition: {second:?}");
    let records = read_records(&env.bootstrap, &binary, &env.registry_url, 5).await?;
    let one = at(&records, first[0]);
    assert_eq!((&one["key"], &one["value"]), (&json!("key"), &json!("confluent")), "bytes as sent");
    assert!(one["headers"]["event-id"].is_string(), "every record carries an event-id");
    assert_eq!(at(&records, first[1])["value"], "kafka");
    assert_eq!(at(&records, first[2])["value"], "logs");
    assert_eq!(at(&records, second[1])["value"], "kafka");

    // JSON: keys and values are written as JSON text, as Confluent's KafkaJsonSerializer does.
    let json_topic = topic("cfk-json", 2).await?;
    let body =
        r#"{"records":[{"key":"somekey","value":{"foo":"bar"}},{"value":["foo","bar"],"partition":1},{"value":53.5}]}"#;
    let answer = post(&env, &format!("/topics/{json_topic}"), "application/vnd.kafka.json.v2+json", body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let written = offsets(&answer);
    let records = read_records(&env.bootstrap, &json_topic, &env.registry_url, 3).await?;
    let one = at(&records, written[0]);
    assert_eq!((&one["key"], &one["value"]), (&json!("\"somekey\""), &json!(r#"{"foo":"bar"}"#)));
    assert_eq!(at(&records, written[1])["value"], r#"["foo","bar"]"#);
    assert_eq!(at(&records, written[2])["value"], "53.5");
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_avro_schemas_by_text_and_by_id_read_back_through_the_registry() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    for kind in BOTH {
        let env = Env::start(kind, ROUTES).await?;
        let avro = topic("cfk-avro", 3).await?;
        let path = format!("/topics/{avro}");
        let content_type = "application/vnd.kafka.avro.v2+json";
        // The documentation's request: the schema as text, registered under {topic}-value.
        let body = r#"{"value_schema": "{\"name\":\"int\",\"type\": \"int\"}", "records": [{"value": 12}, {"value": 24, "partition": 1}]}"#;
        let answer = post(&env, &path, content_type, body).await?;
        assert_eq!(answer.status, StatusCode::OK, "{kind:?}: {}", answer.body);
        let id = answer.body["value_schema_id"].as_u64().expect("the schema's id");
        assert_eq!(env.latest_id(&format!("{avro}-value")).await?, id as u32, "registered under the subject");
        let mut written = offsets(&answer);
        assert_eq!(written[1].0, 1);
        // By id, to the partition in the path.
        let body = format!(r#"{{"value_schema_id": {id}, "records": [{{"value": 25}}, {{"value": 26}}]}}"#);
        let answer = post(&env, &format!("{path}/partitions/2"), content_type, &body).await?;
        assert_eq!((answer.status, answer.body["value_schema_id"].as_u64()), (StatusCode::OK, Some(id)));
        written.extend(offsets(&answer));
        let records = independent_decode(&env.bootstrap, &avro, &env.registry_url, "avro", 4).await?;
        let values: Vec<(i64, i64, &Value)> = records
            .iter()
            .map(|r| (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap(), &r["value"]))
            .collect();
        for ((partition, offset), value) in written.iter().zip([12, 24, 25, 26]) {
            assert!(
                values.contains(&(*partition, *offset, &json!(value))),
                "{kind:?}: {value} at {partition}/{offset} in {values:?}"
            );
        }

        // Key and value schemas as text (the quickstart's request): the key is Avro too.
        let keyed = topic("cfk-avro", 1).await?;
        let body = r#"{"key_schema": "{\"name\":\"user_id\"  ,\"type\": \"int\"   }", "value_schema": "{\"type\": \"record\", \"name\": \"User\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}]}", "records": [{"key" : 1 , "value": {"name": "testUser"}}]}"#;
        let answer = post(&env, &format!("/topics/{keyed}"), content_type, body).await?;
        assert_eq!(answer.status, StatusCode::OK, "{kind:?}: {}", answer.body);
        let key_id = answer.body["key_schema_id"].as_u64().expect("the key schema's id");
        let user_id = answer.body["value_schema_id"].as_u64().expect("the value schema's id");
        // Both by id.
        let body = format!(
            r#"{{"key_schema_id": {key_id}, "value_schema_id": {user_id}, "records": [{{"key": 2, "value": {{"name": "second"}}}}]}}"#
        );
        let answer = post(&env, &format!("/topics/{keyed}"), content_type, &body).await?;
        assert_eq!(answer.status, StatusCode::OK, "{kind:?}: {}", answer.body);
        assert_eq!(
            (answer.body["key_schema_id"].as_u64(), answer.body["value_schema_id"].as_u64()),
            (Some(key_id), Some(user_id))
        );
        let records = read_records(&env.bootstrap, &keyed, &env.registry_url, 2).await?;
        assert_eq!((&records[0]["key"], records[0]["key_schema_id"].as_u64()), (&json!(1), Some(key_id)));
        assert_eq!(records[0]["value"], json!({"name": "testUser"}));
        assert_eq!((&records[1]["key"], &records[1]["value"]), (&json!(2), &json!({"name": "second"})));

        // A record that does not fit: nothing is written, and the error names it.
        let body = r#"{"value_schema": "{\"type\": \"record\", \"name\": \"User\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}]}", "records": [{"value": {"name": "ok"}}, {"value": {"name": 7}}]}"#;
        let answer = post(&env, &format!("/topics/{keyed}"), content_type, body).await?;
        assert_eq!(
            (answer.status, answer.body["error_code"].as_u64()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(42203))
        );
        assert_eq!(answer.content_type, V2);
        assert_eq!(
            (answer.body["errors"][0]["index"].as_u64(), answer.body["errors"][0]["pointer"].as_str()),
            (Some(1), Some("/name"))
        );
        // A schema id that is not a version of the topic's subject.
        let body = format!(r#"{{"value_schema_id": {key_id}, "records": [{{"value": {{"name": "x"}}}}]}}"#);
        let answer = post(&env, &format!("/topics/{keyed}"), content_type, &body).await?;
        assert_eq!(
            (answer.status, answer.body["error_code"].as_u64()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(42207)),
            "{}",
            answer.body
        );
        assert_eq!(
            sluice_tests::read_to_end(&env.bootstrap, &keyed, sluice_tests::Isolation::ReadCommitted).await?.len(),
            2,
            "the refused requests wrote nothing"
        );
        env.gateway.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_json_schema_and_protobuf_requests_as_the_quickstart_sends_them() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = Env::start(RegistryKind::Embedded, ROUTES).await?;
    let jsc = topic("cfk-jsc", 1).await?;
    let body = r#"{"value_schema": "{\"type\":\"object\",\"properties\":{\"f1\":{\"type\":\"string\"}}}", "records": [{"value": {"f1": "bar"}}]}"#;
    let answer = post(&env, &format!("/topics/{jsc}"), "application/vnd.kafka.jsonschema.v2+json", body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body["value_schema_id"].is_u64());
    let records = independent_decode(&env.bootstrap, &jsc, &env.registry_url, "json", 1).await?;
    assert_eq!(records[0]["value"], json!({"f1": "bar"}));

    let proto = topic("cfk-proto", 1).await?;
    let body = r#"{"value_schema": "syntax = \"proto3\"; message User { string name = 1; }", "records": [{"value": {"name": "testUser"}}]}"#;
    let answer = post(&env, &format!("/topics/{proto}"), "application/vnd.kafka.protobuf.v2+json", body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let id = answer.body["value_schema_id"].as_u64().expect("an id");
    let body = format!(r#"{{"value_schema_id": {id}, "records": [{{"value": {{"name": "second"}}}}]}}"#);
    let answer = post(&env, &format!("/topics/{proto}"), "application/vnd.kafka.protobuf.v2+json", &body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let records = independent_decode(&env.bootstrap, &proto, &env.registry_url, "protobuf:User", 2).await?;
    let names: Vec<&Value> = records.iter().map(|r| &r["value"]["name"]).collect();
    assert_eq!(names, [&json!("testUser"), &json!("second")]);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_refusals_carry_confluent_error_codes() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = Env::start(RegistryKind::Embedded, ROUTES).await?;
    let avro = topic("cfk-avro", 1).await?;
    let json_body = r#"{"records":[{"value":{"foo":"bar"}}]}"#;
    let cases = [
        // No route serves the topic.
        ("/topics/nobody-routes-this", "application/vnd.kafka.json.v2+json", json_body, 404, 40401),
        // Confluent's proxy takes only its embedded formats' media types.
        (&*format!("/topics/{avro}"), "application/json", json_body, 415, 415),
        // A topic takes its route's format.
        (&*format!("/topics/{avro}"), "application/vnd.kafka.json.v2+json", json_body, 415, 415),
        (&*format!("/topics/{avro}"), "application/vnd.kafka.avro.v2+json", r#"{"records":[]}"#, 422, 422),
        (&*format!("/topics/{avro}"), "application/vnd.kafka.avro.v2+json", r#"{"records":"#, 400, 400),
        (
            &*format!("/topics/{avro}"),
            "application/vnd.kafka.avro.v2+json",
            r#"{"value_schema": "{\"type\": \"nonsense\"}", "records": [{"value": 1}]}"#,
            422,
            42205,
        ),
        (
            &*format!("/topics/{avro}/partitions/9"),
            "application/vnd.kafka.avro.v2+json",
            r#"{"value_schema": "\"int\"", "records": [{"value": 1}]}"#,
            404,
            40402,
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let answer = post(&env, path, content_type, body).await?;
        assert_eq!(
            (answer.status.as_u16(), answer.body["error_code"].as_u64()),
            (status, Some(code)),
            "{path} {content_type} {body}: {}",
            answer.body
        );
        assert!(answer.body["message"].is_string(), "{}", answer.body);
        assert_eq!(answer.content_type, V2);
    }
    let binary = topic("cfk-bin", 1).await?;
    let answer = post(
        &env,
        &format!("/topics/{binary}"),
        "application/vnd.kafka.binary.v2+json",
        r#"{"records":[{"value":"not base64!"}]}"#,
    )
    .await?;
    assert_eq!((answer.status, answer.body["pointer"].as_str()), (StatusCode::BAD_REQUEST, Some("/records/0/value")));
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn v3_records_as_documented_with_headers_keys_timestamps_and_schemas() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = Env::start(RegistryKind::Embedded, ROUTES).await?;
    let cluster =
        get(&env, "/v3/clusters").await?.body["data"][0]["cluster_id"].as_str().expect("a cluster id").to_owned();
    let records_path = |topic: &str| format!("/v3/clusters/{cluster}/topics/{topic}/records");

    // The documentation's first example, on a JSON topic.
    let json_topic = topic("cfk-json", 2).await?;
    let body = r#"{"partition_id":1,"headers":[{"name":"Header-1","value":"SGVhZGVyLTE="},{"name":"Header-2","value":"SGVhZGVyLTI="}],"key":{"type":"BINARY","data":"Zm9vYmFy"},"value":{"type":"JSON","data":{"foo":"bar"}},"timestamp":"2021-02-05T19:14:42Z"}"#;
    let answer = post(&env, &records_path(&json_topic), "application/json", body).await?;
    assert_eq!((answer.status, answer.content_type.as_str()), (StatusCode::OK, "application/json"));
    let report = &answer.body;
    assert_eq!((report["error_code"].as_u64(), report["partition_id"].as_i64()), (Some(200), Some(1)), "{report}");
    assert_eq!((report["cluster_id"].as_str(), report["topic_name"].as_str()), (Some(&*cluster), Some(&*json_topic)));
    assert_eq!(report["timestamp"], "2021-02-05T19:14:42Z");
    assert_eq!(
        (&report["key"], &report["value"]),
        (&json!({"type": "BINARY", "size": 6}), &json!({"type": "JSON", "size": 13}))
    );
    let records = read_records(&env.bootstrap, &json_topic, &env.registry_url, 1).await?;
    let record = &records[0];
    assert_eq!((&record["key"], &record["value"]), (&json!("foobar"), &json!(r#"{"foo":"bar"}"#)));
    assert_eq!(
        (&record["headers"]["Header-1"], &record["headers"]["Header-2"]),
        (&json!("Header-1"), &json!("Header-2"))
    );
    assert_eq!((record["partition"].as_i64(), record["timestamp"].as_i64()), (Some(1), Some(1_612_552_482_000)));

    // STRING values go to a bytes topic; a JSON value there is refused, record by record.
    let binary = topic("cfk-bin", 1).await?;
    let body = r#"{"value":{"type":"STRING","data":"My message"}}{"value":{"type":"JSON","data":{}}}"#;
    let response = env
        .http
        .post(format!("{}{}", env.base, records_path(&binary)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let reports: Vec<Value> = response
        .text()
        .await?
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        (reports[0]["error_code"].as_u64(), reports[1]["error_code"].as_u64()),
        (Some(200), Some(400)),
        "{reports:?}"
    );
    let records = read_records(&env.bootstrap, &binary, &env.registry_url, 1).await?;
    assert_eq!(records[0]["value"], "My message");

    // Schemas: AVRO with the schema as text; then by schema_id and schema_version, as the
    // documentation's examples name them.
    let avro = topic("cfk-avro", 1).await?;
    let user = r#"{\"type\":\"record\",\"name\":\"User\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"}]}"#;
    let body = format!(
        r#"{{"key":{{"type":"AVRO","schema":"\"int\"","data":1000}},"value":{{"type":"AVRO","subject":"{avro}-value","schema":"{user}","data":{{"name":"first"}}}}}}"#
    );
    let answer = post(&env, &records_path(&avro), "application/json", &body).await?;
    assert_eq!(answer.body["error_code"], 200, "{}", answer.body);
    let key_id = env.latest_id(&format!("{avro}-key")).await?;
    let body = format!(
        r#"{{"key":{{"subject_name_strategy":"TOPIC_NAME","schema_id":{key_id},"data":1001}},"value":{{"schema_version":1,"data":{{"name":"second"}}}}}}"#
    );
    let answer = post(&env, &records_path(&avro), "application/json", &body).await?;
    assert_eq!(answer.body["error_code"], 200, "{}", answer.body);
    let records = read_records(&env.bootstrap, &avro, &env.registry_url, 2).await?;
    let pairs: Vec<(&Value, &Value)> = records.iter().map(|r| (&r["key"], &r["value"]["name"])).collect();
    assert_eq!(pairs, [(&json!(1000), &json!("first")), (&json!(1001), &json!("second"))]);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_v3_stream_of_a_thousand_records_is_answered_record_by_record() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = Env::start(RegistryKind::Embedded, ROUTES).await?;
    let cluster =
        get(&env, "/v3/clusters").await?.body["data"][0]["cluster_id"].as_str().expect("a cluster id").to_owned();
    let stream_topic = topic("cfk-json", 3).await?;
    let address = env.base.trim_start_matches("http://").to_owned();
    let path = format!("/v3/clusters/{cluster}/topics/{stream_topic}/records");
    // Records 0..1000, each keyed, so every partition gets some.
    let template = r#"{"key":{"type":"STRING","data":"k-{n}"},"value":{"type":"JSON","data":{"n":{n}}}}"#;
    let reports = python_lines("v3_stream.py", &[&address, &path, "1000", template]).await?;
    assert_eq!(reports.len(), 1000, "a report per record");
    let mut last: std::collections::HashMap<i64, i64> = Default::default();
    for report in &reports {
        assert_eq!(report["error_code"], 200, "{report}");
        let (partition, offset) = (report["partition_id"].as_i64().unwrap(), report["offset"].as_i64().unwrap());
        if let Some(previous) = last.insert(partition, offset) {
            assert!(offset > previous, "reports in record order: {report}");
        }
    }
    assert_eq!(last.len(), 3, "keys spread over every partition");
    let records = read_records(&env.bootstrap, &stream_topic, &env.registry_url, 1000).await?;
    for (n, report) in reports.iter().enumerate() {
        let record = at(&records, (report["partition_id"].as_i64().unwrap(), report["offset"].as_i64().unwrap()));
        assert_eq!((&record["key"], &record["value"]), (&json!(format!("k-{n}")), &json!(format!(r#"{{"n":{n}}}"#))));
    }
    // A record that is not JSON ends the stream with a 400 report after the good ones.
    let template = r#"{"value":{"type":"JSON","data":{n}}}"#.to_owned() + "}";
    let reports = python_lines("v3_stream.py", &[&address, &path, "1", &template]).await?;
    assert_eq!(reports.iter().map(|r| r["error_code"].as_u64()).collect::<Vec<_>>(), [Some(200), Some(400)]);
    env.gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_shows_the_routed_topics_a_caller_may_produce_to() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let env = Env::start(RegistryKind::Embedded, ROUTES).await?;
    let routed = topic("cfk-json", 3).await?;
    let unrouted = topic("elsewhere", 1).await?;
    let names = get(&env, "/topics").await?;
    assert_eq!(names.content_type, V2);
    let names: Vec<&str> = names.body.as_array().expect("names").iter().filter_map(Value::as_str).collect();
    assert!(names.contains(&&*routed) && !names.contains(&&*unrouted), "{names:?}");
    let one = get(&env, &format!("/topics/{routed}")).await?.body;
    assert_eq!((one["name"].as_str(), one["partitions"].as_array().map(Vec::len)), (Some(&*routed), Some(3)));
    assert_eq!(one["partitions"][0]["replicas"][0]["in_sync"], true);
    let partition = get(&env, &format!("/topics/{routed}/partitions/2")).await?.body;
    assert_eq!(partition["partition"], 2);
    let missing = get(&env, &format!("/topics/{unrouted}")).await?;
    assert_eq!((missing.status, missing.body["error_code"].as_u64()), (StatusCode::NOT_FOUND, Some(40403)));
    assert_eq!(get(&env, &format!("/topics/{routed}/partitions/3")).await?.body["error_code"], 40402);

    let clusters = get(&env, "/v3/clusters").await?.body;
    assert_eq!(clusters["kind"], "KafkaClusterList");
    let cluster = clusters["data"][0]["cluster_id"].as_str().expect("an id").to_owned();
    assert_eq!(clusters["data"][0]["metadata"]["resource_name"], format!("crn:///kafka={cluster}"));
    let topic = get(&env, &format!("/v3/clusters/{cluster}/topics/{routed}")).await?.body;
    assert_eq!((topic["kind"].as_str(), topic["partitions_count"].as_u64()), (Some("KafkaTopic"), Some(3)));
    let listed = get(&env, &format!("/v3/clusters/{cluster}/topics")).await?.body;
    assert!(listed["data"].as_array().unwrap().iter().any(|t| t["topic_name"] == *routed));
    let partitions = get(&env, &format!("/v3/clusters/{cluster}/topics/{routed}/partitions")).await?.body;
    assert_eq!(partitions["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(get(&env, "/v3/clusters/not-this-one").await?.status, StatusCode::NOT_FOUND);
    env.gateway.stop().await?;
    Ok(())
}
