//! Avro binary → JSON text, the inverse of the encoder, for the consume path.
//!
//! It walks the writer schema's compiled nodes and writes JSON straight from the bytes, fields
//! in schema order, with the same natural forms the encoder accepts: unions as plain values,
//! enums as symbols, `bytes`/`fixed` as strings of code points U+0000..U+00FF, `date` as
//! `YYYY-MM-DD`, timestamps and times as numbers in their unit, `uuid` as its string, `decimal`
//! as an exact decimal string. Hand-written rather than through `apache_avro::types::Value`, so
//! no intermediate value is built and the output keeps the schema's field order.

use std::fmt;

use super::{AvroEncoder, MAX_NESTING, Node, NodeId, UNIX_EPOCH_JULIAN_DAY};

/// The decoded JSON may be this much larger than the Avro bytes, plus [`MIN_OUTPUT_BUDGET`].
/// Field names are written once per value, so a record of many one-byte fields grows tens of
/// times; an array of zero-width items (`null`, empty records) grows without limit, and this
/// budget is what ends it.
pub const OUTPUT_RATIO: usize = 64;
/// The decoded JSON of any datum may be this large, however small the datum.
pub const MIN_OUTPUT_BUDGET: usize = 1 << 20;

/// Why bytes are not a value of the writer's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for DecodeError {}

impl AvroEncoder {
    /// Decodes one Avro datum of this schema into JSON text appended to `out`. All of `bytes`
    /// must be the datum.
    ///
    /// # Examples
    /// ```
    /// let schema = sluice::codec::avro::AvroEncoder::compile(
    ///     r#"{"type":"record","name":"A","fields":[{"name":"n","type":["null","long"]}]}"#,
    /// ).unwrap();
    /// let mut json = Vec::new();
    /// schema.decode_to_json(&[2, 84], &mut json).unwrap();
    /// assert_eq!(json, br#"{"n":42}"#);
    /// ```
    ///
    /// Values nested deeper than [`MAX_NESTING`], and output larger than [`OUTPUT_RATIO`] times
    /// the input plus [`MIN_OUTPUT_BUDGET`], are refused as errors.
    pub fn decode_to_json(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut reader = Reader { bytes, at: 0 };
        let limit =
            out.len().saturating_add(bytes.len().saturating_mul(OUTPUT_RATIO)).saturating_add(MIN_OUTPUT_BUDGET);
        Decoder { nodes: &self.nodes, limit, depth: 0 }.value(self.root, &mut reader, out)?;
        if reader.at != bytes.len() {
            return Err(reader.error(format!("{} bytes left over after the value", bytes.len() - reader.at)));
        }
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError { offset: self.at, message: message.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.error("unexpected end"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                #[allow(clippy::cast_possible_wrap)] // zig-zag decoding
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(self.error("variable-length integer longer than 10 bytes"))
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| self.error(format!("negative length {n}")))
    }

    fn index(&mut self, count: usize, what: &str) -> Result<usize, DecodeError> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|i| *i < count)
            .ok_or_else(|| self.error(format!("{what} index {n} out of range")))
    }
}

struct Decoder<'n> {
    nodes: &'n [Node],
    /// `out` may not grow past this length.
    limit: usize,
    /// Records, arrays and maps entered and not yet left.
    depth: usize,
}

fn number(out: &mut Vec<u8>, n: impl fmt::Display) {
    out.extend_from_slice(n.to_string().as_bytes());
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn latin1(out: &mut Vec<u8>, bytes: &[u8]) {
    let text: String = bytes.iter().map(|b| char::from(*b)).collect();
    string(out, &text);
}

fn float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        // JSON has no NaN or infinity.
        out.extend_from_slice(b"null");
    }
}

impl Decoder<'_> {
    /// Enters a record, array or map.
    fn enter(&mut self, r: &Reader<'_>) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(r.error(format!("values nest deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    fn check_size(&self, r: &Reader<'_>, out: &[u8]) -> Result<(), DecodeError> {
        if out.len() > self.limit {
            return Err(r.error(format!(
                "the decoded JSON would be larger than {OUTPUT_RATIO} times the record plus {MIN_OUTPUT_BUDGET} bytes"
            )));
        }
        Ok(())
    }

    fn value(&mut self, id: NodeId, r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let nodes = self.nodes;
        match &nodes[id] {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Boolean => match r.take(1)?[0] {
                0 => out.extend_from_slice(b"false"),
                1 => out.extend_from_slice(b"true"),
                other => return Err(r.error(format!("{other} is not a boolean"))),
            },
            Node::Int
            | Node::Long
            | Node::TimeMillis
            | Node::TimeMicros
            | Node::Timestamp(_)
            | Node::LocalTimestamp(_) => {
                number(out, r.long()?);
            }
            Node::Float => {
                let bytes = r.take(4)?;
                float(out, f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])));
            }
            Node::Double => {
                let bytes: [u8; 8] = r.take(8)?.try_into().map_err(|_| r.error("short double"))?;
                float(out, f64::from_le_bytes(bytes));
            }
            Node::String | Node::UuidString => {
                let n = r.length()?;
                let bytes = r.take(n)?;
                let text = std::str::from_utf8(bytes).map_err(|_| r.error("a string that is not UTF-8"))?;
                string(out, text);
            }
            Node::Bytes => {
                let n = r.length()?;
                latin1(out, r.take(n)?);
            }
            Node::Fixed { size, .. } => latin1(out, r.take(*size)?),
            Node::UuidFixed => {
                let bytes: [u8; 16] = r.take(16)?.try_into().map_err(|_| r.error("short uuid"))?;
                string(out, &uuid::Uuid::from_bytes(bytes).hyphenated().to_string());
            }
            Node::Enum { symbols, .. } => {
                let i = r.index(symbols.len(), "enum symbol")?;
                string(out, &symbols[i]);
            }
            Node::Date => {
                let days = r.long()?;
                // Days outside the calendar's ±9999 years (which the encoder takes as a number)
                // come back as that number.
                let date = i32::try_from(days)
                    .ok()
                    .and_then(|days| days.checked_add(UNIX_EPOCH_JULIAN_DAY))
                    .and_then(|julian| time::Date::from_julian_day(julian).ok());
                match date {
                    Some(date) => {
                        let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
                        string(out, &format!("{y:04}-{m:02}-{d:02}"));
                    }
                    None => number(out, days),
                }
            }
            Node::Decimal { scale, fixed, .. } => {
                let bytes = match fixed {
                    Some(size) => r.take(*size)?,
                    None => {
                        let n = r.length()?;
                        r.take(n)?
                    }
                };
                string(out, &decimal(bytes, *scale).ok_or_else(|| r.error("decimal wider than 128 bits"))?);
            }
            Node::Array(items) => {
                self.enter(r)?;
                out.push(b'[');
                let mut first = true;
                self.blocks(r, out, |this, r, out| {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    this.value(*items, r, out)
                })?;
                out.push(b']');
                self.depth -= 1;
            }
            Node::Map(values) => {
                self.enter(r)?;
                out.push(b'{');
                let mut first = true;
                self.blocks(r, out, |this, r, out| {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    let n = r.length()?;
                    let key = std::str::from_utf8(r.take(n)?).map_err(|_| r.error("a map key that is not UTF-8"))?;
                    string(out, key);
                    out.push(b':');
                    this.value(*values, r, out)
                })?;
                out.push(b'}');
                self.depth -= 1;
            }
            Node::Union(branches) => {
                let i = r.index(branches.len(), "union branch")?;
                self.value(branches[i], r, out)?;
            }
            Node::Record(record) => {
                self.enter(r)?;
                out.push(b'{');
                for (i, field) in record.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    string(out, &field.name);
                    out.push(b':');
                    self.value(field.node, r, out)?;
                }
                out.push(b'}');
                self.depth -= 1;
                self.check_size(r, out)?;
            }
            Node::Pending => return Err(r.error("schema type is not fully defined")),
        }
        Ok(())
    }

    /// Avro's blocked encoding of arrays and maps: counts, negative with a byte size, then 0.
    ///
    /// Items may take no bytes at all (`null`, empty records), so a count alone could make this
    /// loop for ever; every item writes output, and the output budget ends it.
    fn blocks(
        &mut self,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        mut item: impl FnMut(&mut Self, &mut Reader<'_>, &mut Vec<u8>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        loop {
            let count = r.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                r.long()?; // the block's size in bytes, for skipping; not needed here
            }
            for _ in 0..count.unsigned_abs() {
                item(self, r, out)?;
                self.check_size(r, out)?;
            }
        }
    }
}

/// Big-endian two's complement unscaled bytes as a decimal string with `scale` digits after the
/// point.
fn decimal(mut bytes: &[u8], scale: usize) -> Option<String> {
    // Sign extension carries no digits: a `fixed` wider than 16 bytes (Java's writer fills it so)
    // holds a value that fits in 128 bits as long as its extra leading bytes only repeat the sign.
    while bytes.len() > 16 {
        match bytes {
            [0x00, next, ..] if next & 0x80 == 0 => bytes = &bytes[1..],
            [0xff, next, ..] if next & 0x80 != 0 => bytes = &bytes[1..],
            _ => return None,
        }
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = [if negative { 0xff } else { 0 }; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let n = i128::from_be_bytes(buf);
    let digits = n.unsigned_abs().to_string();
    let digits =
        if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Some(if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn round_trip(schema: &str, value: Value) -> Value {
        let encoder = AvroEncoder::compile(schema).expect("schema");
        let mut bytes = Vec::new();
        encoder.encode(&crate::codec::json::Json::from(&value), true, &mut bytes).expect("encodes");
        let mut json = Vec::new();
        encoder.decode_to_json(&bytes, &mut json).expect("decodes");
        serde_json::from_slice(&json).expect("JSON")
    }

    #[test]
    fn decodes_what_the_encoder_wrote_in_schema_order() {
        let schema = r#"{"type":"record","name":"O","fields":[
            {"name":"z","type":"string"},{"name":"a","type":["null","long"]},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
            {"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"q","type":"int"}]}}},
            {"name":"m","type":{"type":"map","values":"double"}},{"name":"b","type":"bytes"},{"name":"ok","type":"boolean"}
        ]}"#;
        let value = json!({"z": "é\"", "a": 5, "e": "Y", "items": [{"q": 1}, {"q": -2}], "m": {"k": 1.5}, "b": "\u{00ff}A", "ok": true});
        assert_eq!(round_trip(schema, value.clone()), value);
        let encoder = AvroEncoder::compile(schema).unwrap();
        let mut bytes = Vec::new();
        encoder.encode(&crate::codec::json::Json::from(&value), true, &mut bytes).unwrap();
        let mut json = Vec::new();
        encoder.decode_to_json(&bytes, &mut json).unwrap();
        assert!(json.starts_with(br#"{"z":"#), "schema order, not sorted: {}", String::from_utf8_lossy(&json));
    }

    #[test]
    fn logical_types_come_back_in_their_natural_form() {
        let schema = r#"{"type":"record","name":"L","fields":[
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"fx","type":{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}},
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"small","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":3}}
        ]}"#;
        let decoded = round_trip(
            schema,
            json!({"d": "2026-11-27", "ts": "2026-11-27T10:00:00.123Z", "id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
                   "fx": "67e55044-10b1-426f-9247-bb680e5fe0c8", "amount": "-12.50", "small": "0.005"}),
        );
        assert_eq!(
            decoded,
            json!({"d": "2026-11-27", "ts": 1_795_773_600_123_i64, "id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
                   "fx": "67e55044-10b1-426f-9247-bb680e5fe0c8", "amount": "-12.50", "small": "0.005"})
        );
    }

    #[test]
    fn a_decimal_in_a_fixed_wider_than_16_bytes_decodes_when_the_rest_is_sign_extension() {
        // Found by the avro_encode fuzz target: the encoder filled a fixed(24) the way Java's
        // writer does, and the decoder refused what it wrote.
        let schema = r#"{"type":"fixed","name":"W","size":24,"logicalType":"decimal","precision":8,"scale":2}"#;
        for amount in ["-38.50", "38.50", "0.00", "-0.01", "999999.99"] {
            assert_eq!(round_trip(schema, json!(amount)), json!(amount));
        }
        // Digits beyond 128 bits are still refused, not truncated.
        let encoder = AvroEncoder::compile(schema).unwrap();
        let mut wide = vec![0u8; 24];
        wide[0] = 1;
        assert!(encoder.decode_to_json(&wide, &mut Vec::new()).is_err());
        let mut almost = vec![0xffu8; 24];
        almost[8] = 0x7f;
        assert!(encoder.decode_to_json(&almost, &mut Vec::new()).is_err());
    }

    #[test]
    fn truncated_or_padded_input_is_refused() {
        let encoder =
            AvroEncoder::compile(r#"{"type":"record","name":"A","fields":[{"name":"s","type":"string"}]}"#).unwrap();
        let mut out = Vec::new();
        assert!(encoder.decode_to_json(&[10, b'a'], &mut out).is_err(), "length 5, one byte");
        assert!(encoder.decode_to_json(&[2, b'a', 0], &mut out).unwrap_err().message.contains("left over"));
    }

    const LINKED: &str = r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#;

    /// `levels` records, each holding the next in its union's second branch.
    fn linked(levels: usize) -> Vec<u8> {
        let mut bytes = vec![2u8; levels - 1];
        bytes.push(0);
        bytes
    }

    #[test]
    fn a_deeply_recursive_record_is_refused_not_a_stack_overflow() {
        let encoder = AvroEncoder::compile(LINKED).unwrap();
        let mut out = Vec::new();
        let error = encoder.decode_to_json(&linked(400_000), &mut out).unwrap_err();
        assert!(error.message.contains("nest deeper than 127"), "{error}");
        let mut out = Vec::new();
        assert!(encoder.decode_to_json(&linked(MAX_NESTING + 1), &mut out).is_err());
    }

    #[test]
    fn the_deepest_value_decoded_is_one_serde_json_reads() {
        let encoder = AvroEncoder::compile(LINKED).unwrap();
        let mut out = Vec::new();
        encoder.decode_to_json(&linked(MAX_NESTING), &mut out).unwrap();
        let value: Value = serde_json::from_slice(&out).expect("serde_json reads the deepest decoded value");
        let mut depth = 0;
        let mut at = &value;
        while let Some(next) = at.get("next") {
            depth += 1;
            at = next;
        }
        assert_eq!(depth, MAX_NESTING);
    }

    #[test]
    fn zero_width_items_cannot_loop_without_consuming_input() {
        for schema in [
            r#"{"type":"array","items":"null"}"#,
            r#"{"type":"array","items":{"type":"record","name":"E","fields":[]}}"#,
            r#"{"type":"array","items":{"type":"array","items":"null"}}"#,
        ] {
            let encoder = AvroEncoder::compile(schema).unwrap();
            // A block count of 2^62 - 1 (and, for the nested case, one inner array of as many).
            let mut bytes = Vec::new();
            crate::codec::avro::write_long(&mut bytes, (1 << 62) - 1);
            if schema.matches("array").count() == 2 {
                crate::codec::avro::write_long(&mut bytes, (1 << 62) - 1);
            }
            let mut out = Vec::new();
            let error = encoder.decode_to_json(&bytes, &mut out).unwrap_err();
            assert!(error.message.contains("larger than"), "{schema}: {error}");
            assert!(out.len() <= bytes.len() * OUTPUT_RATIO + MIN_OUTPUT_BUDGET + 64, "{schema}: {}", out.len());
        }
        // Map keys take at least their length byte: a count with too few entries ends the input.
        let map = AvroEncoder::compile(r#"{"type":"map","values":"null"}"#).unwrap();
        let mut bytes = Vec::new();
        crate::codec::avro::write_long(&mut bytes, (1 << 62) - 1);
        bytes.extend_from_slice(&[2, b'k']);
        assert!(map.decode_to_json(&bytes, &mut Vec::new()).unwrap_err().message.contains("unexpected end"));
    }

    #[test]
    fn java_style_blocks_with_negative_counts_and_sizes_are_read() {
        let encoder = AvroEncoder::compile(r#"{"type":"array","items":"long"}"#).unwrap();
        // Two blocks: -2 items (4 bytes) then 1 item, then the end.
        let bytes = [3, 4, 2, 4, 2, 6, 0];
        let mut out = Vec::new();
        encoder.decode_to_json(&bytes, &mut out).unwrap();
        assert_eq!(out, b"[1,2,3]".to_vec());
    }
}
