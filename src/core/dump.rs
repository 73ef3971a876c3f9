//! A new hash record as a `DUMP` payload, for `RESTORE key at payload ABSTTL`.
//!
//! Creating a record with `HashSet` appends its fields one by one to a
//! listpack, and every append reallocates it; the record then replicates as
//! `HSET` + `PEXPIREAT` inside `MULTI`/`EXEC`. A listpack built here in one
//! piece and restored with its absolute expiry is the same hash, written with
//! one allocation and replicated as one deterministic command.
//!
//! The payload is what `DUMP` of that hash returns on Redis 7.0: the object
//! type `RDB_TYPE_HASH_LISTPACK` (16), the listpack as an RDB string, the RDB
//! version (10, which every later Redis and Valkey accepts) and the CRC-64 of
//! all that. Entries are encoded as `lpAppend` would (integers in their
//! smallest form), so the restored listpack is byte for byte the one `HSET`
//! builds. The unit tests compare with real `DUMP` output.

/// `RDB_TYPE_HASH_LISTPACK`.
const RDB_TYPE_HASH_LISTPACK: u8 = 16;
/// Redis 7.0's `RDB_VERSION`; servers accept payloads of their version or older.
const RDB_VERSION: u16 = 10;
/// The CRC-64 of Redis (Jones polynomial, reflected; `CRC-64/REDIS` in the
/// catalogue), by carry-less multiplication where the CPU has it: no tables
/// to evict the server's own CRC tables from the cache.
fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, bytes)
}

/// The encoding limits of the server (`hash-max-listpack-entries`,
/// `hash-max-listpack-value`): a record within them is stored as a listpack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListpackLimits {
    pub max_entries: u64,
    pub max_value: u64,
}

/// The `DUMP` payload of a hash holding `pairs`, or `None` when `HSET` would
/// not store them as a listpack (more pairs than `max_entries`, a name or
/// value longer than `max_value`, no pair at all, or a repeated name), in
/// which case the caller writes the hash field by field.
///
/// One pass: the listpack is written after room for the longest RDB length
/// prefix, its header is filled in once its size is known, and the prefix is
/// then put right before it (each entry's encoding is decided once).
pub fn hash_payload(pairs: &[(&[u8], &[u8])], limits: ListpackLimits) -> Option<Vec<u8>> {
    let count = u64::try_from(pairs.len()).ok()?;
    if count == 0 || count > limits.max_entries {
        return None;
    }
    let too_long = |s: &[u8]| u64::try_from(s.len()).map_or(true, |n| n > limits.max_value);
    // An upper bound of the payload: per entry at most 5 bytes of encoding
    // and 5 of back-length around its data.
    let mut bound: usize = PREFIX + LP_HEADER + 1 + TRAILER;
    for (i, (f, v)) in pairs.iter().enumerate() {
        if too_long(f) || too_long(v) || pairs.iter().take(i).any(|(g, _)| g == f) {
            return None;
        }
        bound = bound
            .checked_add(f.len())?
            .checked_add(v.len())?
            .checked_add(20)?;
    }
    let elements = u16::try_from(count.checked_mul(2)?).unwrap_or(u16::MAX);

    let mut out = Vec::with_capacity(bound);
    out.resize(PREFIX + LP_HEADER, 0);
    for (f, v) in pairs {
        entry(&mut out, f);
        entry(&mut out, v);
    }
    out.push(0xFF);
    // The listpack: total bytes and element count, little-endian.
    let total = u32::try_from(out.len().checked_sub(PREFIX)?).ok()?;
    let mut header = [0u8; LP_HEADER];
    header.get_mut(..4)?.copy_from_slice(&total.to_le_bytes());
    header
        .get_mut(4..)?
        .copy_from_slice(&elements.to_le_bytes());
    out.get_mut(PREFIX..PREFIX + LP_HEADER)?
        .copy_from_slice(&header);
    // The object type and the listpack's length as an RDB string, right
    // before the listpack; the unused room in front is then dropped.
    let (len, n) = rdb_len(total);
    let start = PREFIX.checked_sub(1 + n)?;
    let room = out.get_mut(start..PREFIX)?;
    let (kind, rest) = room.split_first_mut()?;
    *kind = RDB_TYPE_HASH_LISTPACK;
    rest.copy_from_slice(len.get(..n)?);
    out.drain(..start);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// Room for the object type and the longest RDB length (1 + 5 bytes).
const PREFIX: usize = 6;
/// A listpack's header: total bytes (4) and element count (2).
const LP_HEADER: usize = 6;
/// The RDB version (2) and the CRC-64 (8).
const TRAILER: usize = 10;

/// An RDB length (`rdbSaveLen`) for lengths that fit 32 bits: its bytes and
/// how many of them are used (1, 2 or 5).
fn rdb_len(len: u32) -> ([u8; 5], usize) {
    let mut b = [0u8; 5];
    if len < 1 << 6 {
        b[0] = len as u8;
        (b, 1)
    } else if len < 1 << 14 {
        b[0] = 0x40 | (len >> 8) as u8;
        b[1] = len as u8;
        (b, 2)
    } else {
        b[0] = 0x80;
        b[1..].copy_from_slice(&len.to_be_bytes());
        (b, 5)
    }
}

/// The integer `lpAppend` stores a string as: a canonical decimal `i64`
/// (no sign but `-`, no leading zero, not `-0`), as `lpStringToInt64` decides.
fn as_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] if s.len() <= 20 => {}
        _ => return None,
    }
    // Accumulate negatively: i64::MIN has no positive counterpart.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// An entry's encoding header (up to 9 bytes, on the stack) and its data:
/// integers in the smallest form, strings after a 1, 2 or 5-byte length.
fn encoding(s: &[u8]) -> ([u8; 9], usize, &[u8]) {
    let mut h = [0u8; 9];
    if let Some(v) = as_int(s) {
        let le = v.to_le_bytes();
        let n = if (0..=127).contains(&v) {
            h[0] = v as u8;
            1
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1FFF;
            h[0] = 0xC0 | (u >> 8) as u8;
            h[1] = u as u8;
            2
        } else {
            let (tag, width) = if (-32768..=32767).contains(&v) {
                (0xF1, 2)
            } else if (-8_388_608..=8_388_607).contains(&v) {
                (0xF2, 3)
            } else if i32::try_from(v).is_ok() {
                (0xF3, 4)
            } else {
                (0xF4, 8)
            };
            h[0] = tag;
            for (dst, src) in h.iter_mut().skip(1).zip(le.iter().take(width)) {
                *dst = *src;
            }
            1 + width
        };
        return (h, n, &[]);
    }
    let len = s.len();
    let n = if len < 64 {
        h[0] = 0x80 | len as u8;
        1
    } else if len < 4096 {
        h[0] = 0xE0 | (len >> 8) as u8;
        h[1] = len as u8;
        2
    } else {
        h[0] = 0xF0;
        for (dst, src) in h.iter_mut().skip(1).zip((len as u32).to_le_bytes()) {
            *dst = src;
        }
        5
    };
    (h, n, s)
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Appends one entry: encoding, data, then its length backwards (`lpEncodeBacklen`).
fn entry(out: &mut Vec<u8>, s: &[u8]) {
    // Most entries of a record: a string under 64 bytes that cannot be an
    // integer (it starts with neither a digit nor '-'). Its header and its
    // back-length are one byte each.
    if let (Ok(len @ 0..=63), false) = (
        u8::try_from(s.len()),
        s.first().is_some_and(|c| c.is_ascii_digit() || *c == b'-'),
    ) {
        out.push(0x80 | len);
        out.extend_from_slice(s);
        out.push(len + 1);
        return;
    }
    let (head, n, data) = encoding(s);
    out.extend_from_slice(head.get(..n).unwrap_or_default());
    out.extend_from_slice(data);
    backlen(out, n + data.len());
}

/// An entry's length, written after it to walk the listpack backwards: the
/// most significant 7-bit group first, every byte but the first with its high
/// bit set.
fn backlen(out: &mut Vec<u8>, l: usize) {
    let n = backlen_size(l);
    for i in (0..n).rev() {
        let group = ((l >> (7 * i)) & 0x7F) as u8;
        out.push(if i == n - 1 { group } else { group | 0x80 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: ListpackLimits = ListpackLimits {
        max_entries: 128,
        max_value: 10_000,
    };

    fn pairs(flat: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
        flat.chunks(2)
            .map(|p| (p[0].as_bytes().to_vec(), p[1].as_bytes().to_vec()))
            .collect()
    }

    fn payload(flat: &[&str], limits: ListpackLimits) -> Option<Vec<u8>> {
        let p = pairs(flat);
        let slices: Vec<(&[u8], &[u8])> = p
            .iter()
            .map(|(f, v)| (f.as_slice(), v.as_slice()))
            .collect();
        hash_payload(&slices, limits)
    }

    // The vectors are `DUMP` output of Redis 7.0.15 (rdbcompression no,
    // hash-max-listpack-value 10000) after `HSET` of the same pairs.
    #[test]
    fn the_short_string_path_encodes_as_the_general_one() {
        let long63 = "x".repeat(63);
        let long64 = "x".repeat(64);
        let cases: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"abc",
            long63.as_bytes(),
            long64.as_bytes(),
            b"-x",
            b"-",
            b"0",
            b"007",
            b"12",
            b"x1",
            b" 1",
            "caf\u{e9}".as_bytes(),
            &[0xFF, 0x00, 0x80],
        ];
        for s in cases {
            let mut fast = Vec::new();
            entry(&mut fast, s);
            let (head, n, data) = encoding(s);
            let mut general = head[..n].to_vec();
            general.extend_from_slice(data);
            backlen(&mut general, n + data.len());
            assert_eq!(fast, general, "{s:?}");
        }
    }

    #[test]
    fn same_bytes_as_redis_dump_small() {
        let got = payload(&["a", "1", "b", "x"], WIDE);
        assert_eq!(
            got.as_deref(),
            Some(&include_bytes!("dump_vectors/vec_small.bin")[..])
        );
    }

    #[test]
    fn same_bytes_as_redis_dump_integers() {
        let flat = [
            "i0",
            "0",
            "i1",
            "127",
            "i2",
            "128",
            "i3",
            "-1",
            "i4",
            "4095",
            "i5",
            "-4096",
            "i6",
            "4096",
            "i7",
            "-32768",
            "i8",
            "32767",
            "i9",
            "32768",
            "ia",
            "-8388608",
            "ib",
            "8388607",
            "ic",
            "8388608",
            "id",
            "-2147483648",
            "ie",
            "2147483647",
            "if",
            "2147483648",
            "ig",
            "9223372036854775807",
            "ih",
            "-9223372036854775808",
            "ii",
            "9223372036854775808",
            "ij",
            "007",
            "ik",
            "-0",
            "il",
            "+5",
            "im",
            "12345678901234567890123",
        ];
        let got = payload(&flat, WIDE);
        assert_eq!(
            got.as_deref(),
            Some(&include_bytes!("dump_vectors/vec_ints.bin")[..])
        );
    }

    #[test]
    fn same_bytes_as_redis_dump_long_strings() {
        let (a, b, c, d) = (
            "x".repeat(63),
            "y".repeat(64),
            "z".repeat(4095),
            "w".repeat(4096),
        );
        let flat = ["k63", &a, "k64", &b, "k4095", &c, "k4096", &d, "e", ""];
        let got = payload(&flat, WIDE);
        assert_eq!(
            got.as_deref(),
            Some(&include_bytes!("dump_vectors/vec_long.bin")[..])
        );
    }

    #[test]
    fn crc64_is_the_one_redis_checks() {
        // The check value of Redis's own crc64.c test ("123456789").
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn a_listpack_of_16_kib_or_more_has_a_five_byte_length() {
        let big = "v".repeat(20_000);
        let limits = ListpackLimits {
            max_entries: 128,
            max_value: 1 << 20,
        };
        let got = payload(&["k", &big], limits).expect("a listpack");
        let (body, crc) = got.split_at(got.len() - 8);
        assert_eq!(u64::from_le_bytes(crc.try_into().unwrap()), crc64(body));
        assert_eq!(&body[..2], &[RDB_TYPE_HASH_LISTPACK, 0x80]);
        let len = u32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
        let listpack = &body[6..body.len() - 2];
        assert_eq!(listpack.len(), len);
        assert_eq!(
            u32::from_le_bytes(listpack[..4].try_into().unwrap()) as usize,
            len
        );
        assert_eq!(u16::from_le_bytes(listpack[4..6].try_into().unwrap()), 2);
        assert_eq!(listpack.last(), Some(&0xFF));
        assert_eq!(&body[body.len() - 2..], &RDB_VERSION.to_le_bytes());
    }

    #[test]
    fn outside_the_listpack_limits_there_is_no_payload() {
        let limits = ListpackLimits {
            max_entries: 2,
            max_value: 4,
        };
        assert!(payload(&["a", "1", "b", "2"], limits).is_some());
        assert!(payload(&["a", "1", "b", "2", "c", "3"], limits).is_none());
        assert!(payload(&["a", "12345"], limits).is_none());
        assert!(payload(&["abcde", "1"], limits).is_none());
        assert!(payload(&[], limits).is_none());
        // A repeated name is one field for HSET; leave that to HashSet.
        assert!(payload(&["a", "1", "a", "2"], limits).is_none());
    }

    #[test]
    fn integer_forms_follow_lp_string_to_int64() {
        assert_eq!(as_int(b"0"), Some(0));
        assert_eq!(as_int(b"-1"), Some(-1));
        assert_eq!(as_int(b"-9223372036854775808"), Some(i64::MIN));
        for s in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1e3",
            b"9223372036854775808",
        ] {
            assert_eq!(as_int(s), None, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn back_lengths_at_their_boundaries() {
        for (l, want) in [
            (127usize, vec![127u8]),
            (128, vec![1, 0x80]),
            (16382, vec![127, 0xFE]),
            (16383, vec![0, 0xFF, 0xFF]),
            (2_097_151, vec![0, 0xFF, 0xFF, 0xFF]),
        ] {
            let mut bytes = Vec::new();
            backlen(&mut bytes, l);
            assert_eq!(bytes, want, "{l}");
        }
    }
}
