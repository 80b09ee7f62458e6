//! JSON → Avro binary encoding, straight from the parsed JSON.
//!
//! A schema is compiled once (per schema id) into a flat table of [`Node`]s; encoding walks that
//! table and the parsed event ([`Json`], see `codec::json`) together and writes Avro bytes
//! directly. Going through
//! `apache_avro::types::Value` and `resolve` first costs about three times as much (see
//! `../shared/notes/measured-facts.md`), so `apache-avro` is only used to parse and check schemas.
//!
//! The JSON accepted is the JSON a person would write, not Avro's JSON encoding:
//! - a union takes the plain value (`null`, `"x"`, `{...}`), and the branch is chosen by the
//!   value's JSON type; the Avro-JSON wrapper form `{"string": "x"}` is also accepted;
//! - `timestamp-*` takes epoch units as an integer or an RFC 3339 string, `date` takes days or
//!   `YYYY-MM-DD`, `time-*` takes units or `HH:MM:SS[.fff]`, `uuid` a UUID string, `decimal` a
//!   number or (better, exact) a decimal string;
//! - `bytes` and `fixed` take a string whose code points are the byte values (as in Avro's JSON
//!   encoding);
//! - an absent field takes its default; a field the schema does not know is refused unless the
//!   caller asks to ignore unknown fields.

use std::collections::HashMap;
use std::fmt;

mod decode;

pub use decode::DecodeError;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, RecordSchema, UuidSchema};
use time::format_description::well_known::Rfc3339;

use super::json::{Json, Object, kind, member};
use time::macros::format_description;

type NodeId = usize;

/// The largest decimal `precision` (and so `scale`) a schema may declare. Java's `BigDecimal`
/// has no bound, but every value Sluice can encode fits in 128 bits (38 digits); the bound only
/// stops a hostile schema from making encoding and decoding allocate `scale` bytes.
pub const MAX_DECIMAL_PRECISION: usize = 1_000;
/// The largest `fixed` size a schema may declare: a record holding one would not fit in a
/// Kafka message (1 MiB by default) anyway.
pub const MAX_FIXED_SIZE: usize = 1 << 20;
/// How deep records, arrays and maps may nest in a decoded value: what `serde_json` (and so
/// every plugin and subscriber parsing the JSON) reads. Recursive schemas make any depth
/// possible on the wire; decoding refuses deeper values instead of exhausting the stack.
pub const MAX_NESTING: usize = 127;

/// A compiled Avro schema that encodes JSON values.
#[derive(Debug)]
pub struct AvroEncoder {
    nodes: Vec<Node>,
    root: NodeId,
    schema: Schema,
}

#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(NodeId),
    Map(NodeId),
    Union(Vec<NodeId>),
    Record(Record),
    Enum {
        name: String,
        symbols: Vec<String>,
    },
    Fixed {
        name: String,
        size: usize,
    },
    Date,
    TimeMillis,
    TimeMicros,
    Timestamp(TimeUnit),
    LocalTimestamp(TimeUnit),
    UuidString,
    UuidFixed,
    Decimal {
        precision: usize,
        scale: usize,
        fixed: Option<usize>,
    },
    /// Stands in for a named type while its own definition is being compiled (recursion).
    Pending,
}

#[derive(Debug, Clone, Copy)]
enum TimeUnit {
    Millis,
    Micros,
    Nanos,
}

#[derive(Debug)]
struct Record {
    name: String,
    fields: Vec<Field>,
    known: HashMap<String, usize>,
}

#[derive(Debug)]
struct Field {
    name: String,
    node: NodeId,
    /// The default, already encoded, written when the event leaves the field out.
    default: Option<Vec<u8>>,
}

/// Why a JSON value does not fit the schema, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// Path segments from the failing value up to the root (reversed while unwinding).
    path: Vec<Segment>,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl EncodeError {
    fn new(message: impl Into<String>) -> Self {
        Self { path: Vec::new(), message: message.into() }
    }

    fn at_key(mut self, key: &str) -> Self {
        self.path.push(Segment::Key(key.to_owned()));
        self
    }

    fn at_index(mut self, index: usize) -> Self {
        self.path.push(Segment::Index(index));
        self
    }

    /// The RFC 6901 JSON pointer of the offending value inside the event (`""` is the event).
    pub fn pointer(&self) -> String {
        let mut out = String::new();
        for segment in self.path.iter().rev() {
            out.push('/');
            match segment {
                Segment::Key(key) => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
                Segment::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    /// What is wrong with the value, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at '{}'", self.message, self.pointer())
    }
}

impl std::error::Error for EncodeError {}

/// Why a schema cannot be used for encoding.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("invalid Avro schema: {0}")]
    Parse(String),
    #[error("unsupported Avro schema: {0}")]
    Unsupported(String),
    #[error("the default of field '{field}' does not fit its type: {error}")]
    BadDefault { field: String, error: EncodeError },
    #[error("Avro schema outside Sluice's bounds: {0}")]
    Bounds(String),
}

/// Parses an Avro schema (and the schemas it references, dependencies first) with apache-avro.
///
/// apache-avro 0.22 panics on some invalid schemas instead of answering an error (found by the
/// `avro_schema` fuzz target: a field default on a `fixed` that carries `"fields"`); here that
/// is an invalid schema like any other, never a panic in a request or in a replica reading the
/// registry. The input is kept in `tests/fuzz/regressions/avro_schema/`.
pub fn parse_schema(text: &str, references: &[String]) -> Result<(Schema, Vec<Schema>), String> {
    let parsed = std::panic::catch_unwind(|| {
        if references.is_empty() {
            Schema::parse_str(text).map(|schema| (schema, Vec::new()))
        } else {
            Schema::parse_str_with_list(text, references)
        }
    });
    match parsed {
        Ok(Ok(parsed)) => Ok(parsed),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!("the schema cannot be parsed ({})", super::panic_message(&*panic))),
    }
}

/// Avro ≤ 1.11's rule, which Confluent's registry applied before 8.2: a union's default must be a
/// value of its first branch. Sluice accepts a default of any branch (as Avro 1.12 and Confluent
/// 8.2 do); `registry.strict_avro_defaults` asks for this older, stricter check. The error names
/// the field by its JSON pointer into the schema.
pub fn check_union_defaults_on_first_branch(text: &str) -> Result<(), String> {
    fn kind_matches(branch: &serde_json::Value, default: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        let name = match branch {
            V::String(name) => name.as_str(),
            V::Object(map) => map.get("type").and_then(V::as_str).unwrap_or_default(),
            _ => return true,
        };
        match name {
            "null" => default.is_null(),
            "boolean" => default.is_boolean(),
            "int" | "long" => default.is_i64() || default.is_u64(),
            "float" | "double" => default.is_number(),
            "string" | "bytes" | "enum" | "fixed" => default.is_string(),
            "array" => default.is_array(),
            "map" | "record" | "error" => default.is_object(),
            // A named type defined elsewhere: its kind is not known here.
            _ => !default.is_null(),
        }
    }
    fn walk(value: &serde_json::Value, pointer: &str, depth: usize) -> Result<(), String> {
        if depth > 256 {
            return Ok(());
        }
        match value {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::Array(branches)), Some(default)) = (map.get("type"), map.get("default"))
                    && let Some(first) = branches.first()
                    && !kind_matches(first, default)
                {
                    let name = map.get("name").and_then(serde_json::Value::as_str).unwrap_or_default();
                    return Err(format!(
                        "the default of field '{name}' (at {pointer}) is not a value of its union's first branch {first}; \
                         registry.strict_avro_defaults asks for that"
                    ));
                }
                for (key, child) in map {
                    walk(child, &format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")), depth + 1)?;
                }
                Ok(())
            }
            serde_json::Value::Array(items) => {
                items.iter().enumerate().try_for_each(|(i, child)| walk(child, &format!("{pointer}/{i}"), depth + 1))
            }
            _ => Ok(()),
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(schema) => walk(&schema, "", 0),
        Err(_) => Ok(()),
    }
}

fn check_fixed_size(size: usize) -> Result<usize, CompileError> {
    if size <= MAX_FIXED_SIZE {
        Ok(size)
    } else {
        Err(CompileError::Bounds(format!("fixed size {size} is larger than {MAX_FIXED_SIZE} bytes")))
    }
}

impl AvroEncoder {
    /// Parses and compiles an Avro schema given as JSON text.
    pub fn compile(schema_json: &str) -> Result<Self, CompileError> {
        Self::from_schema(parse_schema(schema_json, &[]).map_err(CompileError::Parse)?.0)
    }

    /// Parses and compiles a schema that uses named types defined in `references` (schema
    /// texts, dependencies first), as registered with Confluent schema references.
    pub fn compile_with_references(schema_json: &str, references: &[String]) -> Result<Self, CompileError> {
        if references.is_empty() {
            return Self::compile(schema_json);
        }
        let (schema, referenced) = parse_schema(schema_json, references).map_err(CompileError::Parse)?;
        let mut compiler = Compiler { nodes: Vec::new(), names: HashMap::new() };
        for dependency in &referenced {
            compiler.compile(dependency)?;
        }
        let root = compiler.compile(&schema)?;
        Ok(Self { nodes: compiler.nodes, root, schema })
    }

    /// Compiles an already-parsed schema.
    pub fn from_schema(schema: Schema) -> Result<Self, CompileError> {
        let mut compiler = Compiler { nodes: Vec::new(), names: HashMap::new() };
        let root = compiler.compile(&schema)?;
        Ok(Self { nodes: compiler.nodes, root, schema })
    }

    /// The parsed schema this encoder was compiled from.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Whether the schema is a bare `bytes` (a decimal on bytes included). Confluent's
    /// serializers (Java and Python) write such a value raw after the wire header, without
    /// Avro's length prefix, and their deserializers read it so: see [`super::Codec`].
    pub fn is_bytes(&self) -> bool {
        matches!(self.nodes[self.root], Node::Bytes | Node::Decimal { fixed: None, .. })
    }

    /// Appends the Avro binary encoding of `value` to `out`.
    ///
    /// On error, `out` may hold a partial encoding: callers discard the buffer.
    ///
    /// # Examples
    /// ```
    /// let enc = sluice::codec::avro::AvroEncoder::compile(
    ///     r#"{"type":"record","name":"A","fields":[{"name":"n","type":"long"}]}"#,
    /// ).unwrap();
    /// let mut out = Vec::new();
    /// enc.encode(&sluice::codec::json::parse(r#"{"n": 1}"#).unwrap(), true, &mut out).unwrap();
    /// assert_eq!(out, [2]);
    /// let err = enc.encode(&sluice::codec::json::parse(r#"{"n": "x"}"#).unwrap(), true, &mut out).unwrap_err();
    /// assert_eq!(err.pointer(), "/n");
    /// ```
    pub fn encode(&self, value: &Json<'_>, reject_unknown: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Encoder::new(&self.nodes, reject_unknown).encode(self.root, value, out)
    }
}

struct Compiler {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
}

impl Compiler {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Reserves a slot for a named type before compiling its body, so references inside the
    /// body (recursive types) resolve to it.
    fn reserve_named(&mut self, fullname: String) -> NodeId {
        let id = self.push(Node::Pending);
        self.names.insert(fullname, id);
        id
    }

    fn compile(&mut self, schema: &Schema) -> Result<NodeId, CompileError> {
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Date => Node::Date,
            Schema::TimeMillis => Node::TimeMillis,
            Schema::TimeMicros => Node::TimeMicros,
            Schema::TimestampMillis => Node::Timestamp(TimeUnit::Millis),
            Schema::TimestampMicros => Node::Timestamp(TimeUnit::Micros),
            Schema::TimestampNanos => Node::Timestamp(TimeUnit::Nanos),
            Schema::LocalTimestampMillis => Node::LocalTimestamp(TimeUnit::Millis),
            Schema::LocalTimestampMicros => Node::LocalTimestamp(TimeUnit::Micros),
            Schema::LocalTimestampNanos => Node::LocalTimestamp(TimeUnit::Nanos),
            Schema::Uuid(UuidSchema::String) => Node::UuidString,
            Schema::Uuid(UuidSchema::Bytes) => Node::Bytes,
            Schema::Uuid(UuidSchema::Fixed(fixed)) => {
                let id = self.reserve_named(fixed.name.fullname(None));
                self.nodes[id] = Node::UuidFixed;
                return Ok(id);
            }
            Schema::Decimal(decimal) => {
                let fixed = match &decimal.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(fixed) => Some(check_fixed_size(fixed.size)?),
                };
                if decimal.precision > MAX_DECIMAL_PRECISION || decimal.scale > decimal.precision {
                    return Err(CompileError::Bounds(format!(
                        "decimal precision {} and scale {}: precision must be at most {MAX_DECIMAL_PRECISION} and \
                         scale at most the precision",
                        decimal.precision, decimal.scale
                    )));
                }
                Node::Decimal { precision: decimal.precision, scale: decimal.scale, fixed }
            }
            Schema::BigDecimal => {
                return Err(CompileError::Unsupported("the big-decimal logical type".into()));
            }
            Schema::Duration(fixed) | Schema::Fixed(fixed) => {
                let size = check_fixed_size(fixed.size)?;
                let id = self.reserve_named(fixed.name.fullname(None));
                self.nodes[id] = Node::Fixed { name: fixed.name.fullname(None), size };
                return Ok(id);
            }
            Schema::Enum(e) => {
                let id = self.reserve_named(e.name.fullname(None));
                self.nodes[id] = Node::Enum { name: e.name.fullname(None), symbols: e.symbols.clone() };
                return Ok(id);
            }
            Schema::Array(array) => {
                let id = self.push(Node::Pending);
                let items = self.compile(&array.items)?;
                self.nodes[id] = Node::Array(items);
                return Ok(id);
            }
            Schema::Map(map) => {
                let id = self.push(Node::Pending);
                let values = self.compile(&map.types)?;
                self.nodes[id] = Node::Map(values);
                return Ok(id);
            }
            Schema::Union(union) => {
                let id = self.push(Node::Pending);
                let branches =
                    union.variants().iter().map(|variant| self.compile(variant)).collect::<Result<Vec<_>, _>>()?;
                self.nodes[id] = Node::Union(branches);
                return Ok(id);
            }
            Schema::Record(record) => return self.compile_record(record),
            Schema::Ref { name } => {
                let fullname = name.fullname(None);
                return self
                    .names
                    .get(&fullname)
                    .copied()
                    .ok_or_else(|| CompileError::Unsupported(format!("reference to unknown type '{fullname}'")));
            }
        };
        Ok(self.push(node))
    }

    fn compile_record(&mut self, record: &RecordSchema) -> Result<NodeId, CompileError> {
        let name = record.name.fullname(None);
        let id = self.reserve_named(name.clone());
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let node = self.compile(&field.schema)?;
            fields.push(Field { name: field.name.clone(), node, default: None });
        }
        let known = fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        self.nodes[id] = Node::Record(Record { name, fields, known });
        // Defaults are encoded once all types (including this record) are complete.
        for (i, field) in record.fields.iter().enumerate() {
            if let Some(default) = &field.default {
                let node = match &self.nodes[id] {
                    Node::Record(r) => r.fields[i].node,
                    _ => unreachable!("node {id} was just set to a record"),
                };
                let mut bytes = Vec::new();
                Encoder::new(&self.nodes, false)
                    .encode_default(node, &Json::from(default), &mut bytes)
                    .map_err(|error| CompileError::BadDefault { field: field.name.clone(), error })?;
                if let Node::Record(r) = &mut self.nodes[id] {
                    r.fields[i].default = Some(bytes);
                }
            }
        }
        Ok(id)
    }
}

struct Encoder<'a> {
    nodes: &'a [Node],
    reject_unknown: bool,
    /// Values visited so far. A union tries each branch its JSON type fits, so nested unions of
    /// look-alike records could otherwise take time exponential in the depth.
    steps: std::cell::Cell<usize>,
}

/// Values one event may take to encode, union retries included: a 1 MiB event has at most
/// ~500k values, so this is only reached by backtracking between look-alike union branches.
const MAX_ENCODE_STEPS: usize = 2_000_000;

impl<'a> Encoder<'a> {
    fn new(nodes: &'a [Node], reject_unknown: bool) -> Self {
        Self { nodes, reject_unknown, steps: std::cell::Cell::new(0) }
    }

    fn exhausted(&self) -> bool {
        self.steps.get() > MAX_ENCODE_STEPS
    }

    fn too_complex() -> EncodeError {
        EncodeError::new(format!(
            "the event takes more than {MAX_ENCODE_STEPS} steps to match the schema's unions; simplify the event \
             or name union branches with Avro's JSON wrapper ({{\"type name\": value}})"
        ))
    }

    /// A union's default describes its first branch (Avro ≤ 1.11) or, since Avro 1.12 and as
    /// Confluent's registry accepts it, any branch: the first branch it is a value of.
    fn encode_default(&self, id: NodeId, value: &Json<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match &self.nodes[id] {
            Node::Union(branches) => {
                let mut last_error = EncodeError::new("empty union has no default");
                for (index, branch) in branches.iter().enumerate() {
                    let start = out.len();
                    write_long(out, i64::try_from(index).unwrap_or(i64::MAX));
                    match self.encode(*branch, value, out) {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            out.truncate(start);
                            last_error = error;
                        }
                    }
                }
                Err(last_error)
            }
            _ => self.encode(id, value, out),
        }
    }

    fn encode(&self, id: NodeId, value: &Json<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.steps.set(self.steps.get() + 1);
        if self.exhausted() {
            return Err(Self::too_complex());
        }
        match &self.nodes[id] {
            Node::Null => match value {
                Json::Null => Ok(()),
                other => Err(expected("null", other)),
            },
            Node::Boolean => match value {
                Json::Bool(b) => {
                    out.push(u8::from(*b));
                    Ok(())
                }
                other => Err(expected("a boolean", other)),
            },
            Node::Int => {
                let n = integer(value, "an int")?;
                let n = i32::try_from(n).map_err(|_| EncodeError::new(format!("{n} is out of range for an int")))?;
                write_long(out, i64::from(n));
                Ok(())
            }
            Node::Long => {
                write_long(out, integer(value, "a long")?);
                Ok(())
            }
            Node::Float => {
                let n = number(value, "a float")?;
                if n.is_finite() && n.abs() > f64::from(f32::MAX) {
                    return Err(EncodeError::new(format!("{n} is out of range for a float")));
                }
                #[allow(clippy::cast_possible_truncation)] // range checked above
                out.extend_from_slice(&(n as f32).to_le_bytes());
                Ok(())
            }
            Node::Double => {
                out.extend_from_slice(&number(value, "a double")?.to_le_bytes());
                Ok(())
            }
            Node::String => {
                write_bytes(out, string(value, "a string")?.as_bytes());
                Ok(())
            }
            Node::Bytes => {
                let bytes = latin1_bytes(string(value, "a bytes string")?)?;
                write_bytes(out, &bytes);
                Ok(())
            }
            Node::Fixed { name, size } => {
                let bytes = latin1_bytes(string(value, "a fixed string")?)?;
                if bytes.len() != *size {
                    return Err(EncodeError::new(format!(
                        "fixed '{name}' needs exactly {size} bytes, got {}",
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
                Ok(())
            }
            Node::Enum { name, symbols } => {
                let symbol = string(value, "an enum symbol")?;
                let index = symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                    EncodeError::new(format!(
                        "'{symbol}' is not a symbol of enum '{name}' (one of: {})",
                        symbols.join(", ")
                    ))
                })?;
                write_long(out, index as i64);
                Ok(())
            }
            Node::Array(items) => {
                let Json::Array(values) = value else { return Err(expected("an array", value)) };
                if !values.is_empty() {
                    write_long(out, values.len() as i64);
                    for (i, item) in values.iter().enumerate() {
                        self.encode(*items, item, out).map_err(|e| e.at_index(i))?;
                    }
                }
                write_long(out, 0);
                Ok(())
            }
            Node::Map(values) => {
                let Json::Object(entries) = value else { return Err(expected("an object (map)", value)) };
                if !entries.is_empty() {
                    write_long(out, entries.len() as i64);
                    for (key, item) in entries.iter() {
                        write_bytes(out, key.as_bytes());
                        self.encode(*values, item, out).map_err(|e| e.at_key(key))?;
                    }
                }
                write_long(out, 0);
                Ok(())
            }
            Node::Record(record) => {
                let Json::Object(object) = value else {
                    return Err(expected(&format!("an object (record '{}')", record.name), value));
                };
                self.encode_record(record, object, out)
            }
            Node::Union(branches) => self.encode_union(branches, value, out),
            Node::Date => {
                let days = match value {
                    Json::Str(s) => {
                        let date = time::Date::parse(s, format_description!("[year]-[month]-[day]"))
                            .map_err(|e| EncodeError::new(format!("'{s}' is not a date (YYYY-MM-DD): {e}")))?;
                        i64::from(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
                    }
                    other => integer(other, "a date (days since 1970-01-01 or \"YYYY-MM-DD\")")?,
                };
                let days = i32::try_from(days).map_err(|_| EncodeError::new(format!("{days} days is out of range")))?;
                write_long(out, i64::from(days));
                Ok(())
            }
            Node::TimeMillis | Node::TimeMicros => {
                let micros = matches!(self.nodes[id], Node::TimeMicros);
                let units = match value {
                    Json::Str(s) => {
                        let t = time::Time::parse(
                            s,
                            format_description!("[hour]:[minute]:[second][optional [.[subsecond]]]"),
                        )
                        .map_err(|e| EncodeError::new(format!("'{s}' is not a time of day (HH:MM:SS[.fff]): {e}")))?;
                        let (h, m, sec, nanos) = t.as_hms_nano();
                        let total = (i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec)) * 1_000_000_000
                            + i64::from(nanos);
                        if micros { total / 1_000 } else { total / 1_000_000 }
                    }
                    other => integer(other, "a time of day")?,
                };
                if micros {
                    write_long(out, units);
                } else {
                    let ms = i32::try_from(units).map_err(|_| EncodeError::new(format!("{units} is out of range")))?;
                    write_long(out, i64::from(ms));
                }
                Ok(())
            }
            Node::Timestamp(unit) => {
                let n = match value {
                    Json::Str(s) => {
                        let t = time::OffsetDateTime::parse(s, &Rfc3339)
                            .map_err(|e| EncodeError::new(format!("'{s}' is not an RFC 3339 timestamp: {e}")))?;
                        unit.units_from_nanos(t.unix_timestamp_nanos())?
                    }
                    other => integer(other, unit.expected())?,
                };
                write_long(out, n);
                Ok(())
            }
            Node::LocalTimestamp(unit) => {
                let n = match value {
                    Json::Str(s) => {
                        let t = time::PrimitiveDateTime::parse(
                            s,
                            format_description!(
                                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                            ),
                        )
                        .map_err(|e| {
                            EncodeError::new(format!("'{s}' is not a local timestamp (YYYY-MM-DDTHH:MM:SS[.fff]): {e}"))
                        })?;
                        unit.units_from_nanos(t.assume_utc().unix_timestamp_nanos())?
                    }
                    other => integer(other, unit.expected())?,
                };
                write_long(out, n);
                Ok(())
            }
            Node::UuidString => {
                let s = string(value, "a UUID string")?;
                let uuid =
                    uuid::Uuid::parse_str(s).map_err(|e| EncodeError::new(format!("'{s}' is not a UUID: {e}")))?;
                write_bytes(out, uuid.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes());
                Ok(())
            }
            Node::UuidFixed => {
                let s = string(value, "a UUID string")?;
                let uuid =
                    uuid::Uuid::parse_str(s).map_err(|e| EncodeError::new(format!("'{s}' is not a UUID: {e}")))?;
                out.extend_from_slice(uuid.as_bytes());
                Ok(())
            }
            Node::Decimal { precision, scale, fixed } => {
                let text = match value {
                    Json::Str(s) => s.to_string(),
                    Json::Number(n) => serde_json::Number::from(*n).to_string(),
                    other => return Err(expected("a decimal (string or number)", other)),
                };
                let unscaled = unscaled_decimal(&text, *precision, *scale)?;
                let bytes = twos_complement(unscaled, *fixed)?;
                match fixed {
                    Some(_) => out.extend_from_slice(&bytes),
                    None => write_bytes(out, &bytes),
                }
                Ok(())
            }
            Node::Pending => Err(EncodeError::new("schema type is not fully defined")),
        }
    }

    fn encode_record(&self, record: &Record, object: &Object<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut present = 0;
        for field in &record.fields {
            match member(object, &field.name) {
                Some(value) => {
                    present += 1;
                    self.encode(field.node, value, out).map_err(|e| e.at_key(&field.name))?;
                }
                None => match &field.default {
                    Some(default) => out.extend_from_slice(default),
                    None => {
                        return Err(EncodeError::new(format!(
                            "required field '{}' of record '{}' is missing",
                            field.name, record.name
                        ))
                        .at_key(&field.name));
                    }
                },
            }
        }
        // More members than fields found: an unknown key (or a repeated one, which is not).
        if self.reject_unknown
            && present < object.len()
            && let Some(unknown) = object.keys().find(|k| !record.known.contains_key(*k))
        {
            return Err(EncodeError::new(format!("record '{}' has no field '{unknown}'", record.name)).at_key(unknown));
        }
        Ok(())
    }

    fn encode_union(&self, branches: &[NodeId], value: &Json<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let candidates: Vec<(usize, NodeId)> =
            branches.iter().copied().enumerate().filter(|(_, b)| self.accepts_kind(*b, value)).collect();
        let mut last_error = None;
        for &(index, branch) in &candidates {
            write_long(out, index as i64);
            match self.encode(branch, value, out) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    out.truncate(start);
                    last_error = Some(e);
                }
            }
        }
        if self.exhausted() {
            return Err(Self::too_complex());
        }
        // Avro's own JSON encoding wraps union values: {"string": "x"} or {"com.acme.Type": {...}}.
        if let Json::Object(object) = value
            && object.len() == 1
            && let Some((name, inner)) = object.iter().next()
            && let Some(index) = branches.iter().position(|b| self.type_name(*b) == name)
        {
            write_long(out, index as i64);
            return self.encode(branches[index], inner, out).map_err(|e| e.at_key(name));
        }
        match (candidates.len(), last_error) {
            (1, Some(e)) => Err(e),
            _ => {
                let names: Vec<String> = branches.iter().map(|b| self.type_name(*b)).collect();
                Err(EncodeError::new(format!(
                    "{} matches none of the union's branches [{}]",
                    kind(value),
                    names.join(", ")
                )))
            }
        }
    }

    /// Whether a branch could take a value of this JSON type (the cheap pre-filter for unions).
    fn accepts_kind(&self, id: NodeId, value: &Json<'_>) -> bool {
        matches!(
            (&self.nodes[id], value),
            (Node::Null, Json::Null)
                | (Node::Boolean, Json::Bool(_))
                | (
                    Node::Int
                        | Node::Long
                        | Node::Float
                        | Node::Double
                        | Node::Date
                        | Node::TimeMillis
                        | Node::TimeMicros
                        | Node::Timestamp(_)
                        | Node::LocalTimestamp(_)
                        | Node::Decimal { .. },
                    Json::Number(_),
                )
                | (
                    Node::String
                        | Node::Bytes
                        | Node::Fixed { .. }
                        | Node::Enum { .. }
                        | Node::Date
                        | Node::TimeMillis
                        | Node::TimeMicros
                        | Node::Timestamp(_)
                        | Node::LocalTimestamp(_)
                        | Node::UuidString
                        | Node::UuidFixed
                        | Node::Decimal { .. },
                    Json::Str(_),
                )
                | (Node::Array(_), Json::Array(_))
                | (Node::Record(_) | Node::Map(_), Json::Object(_))
        )
    }

    /// The name a union branch goes by in Avro's JSON encoding and in error messages.
    fn type_name(&self, id: NodeId) -> String {
        match &self.nodes[id] {
            Node::Null => "null".into(),
            Node::Boolean => "boolean".into(),
            Node::Int | Node::Date | Node::TimeMillis => "int".into(),
            Node::Long | Node::TimeMicros | Node::Timestamp(_) | Node::LocalTimestamp(_) => "long".into(),
            Node::Float => "float".into(),
            Node::Double => "double".into(),
            Node::Bytes | Node::Decimal { fixed: None, .. } => "bytes".into(),
            Node::String | Node::UuidString => "string".into(),
            Node::Array(_) => "array".into(),
            Node::Map(_) => "map".into(),
            Node::Union(_) => "union".into(),
            Node::Record(r) => r.name.clone(),
            Node::Enum { name, .. } | Node::Fixed { name, .. } => name.clone(),
            Node::UuidFixed | Node::Decimal { fixed: Some(_), .. } => "fixed".into(),
            Node::Pending => "?".into(),
        }
    }
}

/// Julian day number of 1970-01-01, to turn dates into days since the Unix epoch.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

impl TimeUnit {
    fn units_from_nanos(self, nanos: i128) -> Result<i64, EncodeError> {
        let n = match self {
            TimeUnit::Millis => nanos.div_euclid(1_000_000),
            TimeUnit::Micros => nanos.div_euclid(1_000),
            TimeUnit::Nanos => nanos,
        };
        i64::try_from(n).map_err(|_| EncodeError::new("timestamp is out of range"))
    }

    fn expected(self) -> &'static str {
        match self {
            TimeUnit::Millis => "a timestamp (epoch milliseconds or an RFC 3339 string)",
            TimeUnit::Micros => "a timestamp (epoch microseconds or an RFC 3339 string)",
            TimeUnit::Nanos => "a timestamp (epoch nanoseconds or an RFC 3339 string)",
        }
    }
}

fn expected(what: &str, got: &Json<'_>) -> EncodeError {
    EncodeError::new(format!("expected {what}, got {}", kind(got)))
}

fn integer(value: &Json<'_>, what: &str) -> Result<i64, EncodeError> {
    match value {
        Json::Number(n) => n.as_i64().ok_or_else(|| {
            if n.is_u64() {
                EncodeError::new(format!("{n} is out of range for {what}"))
            } else {
                EncodeError::new(format!("expected {what}, got the non-integer {n}"))
            }
        }),
        other => Err(expected(what, other)),
    }
}

fn number(value: &Json<'_>, what: &str) -> Result<f64, EncodeError> {
    match value {
        Json::Number(n) => n.as_f64().ok_or_else(|| EncodeError::new(format!("{n} is not representable as {what}"))),
        other => Err(expected(what, other)),
    }
}

fn string<'v>(value: &'v Json<'_>, what: &str) -> Result<&'v str, EncodeError> {
    match value {
        Json::Str(s) => Ok(s),
        other => Err(expected(what, other)),
    }
}

/// Avro's JSON encoding writes bytes as a string of code points U+0000..U+00FF.
fn latin1_bytes(s: &str) -> Result<Vec<u8>, EncodeError> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                EncodeError::new(format!("character {c:?} is not a byte (bytes are code points U+0000..U+00FF)"))
            })
        })
        .collect()
}

/// Zig-zag variable-length encoding, used for Avro `int` and `long`.
pub(crate) fn write_long(out: &mut Vec<u8>, n: i64) {
    #[allow(clippy::cast_sign_loss)] // zig-zag maps the sign into the low bit
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        #[allow(clippy::cast_possible_truncation)]
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(z as u8);
}

/// How many bytes the zig-zag varint at the start of `bytes` takes.
pub(crate) fn long_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|b| b & 0x80 == 0).map_or(bytes.len(), |i| i + 1)
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// Parses a decimal string into its unscaled integer for the given scale, checking precision.
fn unscaled_decimal(text: &str, precision: usize, scale: usize) -> Result<i128, EncodeError> {
    let bad = || EncodeError::new(format!("'{text}' is not a decimal number"));
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.contains(['e', 'E']) {
        return Err(EncodeError::new(format!("'{text}': write decimals without an exponent")));
    }
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() || !(whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale {
        return Err(EncodeError::new(format!("'{text}' has more than {scale} digits after the point")));
    }
    let mut all = String::with_capacity(whole.len() + scale);
    all.push_str(whole);
    all.push_str(fraction);
    all.extend(std::iter::repeat_n('0', scale - fraction.len()));
    let significant = all.trim_start_matches('0');
    if significant.len() > precision {
        return Err(EncodeError::new(format!("'{text}' has more than {precision} significant digits")));
    }
    let magnitude: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| EncodeError::new(format!("'{text}' is too large")))?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Big-endian two's complement: minimal length for `bytes`, sign-extended to the size for `fixed`.
fn twos_complement(n: i128, fixed: Option<usize>) -> Result<Vec<u8>, EncodeError> {
    let full = n.to_be_bytes();
    let sign = if n < 0 { 0xff } else { 0 };
    // Drop leading sign bytes while the next byte still carries the sign bit.
    let mut start = 0;
    while start < full.len() - 1 && full[start] == sign && (full[start + 1] & 0x80) == (sign & 0x80) {
        start += 1;
    }
    let minimal = &full[start..];
    match fixed {
        None => Ok(minimal.to_vec()),
        Some(size) if minimal.len() <= size => {
            let mut out = vec![sign; size - minimal.len()];
            out.extend_from_slice(minimal);
            Ok(out)
        }
        Some(size) => Err(EncodeError::new(format!("decimal does not fit in {size} bytes"))),
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value as Avro;
    use serde_json::{Value, json};

    use super::*;

    fn encode(schema: &str, value: Value) -> Result<Vec<u8>, EncodeError> {
        let encoder = AvroEncoder::compile(schema).expect("schema compiles");
        let mut out = Vec::new();
        encoder.encode(&Json::from(&value), true, &mut out).map(|()| out)
    }

    /// Decodes with apache-avro, an independent implementation, to check our bytes.
    fn decode(schema: &str, bytes: &[u8]) -> Avro {
        let schema = Schema::parse_str(schema).expect("schema parses");
        let mut reader = bytes;
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .expect("reader")
            .read_value(&mut reader)
            .expect("decodes");
        assert!(reader.is_empty(), "all bytes consumed");
        value
    }

    const ORDER: &str = r#"{
        "type": "record", "name": "OrderPlaced", "namespace": "shop",
        "fields": [
            {"name": "order_id", "type": "string"},
            {"name": "total_cents", "type": "long"},
            {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD"]}},
            {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "note", "type": ["null", "string"], "default": null},
            {"name": "shipping", "type": "string", "default": "standard"},
            {"name": "items", "type": {"type": "array", "items": {
                "type": "record", "name": "Item", "fields": [
                    {"name": "sku", "type": "string"},
                    {"name": "qty", "type": "int", "default": 1}
                ]}}, "default": []},
            {"name": "attrs", "type": {"type": "map", "values": "string"}, "default": {}}
        ]
    }"#;

    #[test]
    fn a_union_default_of_a_later_branch_is_accepted_and_encoded_in_that_branch() {
        let schema = r#"{"type": "record", "name": "R", "fields": [
            {"name": "channel", "type": ["null", "string"], "default": "web"}]}"#;
        let bytes = encode(schema, json!({})).expect("the default fills the missing field");
        assert_eq!(
            decode(schema, &bytes),
            Avro::Record(vec![("channel".into(), Avro::Union(1, Box::new(Avro::String("web".into()))))])
        );
        let error = check_union_defaults_on_first_branch(schema).unwrap_err();
        assert!(error.contains("'channel'") && error.contains("/fields/0"), "{error}");
        assert!(check_union_defaults_on_first_branch(ORDER).is_ok(), "null defaults of [null, …] unions pass");
    }

    #[test]
    fn encodes_a_nested_record_that_apache_avro_decodes() {
        let bytes = encode(
            ORDER,
            json!({
                "order_id": "o-1", "total_cents": 1999, "currency": "USD",
                "placed_at": "2026-11-27T10:00:00.123Z", "note": "gift",
                "items": [{"sku": "a", "qty": 2}, {"sku": "b"}], "attrs": {"k": "v"}
            }),
        )
        .unwrap();
        let Avro::Record(fields) = decode(ORDER, &bytes) else { panic!("a record") };
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("order_id"), Avro::String("o-1".into()));
        assert_eq!(get("total_cents"), Avro::Long(1999));
        assert_eq!(get("currency"), Avro::Enum(1, "USD".into()));
        assert_eq!(get("placed_at"), Avro::TimestampMillis(1_795_773_600_123));
        assert_eq!(get("note"), Avro::Union(1, Box::new(Avro::String("gift".into()))));
        assert_eq!(get("shipping"), Avro::String("standard".into()));
        let Avro::Array(items) = get("items") else { panic!("an array") };
        assert_eq!(
            items[1],
            Avro::Record(vec![("sku".into(), Avro::String("b".into())), ("qty".into(), Avro::Int(1))])
        );
    }

    #[test]
    fn absent_fields_take_their_defaults() {
        let bytes =
            encode(ORDER, json!({"order_id": "o", "total_cents": 1, "currency": "EUR", "placed_at": 5})).unwrap();
        let Avro::Record(fields) = decode(ORDER, &bytes) else { panic!("a record") };
        assert_eq!(fields[4].1, Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(fields[5].1, Avro::String("standard".into()));
        assert_eq!(fields[6].1, Avro::Array(vec![]));
        assert_eq!(fields[7].1, Avro::Map(Default::default()));
    }

    #[test]
    fn errors_point_at_the_offending_value() {
        let base = json!({"order_id": "o", "total_cents": 1, "currency": "EUR", "placed_at": 5});
        let cases = [
            ("/total_cents", json!({"total_cents": "12"}), "expected a long, got a string"),
            ("/currency", json!({"currency": "GBP"}), "'GBP' is not a symbol of enum 'shop.Currency'"),
            ("/items/1/qty", json!({"items": [{"sku": "a"}, {"sku": "b", "qty": 1.5}]}), "non-integer 1.5"),
            ("/items/0/sku", json!({"items": [{}]}), "required field 'sku' of record 'shop.Item' is missing"),
            ("/note", json!({"note": 3}), "a number matches none of the union's branches [null, string]"),
            ("/placed_at", json!({"placed_at": "yesterday"}), "is not an RFC 3339 timestamp"),
            ("/attrs/a~1b", json!({"attrs": {"a/b": 1}}), "expected a string, got a number"),
            ("/colour", json!({"colour": "red"}), "record 'shop.OrderPlaced' has no field 'colour'"),
        ];
        for (pointer, patch, message) in cases {
            let mut event = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                event[k] = v.clone();
            }
            let err = encode(ORDER, event).unwrap_err();
            assert_eq!(err.pointer(), pointer, "{err}");
            assert!(err.message().contains(message), "{pointer}: {err}");
        }
        let err = encode(ORDER, json!({"order_id": "o"})).unwrap_err();
        assert_eq!(err.pointer(), "/total_cents");
        let err = encode(ORDER, json!([1])).unwrap_err();
        assert_eq!(
            (err.pointer().as_str(), err.message()),
            ("", "expected an object (record 'shop.OrderPlaced'), got an array")
        );
    }

    #[test]
    fn unknown_fields_can_be_ignored() {
        let encoder =
            AvroEncoder::compile(r#"{"type":"record","name":"A","fields":[{"name":"a","type":"int"}]}"#).unwrap();
        let mut out = Vec::new();
        encoder.encode(&Json::from(&json!({"a": 1, "b": 2})), false, &mut out).unwrap();
        assert_eq!(out, [2]);
    }

    #[test]
    fn logical_types_accept_natural_json() {
        let schema = r#"{"type":"record","name":"L","fields":[
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"lt","type":{"type":"long","logicalType":"local-timestamp-millis"}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"fx","type":{"type":"fixed","name":"F","size":4,"logicalType":"decimal","precision":8,"scale":1}}
        ]}"#;
        let bytes = encode(
            schema,
            json!({"d": "1970-01-11", "tm": "00:00:01.5", "us": "1970-01-01T00:00:01Z", "lt": "1970-01-01T00:00:02",
                   "id": "67E55044-10B1-426F-9247-BB680E5FE0C8", "amount": "-1.5", "fx": 12.3}),
        )
        .unwrap();
        let Avro::Record(fields) = decode(schema, &bytes) else { panic!("a record") };
        assert_eq!(fields[0].1, Avro::Date(10));
        assert_eq!(fields[1].1, Avro::TimeMillis(1500));
        assert_eq!(fields[2].1, Avro::TimestampMicros(1_000_000));
        assert_eq!(fields[3].1, Avro::LocalTimestampMillis(2000));
        assert_eq!(fields[4].1, Avro::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap()));
        let Avro::Decimal(amount) = &fields[5].1 else { panic!("a decimal") };
        assert_eq!(Vec::<u8>::try_from(amount.clone()).unwrap(), [0xff, 0x6a]); // -150
        let Avro::Decimal(fx) = &fields[6].1 else { panic!("a decimal") };
        assert_eq!(Vec::<u8>::try_from(fx.clone()).unwrap(), [0, 0, 0, 123]);
        let err = encode(schema, json!({"d": 0, "tm": 0, "us": 0, "lt": 0, "id": "nope", "amount": "1", "fx": 1}))
            .unwrap_err();
        assert_eq!(err.pointer(), "/id");
        let err = encode(schema, json!({"d": 0, "tm": 0, "us": 0, "lt": 0, "id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "amount": "1.234", "fx": 1})).unwrap_err();
        assert_eq!(
            (err.pointer().as_str(), err.message()),
            ("/amount", "'1.234' has more than 2 digits after the point")
        );
    }

    #[test]
    fn unions_pick_the_branch_by_json_type_or_avro_json_wrapper() {
        let schema = r#"["null","long","string",{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}]"#;
        assert_eq!(decode(schema, &encode(schema, json!(null)).unwrap()), Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(decode(schema, &encode(schema, json!(7)).unwrap()), Avro::Union(1, Box::new(Avro::Long(7))));
        assert_eq!(
            decode(schema, &encode(schema, json!("s")).unwrap()),
            Avro::Union(2, Box::new(Avro::String("s".into())))
        );
        assert_eq!(
            decode(schema, &encode(schema, json!({"string": "w"})).unwrap()),
            Avro::Union(2, Box::new(Avro::String("w".into())))
        );
        assert_eq!(
            decode(schema, &encode(schema, json!({"x": 1})).unwrap()),
            Avro::Union(3, Box::new(Avro::Record(vec![("x".into(), Avro::Int(1))])))
        );
        let err = encode(schema, json!({"x": "no"})).unwrap_err();
        assert_eq!(err.pointer(), "/x");
    }

    #[test]
    fn recursive_types_compile_and_encode() {
        let schema = r#"{"type":"record","name":"Node","namespace":"t","fields":[
            {"name":"v","type":"int"},{"name":"next","type":["null","Node"],"default":null}]}"#;
        let bytes = encode(schema, json!({"v": 1, "next": {"v": 2}})).unwrap();
        assert_eq!(bytes, [2, 2, 4, 0]);
        decode(schema, &bytes);
    }

    #[test]
    fn zigzag_matches_the_spec_examples() {
        for (n, expected) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 1]),
            (i64::MIN, vec![0xff; 9].into_iter().chain([1]).collect()),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, n);
            assert_eq!(out, expected, "{n}");
        }
    }

    #[test]
    fn bad_defaults_are_refused_at_compile_time() {
        let err =
            AvroEncoder::compile(r#"{"type":"record","name":"A","fields":[{"name":"a","type":"int","default":"x"}]}"#);
        assert!(err.is_err());
    }

    #[test]
    fn hostile_decimal_and_fixed_sizes_are_refused_at_compile_time() {
        let decimal = |precision: u64, scale: u64| {
            format!(
                r#"{{"type":"record","name":"D","fields":[{{"name":"d","type":{{"type":"bytes","logicalType":"decimal","precision":{precision},"scale":{scale}}}}}]}}"#
            )
        };
        for (precision, scale) in [(1_000_000_000_000_000, 1_000_000_000_000_000), (1001, 2)] {
            let error = AvroEncoder::compile(&decimal(precision, scale)).map(|_| ()).unwrap_err();
            assert!(matches!(error, CompileError::Bounds(_)), "{precision}/{scale}: {error}");
        }
        // A scale above the precision is an invalid logical type, which Avro ignores: plain bytes.
        let bytes = encode(&decimal(10, 11), json!({"d": "\u{1}"})).unwrap();
        assert_eq!(bytes, [2, 1]);
        assert!(AvroEncoder::compile(&decimal(1000, 1000)).is_ok());
        let fixed = |size: usize| format!(r#"{{"type":"fixed","name":"F","size":{size}}}"#);
        assert!(matches!(AvroEncoder::compile(&fixed(MAX_FIXED_SIZE + 1)), Err(CompileError::Bounds(_))));
        assert!(AvroEncoder::compile(&fixed(MAX_FIXED_SIZE)).is_ok());
        let fixed_decimal = format!(
            r#"{{"type":"fixed","name":"F","size":{},"logicalType":"decimal","precision":4,"scale":2}}"#,
            1u64 << 50
        );
        assert!(AvroEncoder::compile(&fixed_decimal).is_err());
    }

    #[test]
    fn the_widest_decimal_encodes_and_decodes_without_huge_buffers() {
        let schema = r#"{"type":"bytes","logicalType":"decimal","precision":1000,"scale":1000}"#;
        let bytes = encode(schema, json!("0")).unwrap();
        let encoder = AvroEncoder::compile(schema).unwrap();
        let mut out = Vec::new();
        encoder.decode_to_json(&bytes, &mut out).unwrap();
        assert_eq!(out, format!("\"0.{}\"", "0".repeat(1000)).into_bytes());
        let error = encode(schema, json!("0.5")).unwrap_err();
        assert!(error.message().contains("too large"), "5 × 10^999 does not fit 128 bits: {error}");
    }

    #[test]
    fn look_alike_union_branches_cannot_take_exponential_time() {
        let schema = r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null",
            {"type":"record","name":"A","fields":[{"name":"next","type":["null","A",
                {"type":"record","name":"B","fields":[{"name":"next","type":["null","A","B"]}]}]}]},
            "B"]}]}"#;
        let mut value = json!({"next": 5});
        for _ in 0..60 {
            value = json!({ "next": value });
        }
        let error = encode(schema, json!({ "a": value })).unwrap_err();
        assert!(error.message().contains("steps"), "{error}");
    }
}
