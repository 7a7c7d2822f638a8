//! The versioned binary encoding of [`CacheMeta`](super::CacheMeta); the layout is documented
//! on [`CacheMeta::serialize`](super::CacheMeta::serialize).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::inner::CacheMetaInner;
use crate::codec::{Reader, put_bytes, put_varint};
use crate::{Error, HashBinary, ResponseHeader, Result};

const MAGIC: &[u8; 4] = b"LRDM";
const VERSION: u8 = 1;

const TAG_VARIANCE: u64 = 1;
const TAG_EPOCH_OVERRIDE: u64 = 2;

/// `HeaderMap` refuses more than 32 768 entries (and panics on a larger capacity), so the
/// decoder rejects more fields than this up front.
const MAX_FIELDS: u64 = 16 * 1024;

pub(super) fn encode(meta: &CacheMetaInner) -> Result<Vec<u8>> {
    let header = &meta.header;
    let header_bytes: usize = header
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(64 + header_bytes);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    // Times are written relative to `created`: a TTL or a revalidation offset is a few bytes.
    let created = to_nanos(meta.created);
    put_nanos(&mut out, created)?;
    put_nanos(&mut out, to_nanos(meta.fresh_until) - created)?;
    put_nanos(&mut out, to_nanos(meta.updated) - created)?;
    put_varint(&mut out, u64::from(meta.stale_while_revalidate_sec));
    put_varint(&mut out, u64::from(meta.stale_if_error_sec));
    put_varint(&mut out, u64::from(header.status.as_u16()));
    out.push(version_to_byte(header.version));
    put_varint(&mut out, header.headers.len() as u64);
    for (name, value) in &header.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    let optional = u64::from(meta.variance.is_some()) + u64::from(meta.epoch_override.is_some());
    put_varint(&mut out, optional);
    if let Some(variance) = &meta.variance {
        put_varint(&mut out, TAG_VARIANCE);
        put_bytes(&mut out, variance);
    }
    if let Some(epoch) = meta.epoch_override {
        let mut payload = Vec::with_capacity(16);
        put_nanos(&mut payload, to_nanos(epoch) - created)?;
        put_varint(&mut out, TAG_EPOCH_OVERRIDE);
        put_bytes(&mut out, &payload);
    }
    Ok(out)
}

/// Header fields a decoded meta has room for beyond its own.
const SPARE_FIELDS: usize = 4;

pub(super) fn decode(bytes: &[u8], shared: Option<&Bytes>) -> Result<CacheMetaInner> {
    let mut r = Reader::new(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return Err(Error::invalid_meta("bad magic"));
    }
    let version = r.byte()?;
    if version != VERSION {
        return Err(Error::UnsupportedMetaVersion(version));
    }
    let created_nanos = read_nanos(&mut r)?;
    let created = from_nanos(created_nanos)?;
    let fresh_until = from_nanos(created_nanos + read_nanos(&mut r)?)?;
    let updated = from_nanos(created_nanos + read_nanos(&mut r)?)?;
    let stale_while_revalidate_sec = r.u32()?;
    let stale_if_error_sec = r.u32()?;
    let status = u16::try_from(r.varint()?)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(Error::invalid_meta("bad status code"))?;
    let version = byte_to_version(r.byte()?)?;
    let count = r.varint()?;
    // Every field takes at least two bytes, so a count beyond that is corrupt; checking it
    // first keeps a garbage count from reserving memory.
    if count > MAX_FIELDS || count > (r.remaining() / 2) as u64 {
        return Err(Error::invalid_meta("bad header field count"));
    }
    let count =
        usize::try_from(count).map_err(|_| Error::invalid_meta("bad header field count"))?;
    // Room for the few fields a cache adds when it answers from the entry (`Age`,
    // `Cache-Status`, `Via`): a clone keeps the index's size, so they fit without regrowing it.
    let mut headers = HeaderMap::with_capacity(count + SPARE_FIELDS);
    for _ in 0..count {
        let name = r.len_prefixed()?;
        let name = HeaderName::from_bytes(r.slice(name))
            .map_err(|_| Error::invalid_meta("bad header name"))?;
        let value = r.len_prefixed()?;
        let value = match shared {
            Some(shared) => HeaderValue::from_maybe_shared(shared.slice(value)),
            None => HeaderValue::from_bytes(r.slice(value)),
        }
        .map_err(|_| Error::invalid_meta("bad header value"))?;
        headers.append(name, value);
    }
    let mut variance = None;
    let mut epoch_override = None;
    let optional = r.varint()?;
    // Each optional field takes at least two bytes.
    if optional > (r.remaining() / 2) as u64 {
        return Err(Error::invalid_meta("bad optional field count"));
    }
    for _ in 0..optional {
        let tag = r.varint()?;
        let payload = r.len_prefixed()?;
        match tag {
            TAG_VARIANCE => {
                let hash: HashBinary = r
                    .slice(payload)
                    .try_into()
                    .map_err(|_| Error::invalid_meta("bad variance length"))?;
                variance = Some(hash);
            }
            TAG_EPOCH_OVERRIDE => {
                let mut sub = Reader::new(r.slice(payload));
                epoch_override = Some(from_nanos(created_nanos + read_nanos(&mut sub)?)?);
                if sub.remaining() != 0 {
                    return Err(Error::invalid_meta("bad epoch override length"));
                }
            }
            // Optional fields from a later writer: skipped on purpose.
            _ => {}
        }
    }
    if r.remaining() != 0 {
        return Err(Error::invalid_meta("trailing bytes"));
    }
    Ok(CacheMetaInner {
        fresh_until,
        created,
        updated,
        epoch_override,
        stale_while_revalidate_sec,
        stale_if_error_sec,
        variance,
        header: ResponseHeader {
            status,
            version,
            headers,
        },
        extensions: http::Extensions::new(),
    })
}

fn version_to_byte(version: Version) -> u8 {
    match version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        // HTTP/1.1, and any version a later `http` adds, is stored as 1.1.
        _ => 2,
    }
}

fn byte_to_version(byte: u8) -> Result<Version> {
    Ok(match byte {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        3 => Version::HTTP_2,
        4 => Version::HTTP_3,
        _ => return Err(Error::invalid_meta("bad http version")),
    })
}

const NANOS: i128 = 1_000_000_000;

/// Signed nanoseconds since the Unix epoch (`SystemTime` spans at most ±2⁶⁴ s, well within
/// `i128`).
fn to_nanos(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

fn from_nanos(n: i128) -> Result<SystemTime> {
    let out_of_range = || Error::invalid_meta("time out of range");
    let abs = n.unsigned_abs();
    let secs = u64::try_from(abs / NANOS.unsigned_abs()).map_err(|_| out_of_range())?;
    let sub = u32::try_from(abs % NANOS.unsigned_abs()).map_err(|_| out_of_range())?;
    let d = Duration::new(secs, sub);
    if n >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(d)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(d)
    }
    .ok_or_else(out_of_range)
}

/// Writes a signed nanosecond count as zigzag-varint whole seconds (rounded down) plus a
/// varint of the remaining nanoseconds (below 10⁹).
fn put_nanos(out: &mut Vec<u8>, n: i128) -> Result<()> {
    let secs = i64::try_from(n.div_euclid(NANOS)).map_err(|_| Error::EncodeMeta {
        reason: "time too far from the reference time",
    })?;
    // Zigzag maps small magnitudes of either sign to small varints.
    #[allow(clippy::cast_sign_loss)]
    let zigzag = ((secs << 1) ^ (secs >> 63)) as u64;
    put_varint(out, zigzag);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    put_varint(out, n.rem_euclid(NANOS) as u64);
    Ok(())
}

fn read_nanos(r: &mut Reader<'_>) -> Result<i128> {
    let zigzag = r.varint()?;
    #[allow(clippy::cast_possible_wrap)]
    let secs = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
    let nanos = r.u32()?;
    if nanos >= 1_000_000_000 {
        return Err(Error::invalid_meta("bad nanoseconds"));
    }
    Ok(i128::from(secs) * NANOS + i128::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheMeta;
    use proptest::prelude::*;

    fn time() -> impl Strategy<Value = SystemTime> {
        (-(1i64 << 40)..(1i64 << 40), 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
            let base = if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            };
            base + Duration::from_nanos(u64::from(nanos))
        })
    }

    fn header() -> impl Strategy<Value = ResponseHeader> {
        let field = (
            "[a-z][a-z0-9-]{0,15}",
            proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..24),
        );
        (
            100u16..1000,
            0u8..5,
            proptest::collection::vec(field, 0..12),
        )
            .prop_map(|(status, version, fields)| {
                let mut headers = HeaderMap::new();
                for (name, value) in fields {
                    headers.append(
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_bytes(&value).unwrap(),
                    );
                }
                ResponseHeader {
                    status: StatusCode::from_u16(status).unwrap(),
                    version: byte_to_version(version).unwrap(),
                    headers,
                }
            })
    }

    prop_compose! {
        fn meta()(
            fresh_until in time(),
            created in time(),
            updated in time(),
            swr in any::<u32>(),
            sie in any::<u32>(),
            header in header(),
            variance in proptest::option::of(any::<[u8; 16]>()),
            epoch in proptest::option::of(time()),
        ) -> CacheMeta {
            let mut meta = CacheMeta::new(fresh_until, created, swr, sie, header);
            meta.set_updated(updated);
            if let Some(v) = variance {
                meta.set_variance(v);
            }
            if let Some(e) = epoch {
                meta.set_epoch_override(e);
            }
            meta
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(meta in meta()) {
            let bytes = meta.serialize().unwrap();
            prop_assert_eq!(&CacheMeta::deserialize(&bytes).unwrap(), &meta);
            let shared = Bytes::from(bytes);
            prop_assert_eq!(&CacheMeta::deserialize_shared(&shared).unwrap(), &meta);
        }

    }

    proptest! {
        // Each case decodes every prefix of a blob: fewer cases keep it fast.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_truncation_is_an_error(meta in meta()) {
            let bytes = meta.serialize().unwrap();
            for len in 0..bytes.len() {
                prop_assert!(CacheMeta::deserialize(&bytes[..len]).is_err());
            }
        }

        #[test]
        fn corrupted_bytes_never_panic(meta in meta(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut bytes = meta.serialize().unwrap();
            for (i, b) in flips {
                let i = i % bytes.len();
                bytes[i] ^= b;
            }
            let _ = CacheMeta::deserialize(&bytes);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = CacheMeta::deserialize(&bytes);
            let mut prefixed = MAGIC.to_vec();
            prefixed.push(VERSION);
            prefixed.extend_from_slice(&bytes);
            let _ = CacheMeta::deserialize(&prefixed);
        }
    }

    fn check_err(bytes: &[u8], expect: &str) {
        let err = CacheMeta::deserialize(bytes).unwrap_err();
        assert_eq!(err.to_string(), expect, "input {bytes:?}");
    }

    #[test]
    fn malformed_inputs_give_clear_errors() {
        check_err(b"", "invalid cache meta: truncated");
        check_err(b"XXXX\x01", "invalid cache meta: bad magic");
        check_err(b"LRDM\x09", "unsupported cache meta version 9");
        check_err(
            b"LRDM\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
            "invalid cache meta: varint overflow",
        );
        // fresh_until, created, updated = epoch; swr = 2^32 does not fit.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x80\x80\x80\x80\x10",
            "invalid cache meta: value exceeds u32",
        );
        // Nanoseconds of 10^9 are out of range.
        check_err(
            b"LRDM\x01\x00\x80\x94\xeb\xdc\x03",
            "invalid cache meta: bad nanoseconds",
        );
        // Status 99.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\x63",
            "invalid cache meta: bad status code",
        );
        // Status 200, version byte 9.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x09",
            "invalid cache meta: bad http version",
        );
        // A huge field count with no fields behind it.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x02\xff\xff\xff\xff\x0f",
            "invalid cache meta: bad header field count",
        );
        // One field whose name is not a token.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x02\x01\x01 \x00\x00",
            "invalid cache meta: bad header name",
        );
        // One field whose value holds a control character.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x02\x01\x01a\x01\x01\x00",
            "invalid cache meta: bad header value",
        );
        // Trailing bytes after zero optional fields.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x02\x00\x00\x00",
            "invalid cache meta: trailing bytes",
        );
        // A variance of the wrong length.
        check_err(
            b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x02\x00\x01\x01\x02ab",
            "invalid cache meta: bad variance length",
        );
    }

    #[test]
    fn unknown_optional_fields_are_skipped() {
        let mut bytes = b"LRDM\x01\x00\x00\x00\x00\x00\x00\x00\x00\xc8\x01\x02\x00\x02".to_vec();
        bytes.extend_from_slice(b"\x63\x03xyz");
        bytes.extend_from_slice(b"\x01\x10");
        bytes.extend_from_slice(&[7u8; 16]);
        let meta = CacheMeta::deserialize(&bytes).unwrap();
        assert_eq!(meta.variance(), Some([7u8; 16]));
        assert_eq!(meta.created(), SystemTime::UNIX_EPOCH);
        assert_eq!(meta.response_header().status, StatusCode::OK);
        assert_eq!(meta.response_header().version, Version::HTTP_11);
    }

    #[test]
    fn times_before_the_epoch_round_trip() {
        let t = SystemTime::UNIX_EPOCH - Duration::new(5, 250);
        let meta = CacheMeta::new(t, t, 0, 0, ResponseHeader::default());
        let back = CacheMeta::deserialize(&meta.serialize().unwrap()).unwrap();
        assert_eq!(back.created(), t);
    }
}
