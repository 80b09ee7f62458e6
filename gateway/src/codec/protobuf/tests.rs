use serde_json::{Value, json};

use super::*;

const ORDER: &str = r#"
syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";

message Order {
  string order_id = 1;
  int64 amount_cents = 2;
  Status status = 3;
  google.protobuf.Timestamp placed_at = 4;
  repeated Line lines = 5;
  bytes signature = 6;
  string customer_name = 7 [json_name = "customer"];

  message Line {
    string sku = 1;
    uint32 quantity = 2;
  }
  enum Status {
    STATUS_UNSPECIFIED = 0;
    PLACED = 1;
    SHIPPED = 2;
  }
}

message Refund {
  string order_id = 1;
}
"#;

fn codec(schema: &str) -> ProtobufCodec {
    ProtobufCodec::compile(schema, &[]).unwrap()
}

fn round_trip(codec: &ProtobufCodec, message: Option<&str>, event: &str) -> (Vec<u8>, Value) {
    let mut out = Vec::new();
    codec.encode(message, event, true, &mut out).unwrap();
    let json = codec.decode_to_json(&out).unwrap();
    (out, serde_json::from_slice(&json).unwrap())
}

#[test]
fn events_round_trip_as_canonical_proto3_json() {
    let codec = codec(ORDER);
    let event = r#"{"order_id": "o-1", "amountCents": 1234, "status": "SHIPPED",
        "placedAt": "2026-12-01T10:00:00Z", "lines": [{"sku": "a", "quantity": 2}],
        "signature": "AQI=", "customer": "Ada"}"#;
    let (bytes, back) = round_trip(&codec, None, event);
    assert_eq!(bytes[0], 0, "the first message is the single 0 index");
    assert_eq!(
        back,
        json!({"orderId": "o-1", "amountCents": "1234", "status": "SHIPPED", "placedAt": "2026-12-01T10:00:00Z",
               "lines": [{"sku": "a", "quantity": 2}], "signature": "AQI=", "customer": "Ada"}),
        "json names, 64-bit integers as strings, enums by name, Timestamp as RFC 3339"
    );
    // Enums by number, 64-bit integers as strings.
    let (_, back) = round_trip(&codec, None, r#"{"status": 1, "amount_cents": "-5"}"#);
    assert_eq!(back, json!({"status": "PLACED", "amountCents": "-5"}));
}

#[test]
fn a_named_or_nested_message_is_written_with_its_indexes() {
    let codec = codec(ORDER);
    let (bytes, back) = round_trip(&codec, Some("shop.v1.Refund"), r#"{"orderId": "x"}"#);
    assert_eq!(bytes[..2], [2, 2], "[1]: a count of one, then index 1 (zig-zag)");
    assert_eq!(back, json!({"orderId": "x"}));
    let (bytes, _) = round_trip(&codec, Some("Order.Line"), r#"{"sku": "x"}"#);
    assert_eq!(bytes[..3], [4, 0, 0], "[0, 0]: the first message nested in the first");
    assert!(codec.message(Some("Nope")).unwrap_err().contains("no message 'Nope'"));
}

#[test]
fn invalid_events_are_refused_with_a_pointer() {
    let codec = codec(ORDER);
    let cases = [
        (r#"{"amountCents": "lots"}"#, "/amountCents"),
        (r#"{"status": "LOST"}"#, "/status"),
        (r#"{"lines": [{"sku": "a"}, {"quantity": -1}]}"#, "/lines/1/quantity"),
        (r#"{"placedAt": "yesterday"}"#, "/placedAt"),
        (r#"{"colour": "red"}"#, "/colour"),
        (r#"{"signature": "not base64!"}"#, "/signature"),
        (r#"[1]"#, ""),
    ];
    for (event, pointer) in cases {
        let error = codec.encode(None, event, true, &mut Vec::new()).unwrap_err();
        assert_eq!(error.pointer, pointer, "{event}: {}", error.message);
        assert!(!error.message.contains("line 1"), "{}", error.message);
    }
    // Unknown fields can be dropped instead.
    let mut out = Vec::new();
    codec.encode(None, r#"{"colour": "red", "orderId": "o"}"#, false, &mut out).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&codec.decode_to_json(&out).unwrap()).unwrap(), json!({"orderId": "o"}));
}

#[test]
fn imports_resolve_through_references_and_well_known_types_need_none() {
    let money = ReferencedSchema {
        name: "shop/money.proto".into(),
        schema: "syntax = \"proto3\"; package shop; message Money { string currency = 1; int64 units = 2; }".into(),
    };
    let schema = r#"syntax = "proto3";
        import "shop/money.proto";
        import "google/protobuf/wrappers.proto";
        import "google/protobuf/struct.proto";
        import "google/protobuf/duration.proto";
        message Payment { shop.Money total = 1; google.protobuf.StringValue note = 2;
                          google.protobuf.Struct extra = 3; google.protobuf.Duration took = 4; }"#;
    let codec = ProtobufCodec::compile(schema, std::slice::from_ref(&money)).unwrap();
    let (_, back) = round_trip(
        &codec,
        None,
        r#"{"total": {"currency": "EUR", "units": 5}, "note": "hi", "extra": {"a": [1, "b"]}, "took": "1.5s"}"#,
    );
    assert_eq!(
        back,
        json!({"total": {"currency": "EUR", "units": "5"}, "note": "hi", "extra": {"a": [1.0, "b"]}, "took": "1.500s"})
    );
    let missing = ProtobufCodec::compile(schema, &[]).unwrap_err();
    assert!(missing.contains("shop/money.proto"), "{missing}");
}

#[test]
fn compile_errors_say_where_as_protoc_does() {
    let error = ProtobufCodec::compile("syntax = \"proto3\";\nmessage A {\n  strin x = 1;\n}\n", &[]).unwrap_err();
    assert!(error.starts_with("schema.proto:3:"), "{error}");
    assert!(error.contains("strin"), "{error}");
    let error =
        ProtobufCodec::compile("syntax = \"proto3\";\nmessage A { string x = 1; int32 y = 1; }", &[]).unwrap_err();
    assert!(error.contains("schema.proto:2:"), "{error}");
}

#[test]
fn a_serialized_file_descriptor_is_accepted_as_confluent_accepts_it() {
    use base64::Engine as _;
    use prost_reflect::prost::Message as _;
    let file = codec(ORDER).file().file_descriptor_proto().clone();
    let text = base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec());
    let codec = ProtobufCodec::compile(&text, &[]).unwrap();
    let (_, back) = round_trip(&codec, None, r#"{"orderId": "o"}"#);
    assert_eq!(back, json!({"orderId": "o"}));
}

#[test]
fn hostile_records_are_errors() {
    let codec = codec(ORDER);
    for payload in [&[][..], &[2, 20][..], &[0, 0x0a, 0xff][..], &[0, 0x2a, 0x05, 0x2a, 0x03][..]] {
        assert!(codec.decode_to_json(payload).is_err(), "{payload:?}");
    }
    // A message nested beyond the decoder's recursion limit.
    let nested = "syntax = \"proto3\"; message N { N n = 1; }";
    let codec = ProtobufCodec::compile(nested, &[]).unwrap();
    let mut payload = vec![0];
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut outer = vec![0x0a];
        prost_reflect::prost::encoding::encode_varint(inner.len() as u64, &mut outer);
        outer.extend_from_slice(&inner);
        inner = outer;
    }
    payload.extend_from_slice(&inner);
    assert!(codec.decode_to_json(&payload).is_err());
}
