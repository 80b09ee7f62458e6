//! The Confluent wire format: `0x00`, the schema id as a big-endian `i32`, then the payload.
//!
//! Every Confluent and Apicurio serializer (Java, Python, Go, JS) frames records this way, so
//! consumers written with those libraries read what Sluice produces without knowing about it.

/// The first byte of every framed record.
pub const MAGIC: u8 = 0;
/// Bytes taken by the magic byte and the schema id.
pub const HEADER_LEN: usize = 5;

/// Starts a buffer with the header for `schema_id`; the payload is appended after it.
///
/// # Examples
/// ```
/// let buf = sluice::codec::wire::start(7, 16);
/// assert_eq!(buf, [0, 0, 0, 0, 7]);
/// ```
pub fn start(schema_id: u32, payload_hint: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload_hint);
    buf.push(MAGIC);
    buf.extend_from_slice(&schema_id.to_be_bytes());
    buf
}

/// Splits a framed record into its schema id and payload.
///
/// # Examples
/// ```
/// let (id, payload) = sluice::codec::wire::split(&[0, 0, 0, 1, 2, 42]).unwrap();
/// assert_eq!((id, payload), (258, &[42u8][..]));
/// ```
pub fn split(record: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match record {
        [MAGIC, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [] | [MAGIC, ..] => Err(WireError::TooShort(record.len())),
        [other, ..] => Err(WireError::BadMagic(*other)),
    }
}

/// Why a record is not in the Confluent wire format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("record is {0} bytes, shorter than the 5-byte Confluent header")]
    TooShort(usize),
    #[error("record starts with byte {0:#04x}, not the Confluent magic byte 0x00")]
    BadMagic(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_header_and_payload() {
        let mut buf = start(0x0102_0304, 2);
        buf.extend_from_slice(b"hi");
        assert_eq!(buf, [0, 1, 2, 3, 4, b'h', b'i']);
        assert_eq!(split(&buf), Ok((0x0102_0304, &b"hi"[..])));
    }

    #[test]
    fn refuses_short_and_unframed_records() {
        assert_eq!(split(&[0, 1]), Err(WireError::TooShort(2)));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::BadMagic(b'{')));
    }
}
