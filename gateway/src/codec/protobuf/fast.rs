//! The produce path's fast way from a parsed event to a message's bytes.
//!
//! `prost-reflect` reads JSON into a `DynamicMessage` (a map of boxed values) and encodes that:
//! ~5–8 µs for the benchmark's event, where Avro's encoder takes ~1 µs (BENCHMARKS.md). This
//! module walks the event already parsed for the route ([`Json`]) and a plan compiled once per
//! schema, writing the wire format with `prost`'s encoding functions, as `codec::avro` does.
//!
//! It covers what events mostly hold: scalars, enums, nested messages, repeated fields, maps and
//! `google.protobuf.Timestamp` in its plain RFC 3339 form. Anything else — other well-known
//! types, a value in a form it does not take (a number as `1e3`, `"NaN"`, a URL-safe base64),
//! an unknown field or enum name, a key twice, two members of a oneof — makes it answer `None`,
//! and the event goes through `prost-reflect`, which is the reference: it either encodes the
//! event or says why not. A differential test (and the `protobuf_encode` fuzz target) checks
//! that whenever this path answers, `prost-reflect` decodes the bytes to the message it reads
//! from the same JSON.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use prost_reflect::prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{FieldDescriptor, Kind as ReflectKind, MessageDescriptor};

use crate::codec::json::{Json, Object};

/// How deep messages may nest on the fast path (deeper events take the reference path).
const MAX_DEPTH: usize = 64;

/// Every message reachable from a file's messages, ready to encode.
#[derive(Debug, Default)]
pub(super) struct Plan {
    messages: Vec<MessagePlan>,
    by_name: HashMap<String, usize>,
}

#[derive(Debug)]
struct MessagePlan {
    /// Field index by proto name and by JSON name.
    by_name: HashMap<String, usize>,
    fields: Vec<FieldPlan>,
    /// False for a message this path does not encode (a well-known type other than Timestamp).
    supported: bool,
    timestamp: bool,
}

#[derive(Debug)]
struct FieldPlan {
    number: u32,
    kind: Kind,
    shape: Shape,
    /// Written even when it holds its default (proto3 `optional`, proto2, oneof members).
    presence: bool,
    oneof: Option<usize>,
    packed: bool,
}

#[derive(Debug)]
enum Shape {
    Single,
    Repeated,
    Map(Kind, Kind),
}

#[derive(Debug, Clone)]
enum Kind {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    Enum(Arc<HashMap<String, i32>>),
    Message(usize),
}

impl Plan {
    /// Plans every message of `roots` and every message their fields reach.
    pub(super) fn new(roots: impl IntoIterator<Item = MessageDescriptor>) -> Self {
        let mut plan = Plan::default();
        let mut pending: Vec<MessageDescriptor> = Vec::new();
        for root in roots {
            plan.index(&root, &mut pending);
        }
        while let Some(message) = pending.pop() {
            let fields = message.fields().map(|f| plan.plan_field(&message, &f, &mut pending)).collect();
            let mut by_name = HashMap::new();
            for (i, field) in message.fields().enumerate() {
                by_name.insert(field.name().to_owned(), i);
                by_name.insert(field.json_name().to_owned(), i);
            }
            let name = message.full_name();
            let index = plan.by_name[name];
            let well_known = name.starts_with("google.protobuf.");
            let timestamp = name == "google.protobuf.Timestamp";
            let supported = (!well_known || timestamp) && message.extensions().len() == 0;
            plan.messages[index] = MessagePlan { by_name, fields, supported, timestamp };
        }
        plan
    }

    /// The plan index of a message, planning it later if it is new.
    fn index(&mut self, message: &MessageDescriptor, pending: &mut Vec<MessageDescriptor>) -> usize {
        if let Some(&index) = self.by_name.get(message.full_name()) {
            return index;
        }
        let index = self.messages.len();
        self.messages.push(MessagePlan {
            by_name: HashMap::new(),
            fields: Vec::new(),
            supported: false,
            timestamp: false,
        });
        self.by_name.insert(message.full_name().to_owned(), index);
        pending.push(message.clone());
        index
    }

    fn plan_field(
        &mut self,
        message: &MessageDescriptor,
        field: &FieldDescriptor,
        pending: &mut Vec<MessageDescriptor>,
    ) -> FieldPlan {
        let shape = match field.kind() {
            ReflectKind::Message(entry) if field.is_map() => Shape::Map(
                self.kind(&entry.map_entry_key_field(), pending),
                self.kind(&entry.map_entry_value_field(), pending),
            ),
            _ if field.is_list() => Shape::Repeated,
            _ => Shape::Single,
        };
        let oneof = field
            .containing_oneof()
            .filter(|o| !o.is_synthetic())
            .and_then(|o| message.oneofs().position(|other| other.name() == o.name()));
        FieldPlan {
            number: field.number(),
            kind: self.kind(field, pending),
            shape,
            presence: field.supports_presence(),
            oneof,
            packed: field.is_packed(),
        }
    }

    fn kind(&mut self, field: &FieldDescriptor, pending: &mut Vec<MessageDescriptor>) -> Kind {
        match field.kind() {
            ReflectKind::Double => Kind::Double,
            ReflectKind::Float => Kind::Float,
            ReflectKind::Int32 => Kind::Int32,
            ReflectKind::Int64 => Kind::Int64,
            ReflectKind::Uint32 => Kind::Uint32,
            ReflectKind::Uint64 => Kind::Uint64,
            ReflectKind::Sint32 => Kind::Sint32,
            ReflectKind::Sint64 => Kind::Sint64,
            ReflectKind::Fixed32 => Kind::Fixed32,
            ReflectKind::Fixed64 => Kind::Fixed64,
            ReflectKind::Sfixed32 => Kind::Sfixed32,
            ReflectKind::Sfixed64 => Kind::Sfixed64,
            ReflectKind::Bool => Kind::Bool,
            ReflectKind::String => Kind::String,
            ReflectKind::Bytes => Kind::Bytes,
            // A group's wire form differs; the reference path writes it.
            ReflectKind::Message(_) if field.is_group() => Kind::Message(usize::MAX),
            ReflectKind::Message(message) => Kind::Message(self.index(&message, pending)),
            ReflectKind::Enum(e) => {
                // Open enums only: a closed (proto2) enum refuses numbers it does not list.
                if e.parent_file().syntax() == prost_reflect::Syntax::Proto2 {
                    Kind::Message(usize::MAX)
                } else {
                    Kind::Enum(Arc::new(e.values().map(|v| (v.name().to_owned(), v.number())).collect()))
                }
            }
        }
    }

    /// Appends `message`'s bytes for `event`, or `None` when the reference path must decide.
    pub(super) fn encode(
        &self,
        message: &str,
        event: &Json<'_>,
        reject_unknown: bool,
        out: &mut Vec<u8>,
    ) -> Option<()> {
        let index = *self.by_name.get(message)?;
        let Json::Object(object) = event else { return None };
        self.message(index, object, reject_unknown, out, 0)
    }

    fn message(&self, index: usize, object: &Object<'_>, reject: bool, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        let plan = self.messages.get(index)?;
        if !plan.supported || plan.timestamp || depth > MAX_DEPTH || plan.fields.len() > 128 {
            return None;
        }
        let (mut seen, mut oneofs) = (0u128, 0u128);
        for (key, value) in object.as_vec() {
            let Some(&i) = plan.by_name.get(&**key) else {
                if reject {
                    return None;
                }
                continue;
            };
            if seen & (1 << i) != 0 {
                return None;
            }
            seen |= 1 << i;
            if matches!(value, Json::Null) {
                continue;
            }
            let field = &plan.fields[i];
            if let Some(oneof) = field.oneof {
                if oneof >= 128 || oneofs & (1 << oneof) != 0 {
                    return None;
                }
                oneofs |= 1 << oneof;
            }
            self.field(field, value, reject, out, depth)?;
        }
        Some(())
    }

    fn field(&self, field: &FieldPlan, value: &Json<'_>, reject: bool, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        match &field.shape {
            Shape::Single => self.single(field.number, &field.kind, value, !field.presence, reject, out, depth),
            Shape::Repeated => {
                let Json::Array(items) = value else { return None };
                if field.packed {
                    if items.is_empty() {
                        return Some(());
                    }
                    encode_key(field.number, WireType::LengthDelimited, out);
                    let start = open(out);
                    for item in items {
                        scalar(&field.kind, item, out)?;
                    }
                    close(out, start);
                } else {
                    for item in items {
                        if matches!(item, Json::Null) {
                            return None;
                        }
                        self.single(field.number, &field.kind, item, false, reject, out, depth)?;
                    }
                }
                Some(())
            }
            Shape::Map(key_kind, value_kind) => {
                let Json::Object(entries) = value else { return None };
                for (key, value) in entries.as_vec() {
                    if matches!(value, Json::Null) {
                        return None;
                    }
                    encode_key(field.number, WireType::LengthDelimited, out);
                    let start = open(out);
                    map_key(key_kind, key, out)?;
                    self.single(2, value_kind, value, false, reject, out, depth)?;
                    close(out, start);
                }
                Some(())
            }
        }
    }

    /// One value of field `number`; `skip_default`: a field without presence leaves out its
    /// default value, as every encoder does.
    #[allow(clippy::too_many_arguments)]
    fn single(
        &self,
        number: u32,
        kind: &Kind,
        value: &Json<'_>,
        skip_default: bool,
        reject: bool,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Option<()> {
        match kind {
            Kind::Message(index) => {
                let plan = self.messages.get(*index)?;
                encode_key(number, WireType::LengthDelimited, out);
                let start = open(out);
                if plan.timestamp {
                    let Json::Str(text) = value else { return None };
                    let (seconds, nanos) = timestamp(text)?;
                    if seconds != 0 {
                        encode_key(1, WireType::Varint, out);
                        encode_varint(seconds.cast_unsigned(), out);
                    }
                    if nanos != 0 {
                        encode_key(2, WireType::Varint, out);
                        encode_varint(u64::from(nanos), out);
                    }
                } else {
                    let Json::Object(object) = value else { return None };
                    self.message(*index, object, reject, out, depth + 1)?;
                }
                close(out, start);
                Some(())
            }
            _ => {
                let at = out.len();
                encode_key(number, wire_type(kind), out);
                if scalar(kind, value, out)? && skip_default {
                    out.truncate(at);
                }
                Some(())
            }
        }
    }
}

fn wire_type(kind: &Kind) -> WireType {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => WireType::SixtyFourBit,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => WireType::ThirtyTwoBit,
        Kind::String | Kind::Bytes | Kind::Message(_) => WireType::LengthDelimited,
        _ => WireType::Varint,
    }
}

/// Writes a scalar's value (no key); `Some(true)` when it is the type's default.
fn scalar(kind: &Kind, value: &Json<'_>, out: &mut Vec<u8>) -> Option<bool> {
    match kind {
        Kind::Int32 => {
            let n = i32::try_from(integer(value)?).ok()?;
            encode_varint(i64::from(n).cast_unsigned(), out);
            Some(n == 0)
        }
        Kind::Int64 => {
            let n = integer(value)?;
            encode_varint(n.cast_unsigned(), out);
            Some(n == 0)
        }
        Kind::Uint32 => {
            let n = u32::try_from(unsigned(value)?).ok()?;
            encode_varint(u64::from(n), out);
            Some(n == 0)
        }
        Kind::Uint64 => {
            let n = unsigned(value)?;
            encode_varint(n, out);
            Some(n == 0)
        }
        Kind::Sint32 => {
            let n = i32::try_from(integer(value)?).ok()?;
            encode_varint(u64::from(((n << 1) ^ (n >> 31)).cast_unsigned()), out);
            Some(n == 0)
        }
        Kind::Sint64 => {
            let n = integer(value)?;
            encode_varint(((n << 1) ^ (n >> 63)).cast_unsigned(), out);
            Some(n == 0)
        }
        Kind::Fixed32 => {
            let n = u32::try_from(unsigned(value)?).ok()?;
            out.extend_from_slice(&n.to_le_bytes());
            Some(n == 0)
        }
        Kind::Fixed64 => {
            let n = unsigned(value)?;
            out.extend_from_slice(&n.to_le_bytes());
            Some(n == 0)
        }
        Kind::Sfixed32 => {
            let n = i32::try_from(integer(value)?).ok()?;
            out.extend_from_slice(&n.to_le_bytes());
            Some(n == 0)
        }
        Kind::Sfixed64 => {
            let n = integer(value)?;
            out.extend_from_slice(&n.to_le_bytes());
            Some(n == 0)
        }
        Kind::Double => {
            let Json::Number(n) = value else { return None };
            let n = n.as_f64()?;
            out.extend_from_slice(&n.to_le_bytes());
            Some(n == 0.0)
        }
        Kind::Float => {
            let Json::Number(n) = value else { return None };
            let n = n.as_f64()?;
            if n.is_finite() && n.abs() > f64::from(f32::MAX) {
                return None;
            }
            #[allow(clippy::cast_possible_truncation)] // in range, checked above
            let n = n as f32;
            out.extend_from_slice(&n.to_le_bytes());
            Some(n == 0.0)
        }
        Kind::Bool => {
            let Json::Bool(b) = value else { return None };
            encode_varint(u64::from(*b), out);
            Some(!b)
        }
        Kind::String => {
            let Json::Str(s) = value else { return None };
            encode_varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
            Some(s.is_empty())
        }
        Kind::Bytes => {
            let Json::Str(s) = value else { return None };
            let bytes = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).ok()?;
            encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(&bytes);
            Some(bytes.is_empty())
        }
        Kind::Enum(values) => {
            let n = match value {
                Json::Str(name) => *values.get(&**name)?,
                _ => i32::try_from(integer(value)?).ok()?,
            };
            encode_varint(i64::from(n).cast_unsigned(), out);
            Some(n == 0)
        }
        Kind::Message(_) => None,
    }
}

/// A signed integer written as a JSON integer or a decimal string of one.
fn integer(value: &Json<'_>) -> Option<i64> {
    match value {
        Json::Number(n) => n.as_i64(),
        Json::Str(s) if plain_integer(s) => s.parse().ok(),
        _ => None,
    }
}

fn unsigned(value: &Json<'_>) -> Option<u64> {
    match value {
        Json::Number(n) => n.as_u64(),
        Json::Str(s) if plain_integer(s) && !s.starts_with('-') => s.parse().ok(),
        _ => None,
    }
}

/// `-?[0-9]+`, the only string form of an integer this path reads.
fn plain_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn map_key(kind: &Kind, key: &str, out: &mut Vec<u8>) -> Option<()> {
    let at = out.len();
    encode_key(1, wire_type(kind), out);
    let default = match kind {
        Kind::String => scalar(kind, &Json::Str(key.into()), out)?,
        Kind::Bool => match key {
            "true" => scalar(kind, &Json::Bool(true), out)?,
            "false" => scalar(kind, &Json::Bool(false), out)?,
            _ => return None,
        },
        Kind::Double | Kind::Float | Kind::Bytes | Kind::Enum(_) | Kind::Message(_) => return None,
        _ => scalar(kind, &Json::Str(key.into()), out)?,
    };
    // Map entries leave out default keys, as encoders do (they read back as the default).
    if default {
        out.truncate(at);
    }
    Some(())
}

/// Starts a length-delimited body: one byte reserved for its length.
fn open(out: &mut Vec<u8>) -> usize {
    out.push(0);
    out.len()
}

/// Ends a body begun with [`open`], writing its length (moving the body when it needs more
/// than one byte).
fn close(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len < 0x80 {
        #[allow(clippy::cast_possible_truncation)] // below 0x80
        {
            out[start - 1] = len as u8;
        }
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    encode_varint(len as u64, &mut prefix);
    out.splice(start - 1..start, prefix);
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → seconds since the epoch and nanoseconds, in the
/// range proto3's JSON mapping allows (years 1 to 9999). Other spellings take the reference path.
fn timestamp(text: &str) -> Option<(i64, u32)> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year == 0 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let month_len = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > month_len {
        return None;
    }
    let mut at = 19;
    let mut nanos: u32 = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let fraction = u32::try_from(num(at + 1..at + 1 + digits)?).ok()?;
        nanos = fraction * 10u32.pow(u32::try_from(9 - digits).ok()?);
        at += 1 + digits;
    }
    let offset = match &b[at..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = num(at + 1..at + 3)?;
            let m = num(at + 4..at + 6)?;
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset * 60;
    // 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, as the mapping requires.
    if !(-62_135_596_800..=253_402_300_799).contains(&seconds) {
        return None;
    }
    Some((seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_in_their_plain_form() {
        assert_eq!(timestamp("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(timestamp("2026-12-01T10:00:00.250Z"), Some((1_796_119_200, 250_000_000)));
        assert_eq!(timestamp("2026-12-01T12:00:00+02:00"), Some((1_796_119_200, 0)));
        assert_eq!(timestamp("0001-01-01T00:00:00Z"), Some((-62_135_596_800, 0)));
        assert_eq!(timestamp("2024-02-29T00:00:00.000000001Z"), Some((1_709_164_800, 1)));
        for odd in [
            "2023-02-29T00:00:00Z",
            "2026-12-01t10:00:00Z",
            "2026-12-01T10:00:60Z",
            "2026-12-01T10:00:00",
            "0000-01-01T00:00:00Z",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00.1234567890Z",
        ] {
            assert_eq!(timestamp(odd), None, "{odd}");
        }
    }
}
