//! Confluent's message-index array: which message of the schema file a record holds.
//!
//! The path from the file's top-level messages down through nested ones, e.g. `[1, 0]` for the
//! first message nested in the second top-level one, written as zig-zag varints: the count, then
//! each index. `[0]`, the common case, is written as a single `0` (a count of zero).

/// The deepest message path a record may name (protoc nests messages at most 32 deep).
const MAX_DEPTH: usize = 32;

/// Appends the indexes of a message.
///
/// # Examples
/// ```
/// let mut out = Vec::new();
/// sluice::codec::protobuf::indexes::write(&mut out, &[0]);
/// assert_eq!(out, [0]);
/// out.clear();
/// sluice::codec::protobuf::indexes::write(&mut out, &[1, 0]);
/// assert_eq!(out, [4, 2, 0]);
/// ```
pub fn write(out: &mut Vec<u8>, path: &[i32]) {
    if path == [0] {
        out.push(0);
        return;
    }
    write_zigzag(out, i64::try_from(path.len()).unwrap_or(i64::MAX));
    for &index in path {
        write_zigzag(out, i64::from(index));
    }
}

/// Reads the indexes at the start of a payload; returns them and the bytes they took.
pub fn read(payload: &[u8]) -> Result<(Vec<i32>, usize), String> {
    let mut at = 0;
    let count = read_zigzag(payload, &mut at)?;
    if count == 0 {
        return Ok((vec![0], at));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= MAX_DEPTH)
        .ok_or_else(|| format!("the record names a message {count} levels deep (at most {MAX_DEPTH})"))?;
    let mut path = Vec::with_capacity(count);
    for _ in 0..count {
        let index = read_zigzag(payload, &mut at)?;
        path.push(i32::try_from(index).ok().filter(|&i| i >= 0).ok_or_else(|| format!("message index {index}"))?);
    }
    Ok((path, at))
}

fn write_zigzag(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)).cast_unsigned();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_zigzag(payload: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *payload.get(*at).ok_or("the record ends inside its message indexes")?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok((n >> 1).cast_signed() ^ -((n & 1).cast_signed()));
        }
    }
    Err("a message index is longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_paths_and_uses_the_single_zero_for_the_first_message() {
        for path in [vec![0], vec![1], vec![0, 0], vec![3, 1, 2], vec![200, 70_000]] {
            let mut out = Vec::new();
            write(&mut out, &path);
            out.push(0xAA);
            assert_eq!(read(&out).unwrap(), (path.clone(), out.len() - 1), "{path:?}");
        }
        let mut out = Vec::new();
        write(&mut out, &[0]);
        assert_eq!(out, [0]);
    }

    #[test]
    fn refuses_truncated_negative_and_too_deep_paths() {
        assert!(read(&[]).is_err());
        assert!(read(&[4, 2]).is_err(), "two indexes announced, one present");
        assert!(read(&[2, 1]).is_err(), "index -1");
        assert!(read(&[0xff; 11]).is_err());
        let mut deep = Vec::new();
        write_zigzag(&mut deep, 1_000_000);
        assert!(read(&deep).unwrap_err().contains("levels deep"));
    }
}
