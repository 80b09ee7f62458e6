use serde_json::{Value, json};

use prost_reflect::DynamicMessage;

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
    codec.encode(message, &crate::codec::json::parse(event).unwrap(), event, true, &mut out).unwrap();
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
        let error =
            codec.encode(None, &crate::codec::json::parse(event).unwrap(), event, true, &mut Vec::new()).unwrap_err();
        assert_eq!(error.pointer, pointer, "{event}: {}", error.message);
        assert!(!error.message.contains("line 1"), "{}", error.message);
    }
    // Unknown fields can be dropped instead.
    let mut out = Vec::new();
    let event = r#"{"colour": "red", "orderId": "o"}"#;
    codec.encode(None, &crate::codec::json::parse(event).unwrap(), event, false, &mut out).unwrap();
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

/// Every kind of field the fast encoder writes, and some it leaves to `prost-reflect`.
const EVERYTHING: &str = r#"
syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
message All {
  double d = 1; float f = 2; int32 i32 = 3; int64 i64 = 4; uint32 u32 = 5; uint64 u64 = 6;
  sint32 s32 = 7; sint64 s64 = 8; fixed32 x32 = 9; fixed64 x64 = 10; sfixed32 sx32 = 11;
  sfixed64 sx64 = 12; bool b = 13; string s = 14; bytes by = 15; E e = 16; Inner inner = 17;
  repeated int32 ri = 18; repeated string rs = 19; repeated Inner rm = 20; repeated E re = 21;
  repeated int32 unpacked = 22 [packed = false];
  map<string, int64> ms = 23; map<int32, Inner> mi = 24; map<bool, string> mb = 25; map<uint64, E> mu = 26;
  oneof choice { string c1 = 27; Inner c2 = 28; int32 c3 = 29; }
  optional int32 oi = 30; optional string os = 31;
  google.protobuf.Timestamp ts = 32; google.protobuf.Duration du = 33; repeated google.protobuf.Timestamp rts = 34;
  string long_name_with_json = 35 [json_name = "lnwj"];
}
message Inner { string name = 1; repeated Inner children = 2; All all = 3; }
enum E { E0 = 0; E1 = 1; E2 = 2; }
"#;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Gen(u64, u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A value for the field `key`: valid for its type, or (`g.1` percent) odd (the wrong type, a
/// spelling only `prost-reflect` reads, or out of range).
fn scalar(g: &mut Gen, key: &str) -> Value {
    let int32 = [
        json!(0),
        json!(1),
        json!(-1),
        json!(127),
        json!(128),
        json!(-300),
        json!(2_147_483_647),
        json!(-2_147_483_648_i64),
        json!("12"),
        json!("-7"),
    ];
    let int64 =
        [json!(0), json!(-1), json!(300), json!(i64::MAX), json!(i64::MIN), json!("9007199254740993"), json!("-12")];
    let uint32 = [json!(0), json!(1), json!(128), json!(4_294_967_295_u64), json!("12")];
    let uint64 = [json!(0), json!(1), json!(u64::MAX), json!("18446744073709551615")];
    let floats = [json!(0), json!(1.5), json!(-0.0), json!(1e-50), json!(3.4e38), json!(-2.5), json!(7)];
    let strings = [json!(""), json!("x"), json!("ünï"), json!("a".repeat(200))];
    let odd = [
        json!(1e3),
        json!("1e2"),
        json!("0x10"),
        json!(" 1"),
        json!(true),
        json!("NaN"),
        json!("Infinity"),
        json!(3.5e38),
        json!(1.5),
        json!(2_147_483_648_i64),
        json!(-1),
        json!([1]),
        json!({}),
        json!(null),
        json!("AQI"),
        json!("-_8="),
        json!("E9"),
        json!("1m"),
        json!("2026-12-01 10:00:00Z"),
        json!("2026-13-01T00:00:00Z"),
        json!(""),
    ];
    if g.chance(g.1) {
        return g.pick(&odd).clone();
    }
    let valid: &[Value] = match key {
        "i32" | "s32" | "sx32" | "oi" | "c3" => &int32,
        "i64" | "s64" | "sx64" => &int64,
        "u32" | "x32" => &uint32,
        "u64" | "x64" => &uint64,
        "d" | "f" => &floats,
        "b" => &[json!(true), json!(false)],
        "by" => &[json!(""), json!("AQI="), json!("/w==")],
        "e" => &[json!("E0"), json!("E2"), json!(1), json!(7), json!(-1)],
        "ts" => &[
            json!("2026-12-01T10:00:00Z"),
            json!("1970-01-01T00:00:00Z"),
            json!("2026-12-01T10:00:00.123456789+05:30"),
            json!("0001-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59.999Z"),
        ],
        "du" => &[json!("1.5s"), json!("-3s")],
        _ => &strings,
    };
    g.pick(valid).clone()
}

fn number(g: &mut Gen) -> Value {
    scalar(g, "i32")
}

fn inner(g: &mut Gen, depth: usize) -> Value {
    let mut object = serde_json::Map::new();
    if g.chance(70) {
        object.insert("name".into(), scalar(g, "s"));
    }
    if depth < 3 && g.chance(30) {
        object.insert("children".into(), json!([inner(g, depth + 1), inner(g, depth + 1)]));
    }
    if depth < 2 && g.chance(15) {
        object.insert("all".into(), all(g, depth + 1));
    }
    if g.chance(3) {
        object.insert("unknown".into(), json!(1));
    }
    Value::Object(object)
}

/// Makes one item of a repeated field.
type Item = fn(&mut Gen, usize) -> Value;

fn all(g: &mut Gen, depth: usize) -> Value {
    let singles = [
        "d", "f", "i32", "i64", "u32", "u64", "s32", "s64", "x32", "x64", "sx32", "sx64", "b", "s", "by", "e", "oi",
        "os", "ts", "du", "lnwj",
    ];
    let mut object = serde_json::Map::new();
    for key in singles {
        // Duration takes the reference path: only in the odd half.
        if g.chance(40) && (key != "du" || g.1 > 0) {
            object.insert(key.into(), scalar(g, key));
        }
    }
    if g.chance(40) {
        object.insert("inner".into(), inner(g, depth));
    }
    let lists: [(&str, Item); 6] = [
        ("ri", |g, _| number(g)),
        ("rs", |g, _| scalar(g, "s")),
        ("rm", inner),
        ("re", |g, _| scalar(g, "e")),
        ("unpacked", |g, _| number(g)),
        ("rts", |g, _| scalar(g, "ts")),
    ];
    for (key, item) in lists {
        if g.chance(30) {
            let n = g.next() % 4;
            object.insert(key.into(), Value::Array((0..n).map(|_| item(g, depth + 1)).collect()));
        }
    }
    if g.chance(30) {
        object.insert("ms".into(), json!({"a": scalar(g, "i64"), "": 5}));
    }
    if g.chance(20) {
        let key = g.pick(&["1", "-2", "0", "1", "-2", "x", "2147483648"]).to_string();
        object.insert("mi".into(), json!({ key: inner(g, depth + 1) }));
    }
    if g.chance(20) {
        let key = g.pick(&["true", "false", "true", "yes"]).to_string();
        object.insert("mb".into(), json!({ key: "v" }));
    }
    if g.chance(20) {
        object.insert("mu".into(), json!({"18446744073709551615": "E1", "3": 2}));
    }
    for (key, chance) in [("c1", 15), ("c2", 10), ("c3", 15)] {
        if g.chance(chance) {
            let value = if key == "c2" { inner(g, depth + 1) } else { scalar(g, key) };
            object.insert(key.into(), value);
        }
    }
    if g.chance(3) {
        object.insert("mystery".into(), json!("x"));
    }
    Value::Object(object)
}

/// Whenever the fast encoder answers, `prost-reflect` reads its bytes as the message it reads
/// from the same JSON; when `prost-reflect` refuses an event, the fast encoder must not have
/// answered; and every valid event of the plain half takes the fast path.
#[test]
fn the_fast_encoder_agrees_with_prost_reflect() {
    let codec = codec(EVERYTHING);
    let (descriptor, _) = codec.message(Some("t.All")).unwrap().clone();
    let mut g = Gen(0x9E37_79B9_7F4A_7C15, 0);
    let (mut fast, mut total) = (0, 0);
    for case in 0..20_000 {
        // Half the events with odd values (one in twelve), half without.
        g.1 = if case % 2 == 0 { 8 } else { 0 };
        let event = all(&mut g, 0).to_string();
        let parsed = crate::codec::json::parse(&event).unwrap();
        for reject in [true, false] {
            total += 1;
            let mut ours = Vec::new();
            let answered = codec.fast.encode("t.All", &parsed, reject, &mut ours).is_some();
            let mut reference = Vec::new();
            let theirs = codec.encode_reference(&descriptor, &[0], &event, reject, &mut reference);
            if !answered {
                assert!(theirs.is_err() || g.1 > 0, "case {case}: a plain event took the slow path: {event}");
                continue;
            }
            fast += 1;
            assert!(theirs.is_ok(), "case {case}: fast path wrote {event} that prost-reflect refuses: {theirs:?}");
            let ours = DynamicMessage::decode(descriptor.clone(), ours.as_slice())
                .unwrap_or_else(|e| panic!("case {case}: {event}: fast bytes do not decode: {e}"));
            let theirs = DynamicMessage::decode(descriptor.clone(), &reference[1..]).unwrap();
            assert_eq!(ours, theirs, "case {case} (reject unknown: {reject}): {event}");
        }
    }
    assert!(fast * 100 / total >= 40, "only {fast} of {total} events took the fast path");
    // The benchmark's shape takes it every time.
    let plain = r#"{"s": "x", "i64": "12", "e": "E1", "inner": {"name": "n"}, "ri": [1, 2], "ms": {"k": 3},
                    "ts": "2026-12-01T10:00:00Z"}"#;
    assert!(codec.fast.encode("t.All", &crate::codec::json::parse(plain).unwrap(), true, &mut Vec::new()).is_some());
}

/// A descriptor registered in base64 reads back as `.proto` text that compiles to the same
/// descriptor; one the printer cannot write faithfully stays base64.
#[test]
fn serialized_descriptors_are_printed_back_as_proto_text() {
    use base64::Engine as _;
    use prost_reflect::prost::Message as _;
    let money = ReferencedSchema {
        name: "shop/money.proto".into(),
        schema: "syntax = \"proto3\"; package shop; message Money { string currency = 1; }".into(),
    };
    let files = [
        ORDER.to_owned(),
        EVERYTHING.to_owned(),
        "syntax = \"proto2\";\npackage p.q;\noption java_package = \"dev.p\";\noption go_package = \"example.com/p\";\n\
         message A { required int32 a = 1; optional string b = 2 [deprecated = true]; repeated int32 c = 3 [packed = true];\n\
         oneof o { string d = 4; A e = 5; } reserved 8, 10 to 12, 100 to max; reserved \"x\", \"y\";\n\
         enum Kind { option allow_alias = true; K0 = 0; K1 = 1; KA = 1; reserved 5 to 7; reserved \"K9\"; } }\n\
         service S { rpc Get(A) returns (stream A); }\n"
            .to_owned(),
        "syntax = \"proto3\";\nimport \"shop/money.proto\";\nimport public \"google/protobuf/timestamp.proto\";\n\
         message P { .shop.Money m = 1; map<string, .shop.Money> by = 2; optional int64 n = 3 [json_name = \"count\"];\n\
         message Q { message R { bool deep = 1; } R r = 1; } Q q = 4; google.protobuf.Timestamp t = 5; }\n"
            .to_owned(),
    ];
    for text in &files {
        let references = if text.contains("money") { vec![money.clone()] } else { vec![] };
        let file = compile(text, &references).unwrap();
        let base64 = base64::engine::general_purpose::STANDARD.encode(file.file_descriptor_proto().encode_to_vec());
        let printed = as_text(&base64, &references);
        assert!(printed.starts_with("syntax = "), "{text}\nwas not printed: {printed}");
        let again = compile(&printed, &references).unwrap_or_else(|e| panic!("{printed}\ndoes not compile: {e}"));
        assert_eq!(
            comparable(again.file_descriptor_proto().clone()),
            comparable(file.file_descriptor_proto().clone()),
            "{printed}"
        );
    }
    // Extensions are not printed: the descriptor stays as it was sent.
    let extended = "syntax = \"proto2\"; message A { extensions 100 to 200; } extend A { optional int32 x = 100; }";
    let file = compile(extended, &[]).unwrap();
    let base64 = base64::engine::general_purpose::STANDARD.encode(file.file_descriptor_proto().encode_to_vec());
    assert_eq!(as_text(&base64, &[]), base64);
    // Text is kept as it was written.
    assert_eq!(as_text(ORDER, &[]), ORDER);
}

#[test]
fn a_descriptor_that_makes_prost_reflect_panic_is_an_invalid_schema() {
    // Found by the `protobuf_encode` fuzz target: base64 of `62 01 08`.
    let error = ProtobufCodec::compile("YgEI", &[]).unwrap_err();
    assert!(error.contains("cannot be compiled"), "{error}");
}
