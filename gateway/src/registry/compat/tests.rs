//! Table-driven evolution cases: each names an old and a new schema and what BACKWARD (the new
//! schema reads old data) and FORWARD (the old schema reads new data) say, with the reason when
//! they refuse. FULL must refuse when either does; NONE never refuses; the transitive modes are
//! checked against several versions at the end.

use serde_json::{Value, json};

use super::{Mode, Parsed, check};
use crate::codec::SchemaType;

/// What one direction must conclude: compatible, or refused with this error type (and, when
/// given, at this location of the reader schema).
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect {
    Ok,
    No(&'static str),
    At(&'static str, &'static str),
}
pub(super) use Expect::{At, No, Ok};

pub(super) struct Case {
    name: &'static str,
    old: Value,
    new: Value,
    backward: Expect,
    forward: Expect,
}

pub(super) fn case(name: &'static str, old: Value, new: Value, backward: Expect, forward: Expect) -> Case {
    Case { name, old, new, backward, forward }
}

fn parse(schema_type: SchemaType, schema: &Value) -> Parsed {
    let text = match schema {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Parsed::parse(schema_type, &text, &[]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub(super) fn verify(schema_type: SchemaType, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let (old, new) = (parse(schema_type, &c.old), parse(schema_type, &c.new));
        let earlier = [(1, old)];
        for (mode, expect) in [(Mode::Backward, c.backward), (Mode::Forward, c.forward)] {
            let findings = check(mode, &new, &earlier);
            let ok = match expect {
                Ok => findings.is_empty(),
                No(kind) => findings.iter().any(|f| f.incompatibility.kind == kind),
                At(kind, location) => {
                    findings.iter().any(|f| f.incompatibility.kind == kind && f.incompatibility.location == location)
                }
            };
            if !ok {
                failures.push(format!("{} under {mode}: expected {expect:?}, got {findings:#?}", c.name));
            }
        }
        let full = check(Mode::Full, &new, &earlier);
        let both_ok = matches!(c.backward, Ok) && matches!(c.forward, Ok);
        if full.is_empty() != both_ok {
            failures.push(format!("{} under FULL: {full:#?}", c.name));
        }
        if !check(Mode::None, &new, &earlier).is_empty() {
            failures.push(format!("{} under NONE refused", c.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

fn record(fields: Value) -> Value {
    json!({"type": "record", "name": "R", "namespace": "t", "fields": fields})
}

fn field(name: &str, schema: Value) -> Value {
    json!({"name": name, "type": schema})
}

fn field_default(name: &str, schema: Value, default: Value) -> Value {
    json!({"name": name, "type": schema, "default": default})
}

fn one(schema: Value) -> Value {
    record(json!([field("a", schema)]))
}

fn order_v1() -> Value {
    serde_json::from_str(crate::dev::ORDER_PLACED_V1).expect("the seed schema is JSON")
}

fn order_v2() -> Value {
    let mut v2 = order_v1();
    let fields = v2["fields"].as_array_mut().expect("fields");
    fields.push(field_default("shipping_method", json!("string"), json!("standard")));
    fields.push(field_default("items", json!({"type": "array", "items": "string"}), json!([])));
    v2
}

fn without_field(schema: &Value, name: &str) -> Value {
    let mut schema = schema.clone();
    schema["fields"].as_array_mut().expect("fields").retain(|f| f["name"] != name);
    schema
}

fn with_field_type(schema: &Value, name: &str, new_type: Value) -> Value {
    let mut schema = schema.clone();
    for f in schema["fields"].as_array_mut().expect("fields") {
        if f["name"] == name {
            f["type"] = new_type.clone();
        }
    }
    schema
}

fn enumeration(name: &str, symbols: &[&str]) -> Value {
    json!({"type": "enum", "name": name, "symbols": symbols})
}

fn avro_cases() -> Vec<Case> {
    let a = field("a", json!("string"));
    let nested = |fields: Value| {
        record(json!([a.clone(), field("address", json!({"type": "record", "name": "Address", "fields": fields}))]))
    };
    let list = |extra: Option<Value>| {
        let mut fields =
            vec![field("value", json!("int")), field_default("next", json!(["null", "Node"]), json!(null))];
        fields.extend(extra);
        json!({"type": "record", "name": "Node", "fields": fields})
    };
    let cases = [
        case("identical", one(json!("int")), one(json!("int")), Ok, Ok),
        case(
            "add a field with a default",
            record(json!([a])),
            record(json!([a, field_default("b", json!("int"), json!(0))])),
            Ok,
            Ok,
        ),
        case(
            "add a field without a default",
            record(json!([a])),
            record(json!([a, field("b", json!("int"))])),
            At("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1"),
            Ok,
        ),
        case(
            "remove a field that had a default",
            record(json!([a, field_default("b", json!("int"), json!(0))])),
            record(json!([a])),
            Ok,
            Ok,
        ),
        case(
            "remove a field without a default",
            record(json!([a, field("b", json!("int"))])),
            record(json!([a])),
            Ok,
            At("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1"),
        ),
        case("int to long", one(json!("int")), one(json!("long")), Ok, At("TYPE_MISMATCH", "/fields/0/type")),
        case("long to int", one(json!("long")), one(json!("int")), No("TYPE_MISMATCH"), Ok),
        case("int to float", one(json!("int")), one(json!("float")), Ok, No("TYPE_MISMATCH")),
        case("int to double", one(json!("int")), one(json!("double")), Ok, No("TYPE_MISMATCH")),
        case("long to float", one(json!("long")), one(json!("float")), Ok, No("TYPE_MISMATCH")),
        case("long to double", one(json!("long")), one(json!("double")), Ok, No("TYPE_MISMATCH")),
        case("float to double", one(json!("float")), one(json!("double")), Ok, No("TYPE_MISMATCH")),
        case("double to float", one(json!("double")), one(json!("float")), No("TYPE_MISMATCH"), Ok),
        case("string to bytes", one(json!("string")), one(json!("bytes")), Ok, Ok),
        case("bytes to string", one(json!("bytes")), one(json!("string")), Ok, Ok),
        case("long to string", one(json!("long")), one(json!("string")), No("TYPE_MISMATCH"), No("TYPE_MISMATCH")),
        case("boolean to int", one(json!("boolean")), one(json!("int")), No("TYPE_MISMATCH"), No("TYPE_MISMATCH")),
        case(
            "add an enum symbol",
            one(enumeration("E", &["A", "B"])),
            one(enumeration("E", &["A", "B", "C"])),
            Ok,
            At("MISSING_ENUM_SYMBOLS", "/fields/0/type/symbols"),
        ),
        case(
            "remove an enum symbol",
            one(enumeration("E", &["A", "B", "C"])),
            one(enumeration("E", &["A", "B"])),
            At("MISSING_ENUM_SYMBOLS", "/fields/0/type/symbols"),
            Ok,
        ),
        case(
            "remove an enum symbol, the new enum has a default",
            one(enumeration("E", &["A", "B", "C"])),
            one(json!({"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A"})),
            Ok,
            Ok,
        ),
        case(
            "rename an enum",
            one(enumeration("E", &["A"])),
            one(enumeration("F", &["A"])),
            No("NAME_MISMATCH"),
            No("NAME_MISMATCH"),
        ),
        case(
            "rename an enum with an alias",
            one(enumeration("E", &["A"])),
            one(json!({"type": "enum", "name": "F", "aliases": ["E"], "symbols": ["A"]})),
            Ok,
            At("NAME_MISMATCH", "/fields/0/type/name"),
        ),
        case(
            "rename the record",
            one(json!("int")),
            json!({"type": "record", "name": "S", "namespace": "t", "fields": [field("a", json!("int"))]}),
            At("NAME_MISMATCH", "/name"),
            No("NAME_MISMATCH"),
        ),
        case(
            "rename the record with an alias",
            one(json!("int")),
            json!({"type": "record", "name": "S", "namespace": "t", "aliases": ["R"], "fields": [field("a", json!("int"))]}),
            Ok,
            No("NAME_MISMATCH"),
        ),
        case(
            "rename the record with an alias in the wrong namespace",
            one(json!("int")),
            json!({"type": "record", "name": "S", "aliases": ["R"], "fields": [field("a", json!("int"))]}),
            No("NAME_MISMATCH"),
            No("NAME_MISMATCH"),
        ),
        case(
            "change only the namespace",
            one(json!("int")),
            json!({"type": "record", "name": "R", "namespace": "other", "fields": [field("a", json!("int"))]}),
            Ok,
            Ok,
        ),
        case(
            "rename a field with an alias",
            record(json!([field("a", json!("int"))])),
            record(json!([{"name": "b", "aliases": ["a"], "type": "int"}])),
            Ok,
            At("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/0"),
        ),
        case(
            "rename a field without an alias",
            record(json!([field("a", json!("int"))])),
            record(json!([field("b", json!("int"))])),
            No("READER_FIELD_MISSING_DEFAULT_VALUE"),
            No("READER_FIELD_MISSING_DEFAULT_VALUE"),
        ),
        case(
            "change a fixed size",
            one(json!({"type": "fixed", "name": "F", "size": 4})),
            one(json!({"type": "fixed", "name": "F", "size": 8})),
            At("FIXED_SIZE_MISMATCH", "/fields/0/type/size"),
            No("FIXED_SIZE_MISMATCH"),
        ),
        case(
            "rename a fixed",
            one(json!({"type": "fixed", "name": "F", "size": 4})),
            one(json!({"type": "fixed", "name": "G", "size": 4})),
            No("NAME_MISMATCH"),
            No("NAME_MISMATCH"),
        ),
        case("make a field nullable", one(json!("string")), one(json!(["null", "string"])), Ok, No("TYPE_MISMATCH")),
        case(
            "make a nullable field required",
            one(json!(["null", "string"])),
            one(json!("string")),
            No("TYPE_MISMATCH"),
            Ok,
        ),
        case(
            "add a union branch",
            one(json!(["null", "string"])),
            one(json!(["null", "string", "long"])),
            Ok,
            At("MISSING_UNION_BRANCH", "/fields/0/type"),
        ),
        case(
            "remove a union branch",
            one(json!(["null", "string", "long"])),
            one(json!(["null", "string"])),
            No("MISSING_UNION_BRANCH"),
            Ok,
        ),
        case("reorder a union", one(json!(["null", "string"])), one(json!(["string", "null"])), Ok, Ok),
        case(
            "promote inside a union",
            one(json!(["null", "int"])),
            one(json!(["null", "long"])),
            Ok,
            No("MISSING_UNION_BRANCH"),
        ),
        case(
            "promote array items",
            one(json!({"type": "array", "items": "int"})),
            one(json!({"type": "array", "items": "long"})),
            Ok,
            At("TYPE_MISMATCH", "/fields/0/type/items"),
        ),
        case(
            "narrow map values",
            one(json!({"type": "map", "values": "long"})),
            one(json!({"type": "map", "values": "int"})),
            At("TYPE_MISMATCH", "/fields/0/type/values"),
            Ok,
        ),
        case(
            "array to map",
            one(json!({"type": "array", "items": "string"})),
            one(json!({"type": "map", "values": "string"})),
            No("TYPE_MISMATCH"),
            No("TYPE_MISMATCH"),
        ),
        case(
            "record field to string",
            nested(json!([field("street", json!("string"))])),
            record(json!([a, field("address", json!("string"))])),
            No("TYPE_MISMATCH"),
            No("TYPE_MISMATCH"),
        ),
        case(
            "add a field without a default to a nested record",
            nested(json!([field("street", json!("string"))])),
            nested(json!([field("street", json!("string")), field("zip", json!("string"))])),
            At("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1/type/fields/1"),
            Ok,
        ),
        case(
            "add a field with a default to a nested record",
            nested(json!([field("street", json!("string"))])),
            nested(json!([field("street", json!("string")), field_default("zip", json!("string"), json!(""))])),
            Ok,
            Ok,
        ),
        case(
            "drop a logical type",
            one(json!({"type": "long", "logicalType": "timestamp-millis"})),
            one(json!("long")),
            Ok,
            Ok,
        ),
        case(
            "timestamp-millis to timestamp-micros (same long underneath)",
            one(json!({"type": "long", "logicalType": "timestamp-millis"})),
            one(json!({"type": "long", "logicalType": "timestamp-micros"})),
            Ok,
            Ok,
        ),
        case(
            "date to long",
            one(json!({"type": "int", "logicalType": "date"})),
            one(json!("long")),
            Ok,
            No("TYPE_MISMATCH"),
        ),
        case(
            "decimal bytes to bytes",
            one(json!({"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2})),
            one(json!("bytes")),
            Ok,
            Ok,
        ),
        case(
            "recursive type gains a defaulted field",
            list(None),
            list(Some(field_default("label", json!("string"), json!("")))),
            Ok,
            Ok,
        ),
        case(
            "recursive type gains a required field",
            list(None),
            list(Some(field("label", json!("string")))),
            At("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/2"),
            Ok,
        ),
        case(
            "change a default",
            record(json!([field_default("b", json!("int"), json!(1))])),
            record(json!([field_default("b", json!("int"), json!(2))])),
            Ok,
            Ok,
        ),
        case(
            "add a nullable field defaulting to null",
            record(json!([a])),
            record(json!([a, field_default("note", json!(["null", "string"]), json!(null))])),
            Ok,
            Ok,
        ),
        case("seed: OrderPlaced v1 to v2", order_v1(), order_v2(), Ok, Ok),
        case(
            "seed: remove currency, which has no default",
            order_v1(),
            without_field(&order_v1(), "currency"),
            Ok,
            At("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/3"),
        ),
        case(
            "seed: total_cents from long to string",
            order_v1(),
            with_field_type(&order_v1(), "total_cents", json!("string")),
            At("TYPE_MISMATCH", "/fields/2/type"),
            At("TYPE_MISMATCH", "/fields/2/type"),
        ),
    ];
    cases.into()
}

#[test]
fn avro_evolution_cases() {
    let cases = avro_cases();
    assert!(cases.len() >= 40, "{} Avro cases", cases.len());
    verify(SchemaType::Avro, &cases);
}

/// Avro's own checker (Java `SchemaCompatibility`, run by Apicurio Registry) must agree with
/// every case on whether it is compatible, so the table is not only our own reading of the spec.
#[tokio::test(flavor = "multi_thread")]
async fn avro_cases_agree_with_avros_java_checker_in_apicurio() {
    let _deadline = sluice_tests::deadline();
    let disagreements = apicurio_disagreements("AVRO", avro_cases()).await;
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// The cases where Apicurio's verdict under BACKWARD or FORWARD is not ours.
pub(super) async fn apicurio_disagreements(schema_type: &str, cases: Vec<Case>) -> Vec<String> {
    let url = tokio::task::spawn_blocking(|| sluice_tests::Apicurio::shared().ccompat_url()).await.expect("apicurio");
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: String, body: Value| {
        let request = http
            .request(method, format!("{url}{path}"))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string());
        async move {
            let response = request.send().await.expect("apicurio answers");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() { body } else { json!({"failed": format!("{path}: {status} {body}")}) }
        }
    };
    let text = |schema: &Value| match schema {
        Value::String(s) => s.clone(),
        // Apicurio's JSON Schema checker reads drafts 4 to 7 only (2020-12 gets 500 "could not
        // determine version"); the keywords of these cases mean the same in draft 7.
        Value::Object(map) if schema_type == "JSON" => {
            let mut map = map.clone();
            map.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
            Value::Object(map).to_string()
        }
        other => other.to_string(),
    };
    let mut disagreements = Vec::new();
    for case in cases {
        let subject = sluice_tests::unique_name("compat");
        let old = json!({"schema": text(&case.old), "schemaType": schema_type});
        send(reqwest::Method::POST, format!("/subjects/{subject}/versions"), old).await;
        for (level, expect) in [("BACKWARD", case.backward), ("FORWARD", case.forward)] {
            send(reqwest::Method::PUT, format!("/config/{subject}"), json!({"compatibility": level})).await;
            let verdict = send(
                reqwest::Method::POST,
                format!("/compatibility/subjects/{subject}/versions/latest"),
                json!({"schema": text(&case.new), "schemaType": schema_type}),
            )
            .await;
            let ours = matches!(expect, Ok);
            if verdict["is_compatible"] != json!(ours) {
                disagreements.push(format!("{} under {level}: we say {ours}, Apicurio says {verdict}", case.name));
            }
        }
    }
    disagreements
}

#[test]
fn seed_changes_under_every_mode() {
    let (v1, v2) = (parse(SchemaType::Avro, &order_v1()), parse(SchemaType::Avro, &order_v2()));
    let earlier = [(1, v1.clone())];
    for mode in Mode::ALL {
        assert!(check(mode, &v2, &earlier).is_empty(), "v1 → v2 under {mode}");
    }
    let string_total = parse(SchemaType::Avro, &with_field_type(&order_v1(), "total_cents", json!("string")));
    for mode in Mode::ALL.into_iter().filter(|m| *m != Mode::None) {
        let findings = check(mode, &string_total, &earlier);
        assert!(findings.iter().any(|f| f.incompatibility.kind == "TYPE_MISMATCH"), "long → string under {mode}");
    }
}

#[test]
fn transitive_modes_check_every_earlier_version() {
    // v1 has b without default; v2 drops it; v3 adds it back without a default. v3 reads v2 data
    // badly (b missing), and v1 data fine.
    let a = field("a", json!("string"));
    let v1 = parse(SchemaType::Avro, &record(json!([a, field_default("b", json!("int"), json!(0))])));
    let v2 = parse(SchemaType::Avro, &record(json!([a])));
    let v3 = parse(SchemaType::Avro, &record(json!([a, field("c", json!("int"))])));
    let earlier = [(1, v1), (2, v2)];
    let only_latest = check(Mode::Backward, &v3, &earlier);
    assert_eq!(only_latest.iter().map(|f| f.version).collect::<Vec<_>>(), [2]);
    let all = check(Mode::BackwardTransitive, &v3, &earlier);
    assert_eq!(all.iter().map(|f| f.version).collect::<Vec<_>>(), [1, 2], "{all:#?}");
    assert_eq!(check(Mode::ForwardTransitive, &v3, &earlier), []);
    assert_eq!(check(Mode::FullTransitive, &v3, &earlier).len(), 2);
    assert!(check(Mode::Full, &v3, &earlier).iter().all(|f| f.version == 2));
}

fn object(properties: Value, required: &[&str], closed: bool) -> Value {
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
    });
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn json_schema_cases() -> Vec<Case> {
    let id = json!({"id": {"type": "string"}});
    let id_note = json!({"id": {"type": "string"}, "note": {"type": "string"}});
    let prop = |schema: Value| object(json!({"x": schema}), &[], true);
    let cases = [
        case("identical", object(id.clone(), &["id"], true), object(id.clone(), &["id"], true), Ok, Ok),
        case(
            "closed model: add an optional property",
            object(id.clone(), &["id"], true),
            object(id_note.clone(), &["id"], true),
            Ok,
            At("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "/properties"),
        ),
        case(
            "closed model: remove a property",
            object(id_note.clone(), &["id"], true),
            object(id.clone(), &["id"], true),
            At("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "/properties"),
            Ok,
        ),
        case(
            "open model: add a property",
            object(id.clone(), &["id"], false),
            object(id_note.clone(), &["id"], false),
            At("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "/properties/note"),
            Ok,
        ),
        case(
            "open model: remove a property",
            object(id_note.clone(), &["id"], false),
            object(id.clone(), &["id"], false),
            Ok,
            No("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
        ),
        case(
            "open model: add a property that accepts anything",
            object(id.clone(), &[], false),
            object(json!({"id": {"type": "string"}, "extra": {"description": "free-form"}}), &[], false),
            Ok,
            Ok,
        ),
        case(
            "require an optional property",
            object(id_note.clone(), &["id"], true),
            object(id_note.clone(), &["id", "note"], true),
            At("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "/required"),
            Ok,
        ),
        case(
            "make a required property optional",
            object(id_note.clone(), &["id", "note"], true),
            object(id_note.clone(), &["id"], true),
            Ok,
            No("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"),
        ),
        case(
            "integer to number",
            prop(json!({"type": "integer"})),
            prop(json!({"type": "number"})),
            Ok,
            At("TYPE_NARROWED", "/properties/x/type"),
        ),
        case(
            "string to integer",
            prop(json!({"type": "string"})),
            prop(json!({"type": "integer"})),
            No("TYPE_NARROWED"),
            No("TYPE_NARROWED"),
        ),
        case(
            "drop null from a type list",
            prop(json!({"type": ["string", "null"]})),
            prop(json!({"type": "string"})),
            No("TYPE_NARROWED"),
            Ok,
        ),
        case(
            "add a value to an enum",
            prop(json!({"enum": ["a", "b"]})),
            prop(json!({"enum": ["a", "b", "c"]})),
            Ok,
            No("ENUM_ARRAY_NARROWED"),
        ),
        case(
            "remove a value from an enum",
            prop(json!({"enum": ["a", "b"]})),
            prop(json!({"enum": ["a"]})),
            At("ENUM_ARRAY_NARROWED", "/properties/x/enum"),
            Ok,
        ),
        case(
            "add an enum to a string",
            prop(json!({"type": "string"})),
            prop(json!({"type": "string", "enum": ["a"]})),
            No("ENUM_ARRAY_NARROWED"),
            Ok,
        ),
        case(
            "lower maxLength",
            prop(json!({"type": "string", "maxLength": 10})),
            prop(json!({"type": "string", "maxLength": 5})),
            At("MAX_LENGTH_DECREASED", "/properties/x/maxLength"),
            Ok,
        ),
        case(
            "raise minimum",
            prop(json!({"type": "integer", "minimum": 0})),
            prop(json!({"type": "integer", "minimum": 1})),
            No("MINIMUM_INCREASED"),
            Ok,
        ),
        case(
            "raise maximum",
            prop(json!({"type": "integer", "maximum": 10})),
            prop(json!({"type": "integer", "maximum": 20})),
            Ok,
            No("MAXIMUM_DECREASED"),
        ),
        case(
            "add a pattern",
            prop(json!({"type": "string"})),
            prop(json!({"type": "string", "pattern": "^[a-z]+$"})),
            No("PATTERN_CHANGED"),
            Ok,
        ),
        case(
            "add a format",
            prop(json!({"type": "string"})),
            prop(json!({"type": "string", "format": "email"})),
            No("FORMAT_CHANGED"),
            Ok,
        ),
        case(
            "close an open model",
            object(id.clone(), &["id"], false),
            object(id.clone(), &["id"], true),
            At("ADDITIONAL_PROPERTIES_NARROWED", "/additionalProperties"),
            Ok,
        ),
        case(
            "narrow array items",
            prop(json!({"type": "array", "items": {"type": "number"}})),
            prop(json!({"type": "array", "items": {"type": "integer"}})),
            At("TYPE_NARROWED", "/properties/x/items/type"),
            Ok,
        ),
        case(
            "require a property of a nested object",
            prop(json!({"type": "object", "properties": {"zip": {"type": "string"}}})),
            prop(json!({"type": "object", "properties": {"zip": {"type": "string"}}, "required": ["zip"]})),
            At("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "/properties/x/required"),
            Ok,
        ),
        case(
            "require unique items",
            prop(json!({"type": "array"})),
            prop(json!({"type": "array", "uniqueItems": true})),
            No("UNIQUE_ITEMS_ADDED"),
            Ok,
        ),
        case(
            "raise minItems",
            prop(json!({"type": "array", "minItems": 0})),
            prop(json!({"type": "array", "minItems": 1})),
            No("MIN_ITEMS_INCREASED"),
            Ok,
        ),
        case(
            "add an anyOf branch",
            prop(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})),
            prop(json!({"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "integer"}]})),
            Ok,
            No("SUM_TYPE_NARROWED"),
        ),
        case(
            "narrow a type behind a local $ref",
            json!({"$defs": {"money": {"type": "number"}}, "type": "object", "properties": {"total": {"$ref": "#/$defs/money"}}}),
            json!({"$defs": {"money": {"type": "integer"}}, "type": "object", "properties": {"total": {"$ref": "#/$defs/money"}}}),
            At("TYPE_NARROWED", "/properties/total/type"),
            Ok,
        ),
        case(
            "tuple items: widen a position",
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
            json!({"type": "array", "items": [{"type": "string"}, {"type": "number"}]}),
            Ok,
            At("TYPE_NARROWED", "/items/1/type"),
        ),
        case(
            "tuple items: add a position the writer left open",
            json!({"type": "array", "items": [{"type": "string"}]}),
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
            At("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", "/items/1"),
            Ok,
        ),
        case(
            "tuple items: close the items after the tuple",
            json!({"type": "array", "items": [{"type": "string"}]}),
            json!({"type": "array", "items": [{"type": "string"}], "additionalItems": false}),
            At("ADDITIONAL_ITEMS_NARROWED", "/additionalItems"),
            Ok,
        ),
        case(
            "prefixItems: narrow a position",
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array", "prefixItems": [{"type": "number"}]}),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array", "prefixItems": [{"type": "integer"}]}),
            At("TYPE_NARROWED", "/items/0/type"),
            Ok,
        ),
        case(
            "boolean subschema: a property that took anything now takes strings",
            object(json!({"x": true}), &[], true),
            object(json!({"x": {"type": "string"}}), &[], true),
            At("TYPE_NARROWED", "/properties/x/type"),
            Ok,
        ),
        case(
            "boolean subschema: a property that took nothing now takes strings",
            object(json!({"x": false}), &[], true),
            object(json!({"x": {"type": "string"}}), &[], true),
            Ok,
            No("TYPE_NARROWED"),
        ),
        case("boolean root: true becomes an object", json!(true), json!({"type": "object"}), No("TYPE_NARROWED"), Ok),
        case(
            "not: forbid less",
            json!({"not": {"type": ["string", "null"]}}),
            json!({"not": {"type": "string"}}),
            Ok,
            At("NOT_TYPE_EXTENDED", "/not"),
        ),
        case(
            "patternProperties: a declared property the pattern covered",
            json!({"type": "object", "patternProperties": {"^s_": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"s_name": {"type": "string"}}, "patternProperties": {"^s_": {"type": "string"}}, "additionalProperties": false}),
            Ok,
            Ok,
        ),
        case(
            "patternProperties: narrow the pattern's schema",
            json!({"type": "object", "patternProperties": {"^n_": {"type": "number"}}}),
            json!({"type": "object", "patternProperties": {"^n_": {"type": "integer"}}}),
            At("TYPE_NARROWED", "/patternProperties/^n_/type"),
            Ok,
        ),
        case(
            "propertyNames: not compared, as Confluent's rules do not",
            json!({"type": "object"}),
            json!({"type": "object", "propertyNames": {"maxLength": 3}}),
            Ok,
            Ok,
        ),
        case(
            "draft-07 definitions widen",
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/definitions/n"}}}),
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"n": {"type": "number"}}, "properties": {"n": {"$ref": "#/definitions/n"}}}),
            Ok,
            No("TYPE_NARROWED"),
        ),
    ];
    cases.into()
}

#[test]
fn json_schema_evolution_cases() {
    let cases = json_schema_cases();
    assert!(cases.len() >= 20, "{} JSON Schema cases", cases.len());
    verify(SchemaType::Json, &cases);
}

/// Apicurio Registry's JSON Schema checker (its port of Confluent's rules) must agree with every
/// case on whether it is compatible, as Avro's does for the Avro table.
#[tokio::test(flavor = "multi_thread")]
async fn json_schema_cases_agree_with_apicurios_checker() {
    let _deadline = sluice_tests::deadline();
    // Where Apicurio 3.0.9 departs from Confluent's own rules, we follow Confluent's; each such
    // case must still be a disagreement, so a change on either side shows here.
    let known = [
        (
            "open model: add a property that accepts anything",
            "BACKWARD",
            "Confluent's JSON Schema diff lists PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL as compatible; \
             Apicurio refuses even an added {}",
        ),
        (
            "prefixItems: narrow a position",
            "BACKWARD",
            "Apicurio reads drafts 4 to 7 only, where prefixItems means nothing; Confluent compares it at /items/<i>",
        ),
        (
            "boolean root: true becomes an object",
            "BACKWARD",
            "Confluent's diff calls true → {\"type\": ...} TYPE_CHANGED (a TrueSchema is an EmptySchema); Apicurio's \
             port lets it pass",
        ),
        (
            "not: forbid less",
            "BACKWARD",
            "Confluent compares 'not' reversed (the old 'not' must read the new one: NOT_TYPE_NARROWED, compatible); \
             Apicurio's port compares it forwards",
        ),
        (
            "patternProperties: a declared property the pattern covered",
            "FORWARD",
            "Confluent judges a property the other side's pattern covers against that pattern \
             (PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL, compatible); Apicurio refuses it",
        ),
        (
            "propertyNames: not compared, as Confluent's rules do not",
            "BACKWARD",
            "Confluent's ObjectSchemaDiff never reads propertyNames; Apicurio's port refuses an added one",
        ),
    ];
    let known: Vec<(String, &str)> =
        known.iter().map(|(case, level, why)| (format!("{case} under {level}:"), *why)).collect();
    assert_only_known(apicurio_disagreements("JSON", json_schema_cases()).await, &known);
}

/// Every known disagreement (`"<case> under <LEVEL>:"`, why) must still occur, and no other.
pub(super) fn assert_only_known(disagreements: Vec<String>, known: &[(String, &str)]) {
    for (prefix, why) in known {
        assert!(disagreements.iter().any(|d| d.starts_with(prefix)), "no longer a disagreement ({why}): {prefix}");
    }
    let unexpected: Vec<String> =
        disagreements.into_iter().filter(|d| !known.iter().any(|(prefix, _)| d.starts_with(prefix))).collect();
    assert!(unexpected.is_empty(), "{} unexplained:\n{}", unexpected.len(), unexpected.join("\n"));
}

#[test]
fn a_changed_schema_type_is_incompatible() {
    let avro = parse(SchemaType::Avro, &json!({"type": "string"}));
    let json = parse(SchemaType::Json, &json!({"type": "string"}));
    assert_eq!(check(Mode::Backward, &json, &[(1, avro)])[0].incompatibility.kind, "SCHEMA_TYPE_CHANGED");
}

/// Avro records `L{k}a` and `L{k}b` for each level, both holding a union of the two records of
/// the level below; level 0's records hold a `leaf`. Each named type is defined where first used.
fn avro_union_ladder(levels: usize, leaf: &str) -> Value {
    fn refs(k: usize) -> Value {
        json!([format!("L{k}a"), format!("L{k}b")])
    }
    fn b(k: usize, leaf: &str) -> Value {
        let inner = if k == 0 { json!(leaf) } else { refs(k - 1) };
        json!({"type": "record", "name": format!("L{k}b"), "fields": [{"name": "v", "type": inner}]})
    }
    fn a(k: usize, leaf: &str) -> Value {
        let inner = if k == 0 { json!(leaf) } else { json!([a(k - 1, leaf), b(k - 1, leaf)]) };
        json!({"type": "record", "name": format!("L{k}a"), "fields": [{"name": "v", "type": inner}]})
    }
    json!({"type": "record", "name": "Top", "fields": [{"name": "v", "type": [a(levels, leaf), b(levels, leaf)]}]})
}

#[test]
fn hostile_avro_unions_end_within_the_budget() {
    let writer = parse(SchemaType::Avro, &avro_union_ladder(24, "int"));
    let reader = parse(SchemaType::Avro, &avro_union_ladder(24, "string"));
    let findings = super::pair(&reader, &writer);
    assert!(!findings.is_empty(), "int → string at the bottom is incompatible");
    // The same schema is compatible with itself however deep the ladder: branches already
    // compared are remembered, so the work grows with the schema, not exponentially.
    let same = super::pair(&writer, &writer);
    assert!(same.is_empty(), "{same:?}");
}

#[test]
fn hostile_json_schemas_end_within_the_budget() {
    // A chain of 5,000 references, each one level deeper: comparing it nests as deep as it is long.
    let chain = |leaf: &str| {
        let mut defs = serde_json::Map::new();
        for i in 0..5_000 {
            defs.insert(
                format!("d{i}"),
                json!({"type": "object", "properties": {"n": {"$ref": format!("#/$defs/d{}", i + 1)}}}),
            );
        }
        defs.insert("d5000".into(), json!({"type": leaf}));
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    };
    let findings = super::pair(&parse(SchemaType::Json, &chain("integer")), &parse(SchemaType::Json, &chain("string")));
    assert!(findings.iter().any(|f| f.kind == "COMPARISON_LIMIT_EXCEEDED"), "{findings:?}");

    // anyOf at every level, two branches each: exponential without a budget.
    let ladder = |leaf: &str| {
        let mut defs = serde_json::Map::new();
        for i in 0..40 {
            let next = json!({"$ref": format!("#/$defs/d{}", i + 1)});
            defs.insert(
                format!("d{i}"),
                json!({"anyOf": [{"type": "object", "properties": {"a": next}}, {"type": "object", "properties": {"b": next}}]}),
            );
        }
        defs.insert("d40".into(), json!({"type": leaf}));
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    };
    let findings =
        super::pair(&parse(SchemaType::Json, &ladder("integer")), &parse(SchemaType::Json, &ladder("string")));
    assert!(!findings.is_empty() && findings.iter().all(|f| f.kind != "COMPARISON_LIMIT_EXCEEDED"), "{findings:?}");
    let same = super::pair(&parse(SchemaType::Json, &ladder("string")), &parse(SchemaType::Json, &ladder("string")));
    assert!(same.is_empty(), "{same:?}");

    // A schema that is its own property, on both sides: compatible, and found so at once.
    let recursive = json!({"type": "object", "properties": {"next": {"$ref": "#"}, "v": {"type": "string"}}});
    let findings = super::pair(&parse(SchemaType::Json, &recursive), &parse(SchemaType::Json, &recursive));
    assert!(findings.is_empty(), "{findings:?}");

    // Thousands of patterns against thousands of properties: each pattern compiles once, a few
    // hundred at most, and every match is a step of the budget.
    let patterned = |n: usize| {
        let patterns: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("^p{i}_[a-z]+$"), json!({"type": "string"}))).collect();
        let properties: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("p{i}_x"), json!({"type": "string"}))).collect();
        json!({"type": "object", "patternProperties": patterns, "properties": properties, "additionalProperties": false})
    };
    let findings = super::pair(
        &parse(
            SchemaType::Json,
            &json!({"type": "object", "patternProperties": patterned(3_000)["patternProperties"].clone(), "additionalProperties": false}),
        ),
        &parse(SchemaType::Json, &patterned(3_000)),
    );
    assert!(findings.iter().any(|f| f.kind == "COMPARISON_LIMIT_EXCEEDED"), "{findings:?}");
    let few = super::pair(&parse(SchemaType::Json, &patterned(20)), &parse(SchemaType::Json, &patterned(20)));
    assert!(few.is_empty(), "{few:?}");
}
