//! Random Avro schemas with a value of each, for differential tests against other Avro
//! implementations (apache-avro in Rust, fastavro and Confluent's serializer in Python).
//!
//! Each [`Case`] holds the schema, the value as apache-avro's [`Value`] and the same value in
//! the natural JSON Sluice takes and gives (unions as plain values, enums as symbols, `bytes`
//! and `fixed` as strings of code points U+0000..U+00FF, `date` as `YYYY-MM-DD`, decimals as
//! strings, timestamps as numbers). A union never has two branches of the same JSON kind, so
//! the natural form names its branch unambiguously (nor two of the same underlying kind, so that
//! the raw values other implementations read do too). Generation is seeded: a failure names its
//! seed and case, and reruns the same.

use apache_avro::types::Value;
use serde_json::{Value as Json, json};

/// One schema and one value of it.
#[derive(Debug, Clone)]
pub struct Case {
    /// The schema as JSON text.
    pub schema: String,
    pub value: Value,
    /// The value in Sluice's natural JSON.
    pub json: Json,
}

/// `count` cases from `seed`.
pub fn cases(seed: u64, count: usize) -> Vec<Case> {
    let mut generator = Generator { state: seed, names: 0 };
    (0..count)
        .map(|_| {
            let (schema, shape) = generator.schema(0);
            let (value, json) = generator.value(&shape);
            Case { schema: schema.to_string(), value, json }
        })
        .collect()
}

/// What a generated schema is, for generating its values.
#[derive(Debug, Clone)]
enum Shape {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Enum(Vec<String>),
    Fixed(usize),
    Date,
    TimestampMillis,
    TimeMicros,
    Uuid,
    Decimal { precision: u32, scale: u32 },
    Array(Box<Shape>),
    Map(Box<Shape>),
    Record(Vec<(String, Shape)>),
    Union(Vec<Shape>),
}

/// The JSON kind a shape's values have, which picks a union branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Shape {
    fn kind(&self) -> Kind {
        match self {
            Shape::Null => Kind::Null,
            Shape::Boolean => Kind::Boolean,
            Shape::Int | Shape::Long | Shape::Float | Shape::Double | Shape::TimestampMillis | Shape::TimeMicros => {
                Kind::Number
            }
            Shape::Bytes
            | Shape::String
            | Shape::Enum(_)
            | Shape::Fixed(_)
            | Shape::Date
            | Shape::Uuid
            | Shape::Decimal { .. } => Kind::String,
            Shape::Array(_) => Kind::Array,
            Shape::Map(_) | Shape::Record(_) => Kind::Object,
            Shape::Union(_) => unreachable!("unions do not nest"),
        }
    }

    /// The kind of the underlying Avro type (a `date` is an `int`), which other implementations
    /// pick a union branch by when they see the raw value.
    fn raw_kind(&self) -> Kind {
        match self {
            Shape::Date => Kind::Number,
            other => other.kind(),
        }
    }
}

struct Generator {
    state: u64,
    names: usize,
}

impl Generator {
    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    fn schema(&mut self, depth: usize) -> (Json, Shape) {
        let leaf = depth >= 3;
        match self.below(if leaf { 15 } else { 19 }) {
            0 => (json!("null"), Shape::Null),
            1 => (json!("boolean"), Shape::Boolean),
            2 => (json!("int"), Shape::Int),
            3 => (json!("long"), Shape::Long),
            4 => (json!("float"), Shape::Float),
            5 => (json!("double"), Shape::Double),
            6 => (json!("bytes"), Shape::Bytes),
            7 => (json!("string"), Shape::String),
            8 => {
                let symbols: Vec<String> = (0..1 + self.below(4)).map(|i| format!("S{i}")).collect();
                (json!({"type": "enum", "name": self.name("E"), "symbols": symbols}), Shape::Enum(symbols))
            }
            9 => {
                let size = self.below(9);
                (json!({"type": "fixed", "name": self.name("F"), "size": size}), Shape::Fixed(size))
            }
            10 => (json!({"type": "int", "logicalType": "date"}), Shape::Date),
            11 => (json!({"type": "long", "logicalType": "timestamp-millis"}), Shape::TimestampMillis),
            12 => (json!({"type": "long", "logicalType": "time-micros"}), Shape::TimeMicros),
            13 => (json!({"type": "string", "logicalType": "uuid"}), Shape::Uuid),
            14 => {
                let precision = 1 + u32::try_from(self.below(18)).unwrap_or(0);
                let scale = u32::try_from(self.below(precision as usize + 1)).unwrap_or(0);
                // Half of them in a `fixed`, of 8 bytes (enough for 18 digits) up to 32: writers
                // sign-extend a value to the size, so over 16 bytes a reader holding 128 bits
                // must see that the extra bytes carry no digits.
                let schema = if self.below(2) == 0 {
                    json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
                } else {
                    let size = [8, 12, 16, 24, 32][self.below(5)];
                    json!({"type": "fixed", "name": self.name("D"), "size": size, "logicalType": "decimal",
                           "precision": precision, "scale": scale})
                };
                (schema, Shape::Decimal { precision, scale })
            }
            15 => {
                let (items, shape) = self.schema(depth + 1);
                (json!({"type": "array", "items": items}), Shape::Array(Box::new(shape)))
            }
            16 => {
                let (values, shape) = self.schema(depth + 1);
                (json!({"type": "map", "values": values}), Shape::Map(Box::new(shape)))
            }
            17 => {
                let mut fields = Vec::new();
                let mut shapes = Vec::new();
                for i in 0..self.below(5) {
                    let (schema, shape) = self.schema(depth + 1);
                    fields.push(json!({"name": format!("f{i}"), "type": schema}));
                    shapes.push((format!("f{i}"), shape));
                }
                (json!({"type": "record", "name": self.name("R"), "fields": fields}), Shape::Record(shapes))
            }
            _ => {
                // Branches of distinct JSON kinds (and no nested union).
                let mut branches = Vec::new();
                let mut shapes: Vec<Shape> = Vec::new();
                for _ in 0..2 + self.below(3) {
                    let (schema, shape) = self.schema(depth + 1);
                    let clash = |s: &Shape| s.kind() == shape.kind() || s.raw_kind() == shape.raw_kind();
                    if matches!(shape, Shape::Union(_)) || shapes.iter().any(clash) {
                        continue;
                    }
                    branches.push(schema);
                    shapes.push(shape);
                }
                if shapes.is_empty() {
                    branches.push(json!("null"));
                    shapes.push(Shape::Null);
                }
                (Json::Array(branches), Shape::Union(shapes))
            }
        }
    }

    fn latin1(&mut self, len: usize) -> (Vec<u8>, String) {
        let bytes: Vec<u8> = (0..len).map(|_| u8::try_from(self.next() & 0xff).unwrap_or(0)).collect();
        let text = bytes.iter().map(|b| char::from(*b)).collect();
        (bytes, text)
    }

    fn text(&mut self) -> String {
        const PIECES: [&str; 10] = ["a", "Z", "9", " ", "\"", "\\", "\n", "é", "€", "𝄞"];
        (0..self.below(12)).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // random bits
    fn value(&mut self, shape: &Shape) -> (Value, Json) {
        match shape {
            Shape::Null => (Value::Null, Json::Null),
            Shape::Boolean => {
                let b = self.next() & 1 == 1;
                (Value::Boolean(b), json!(b))
            }
            Shape::Int => {
                let n = self.next() as i32 >> self.below(32);
                (Value::Int(n), json!(n))
            }
            Shape::Long => {
                let n = self.next() as i64 >> self.below(64);
                (Value::Long(n), json!(n))
            }
            Shape::Float => {
                let f = (self.next() as i32 >> self.below(32)) as f32 / 64.0;
                (Value::Float(f), json!(f64::from(f)))
            }
            Shape::Double => {
                let f = (self.next() as i64 >> self.below(64)) as f64 / 1024.0;
                (Value::Double(f), json!(f))
            }
            Shape::Bytes => {
                let len = self.below(10);
                let (bytes, text) = self.latin1(len);
                (Value::Bytes(bytes), json!(text))
            }
            Shape::String => {
                let text = self.text();
                (Value::String(text.clone()), json!(text))
            }
            Shape::Enum(symbols) => {
                let i = self.below(symbols.len());
                (Value::Enum(u32::try_from(i).unwrap_or(0), symbols[i].clone()), json!(symbols[i]))
            }
            Shape::Fixed(size) => {
                let (bytes, text) = self.latin1(*size);
                (Value::Fixed(*size, bytes), json!(text))
            }
            Shape::Date => {
                // Years 1 to 9999: what a calendar date can be written as.
                let days = self.below(3_652_059) as i32 - 719_162;
                let date = time::Date::from_julian_day(days + 2_440_588).expect("in the calendar");
                let text = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
                (Value::Date(days), json!(text))
            }
            Shape::TimestampMillis => {
                let n = self.next() as i64 >> self.below(64);
                (Value::TimestampMillis(n), json!(n))
            }
            Shape::TimeMicros => {
                let n = (self.next() % 86_400_000_000) as i64;
                (Value::TimeMicros(n), json!(n))
            }
            Shape::Uuid => {
                let uuid = apache_avro::Uuid::from_u64_pair(self.next(), self.next());
                (Value::Uuid(uuid), json!(uuid.hyphenated().to_string()))
            }
            Shape::Decimal { precision, scale } => {
                let limit = 10_i128.pow((*precision).min(18));
                let unscaled = i128::from(self.next() as i64) % limit;
                (Value::Decimal(minimal_twos_complement(unscaled).into()), json!(decimal_text(unscaled, *scale)))
            }
            Shape::Array(items) => {
                let (values, jsons): (Vec<_>, Vec<_>) = (0..self.below(4)).map(|_| self.value(items)).unzip();
                (Value::Array(values), Json::Array(jsons))
            }
            Shape::Map(values) => {
                let mut map = std::collections::HashMap::new();
                let mut object = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    let key = self.text();
                    let (value, json) = self.value(values);
                    map.insert(key.clone(), value);
                    object.insert(key, json);
                }
                (Value::Map(map), Json::Object(object))
            }
            Shape::Record(fields) => {
                let mut values = Vec::new();
                let mut object = serde_json::Map::new();
                for (name, shape) in fields {
                    let (value, json) = self.value(shape);
                    values.push((name.clone(), value));
                    object.insert(name.clone(), json);
                }
                (Value::Record(values), Json::Object(object))
            }
            Shape::Union(branches) => {
                let i = self.below(branches.len());
                let (value, json) = self.value(&branches[i]);
                (Value::Union(u32::try_from(i).unwrap_or(0), Box::new(value)), json)
            }
        }
    }
}

/// Big-endian two's complement in the fewest bytes, as Avro's decimal `bytes` are written
/// (apache-avro sign-extends it to a `fixed`'s size).
fn minimal_twos_complement(n: i128) -> Vec<u8> {
    let full = n.to_be_bytes();
    let sign = if n < 0 { 0xff } else { 0 };
    let mut start = 0;
    while start < full.len() - 1 && full[start] == sign && (full[start + 1] & 0x80) == (sign & 0x80) {
        start += 1;
    }
    full[start..].to_vec()
}

/// An unscaled integer with `scale` digits after the point, as Sluice writes decimals.
fn decimal_text(unscaled: i128, scale: u32) -> String {
    let scale = scale as usize;
    let digits = unscaled.unsigned_abs().to_string();
    let digits =
        if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") }
}
