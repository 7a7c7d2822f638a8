//! The meta file: what one stored entry is, on disk.
//!
//! # Format (version 1)
//!
//! All integers are little endian. The file is exactly as long as its fields say; anything
//! else is an error.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic, the bytes `LRDM` |
//! | 4 | 1 | version, `1` |
//! | 5 | 1 | flags: bit 0 the body is inline, bit 1 a variance hash follows the primary hash |
//! | 6 | 2 | user tag length `t` (bytes, UTF-8) |
//! | 8 | 8 | entry id (names the body file `<name>.<id as hex>`) |
//! | 16 | 8 | created, unix seconds |
//! | 24 | 8 | body length `b` |
//! | 32 | 4 | chunk size `c` (0 only for an empty body) |
//! | 36 | 4 | chunk count `n` = `ceil(b / c)` |
//! | 40 | 4 | serialized `CacheMeta` length `m` |
//! | 44 | 16 | primary hash |
//! | 60 | 16 | variance hash, if flagged |
//! | … | `t` | user tag |
//! | … | `m` | the `CacheMeta`, as [`CacheMeta::serialize`](larder_storage::CacheMeta::serialize) wrote it |
//! | … | `4 n` | CRC-32 (IEEE) of each body chunk, in order |
//! | … | `b` | the body, if inline |
//! | end − 4 | 4 | CRC-32 of every byte before it |
//!
//! [`decode`] is total: any input gives `Ok` or a [`FormatError`], and it allocates nothing
//! beyond the key's user tag: every length is checked against the input before it is used.

use std::fmt;

use larder_storage::{CompactCacheKey, HashBinary};

/// The magic bytes that open every meta file.
pub const MAGIC: &[u8; 4] = b"LRDM";
/// The meta file format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Bytes before the variance hash: the fixed header plus the primary hash.
pub const FIXED_LEN: usize = 60;
const FLAG_INLINE: u8 = 1;
const FLAG_VARIANCE: u8 = 2;

/// Why a meta file could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatError(pub &'static str);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid disk cache meta file: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

/// The decoded fields of a meta file, borrowing the variable parts from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaFile<'a> {
    /// The entry id, naming its body file.
    pub id: u64,
    /// When the entry was written, unix seconds.
    pub created: u64,
    /// The body length.
    pub body_len: u64,
    /// The size of a checksummed body chunk.
    pub chunk_size: u32,
    /// The key the entry was written under.
    pub key: CompactCacheKey,
    /// The serialized `CacheMeta`.
    pub meta: &'a [u8],
    /// The CRC-32 of each body chunk, 4 little-endian bytes each.
    pub chunk_crcs: &'a [u8],
    /// The body, when stored inline.
    pub inline_body: Option<&'a [u8]>,
}

impl MetaFile<'_> {
    /// The CRC-32 of chunk `i`, if there is such a chunk.
    pub fn chunk_crc(&self, i: usize) -> Option<u32> {
        let bytes = self.chunk_crcs.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }

    /// The number of body chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunk_crcs.len() / 4
    }
}

/// The number of chunks of `chunk_size` a body of `body_len` bytes has.
pub fn chunk_count(body_len: u64, chunk_size: u32) -> u64 {
    if body_len == 0 || chunk_size == 0 {
        0
    } else {
        body_len.div_ceil(u64::from(chunk_size))
    }
}

/// Encodes a meta file. `chunk_crcs` must have one entry per chunk of the body.
///
/// # Panics
///
/// When the user tag is longer than 65 535 bytes or the serialized meta longer than 4 GiB, or
/// when `chunk_crcs` does not match the body length (callers build both).
#[allow(clippy::too_many_arguments)] // One argument per field of the format.
pub fn encode(
    id: u64,
    created: u64,
    body_len: u64,
    chunk_size: u32,
    key: &CompactCacheKey,
    meta: &[u8],
    chunk_crcs: &[u32],
    inline_body: Option<&[u8]>,
) -> Vec<u8> {
    assert_eq!(
        chunk_crcs.len() as u64,
        chunk_count(body_len, chunk_size),
        "encode: one checksum per chunk"
    );
    let tag = key.user_tag.as_bytes();
    let tag_len = u16::try_from(tag.len()).expect("encode: user tag fits 16 bits");
    let meta_len = u32::try_from(meta.len()).expect("encode: meta fits 32 bits");
    let count = u32::try_from(chunk_crcs.len()).expect("encode: chunk count fits 32 bits");
    let mut flags = 0;
    if inline_body.is_some() {
        flags |= FLAG_INLINE;
    }
    if key.variance.is_some() {
        flags |= FLAG_VARIANCE;
    }
    let inline_len = inline_body.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(
        FIXED_LEN + 16 + tag.len() + meta.len() + 4 * chunk_crcs.len() + inline_len + 4,
    );
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&tag_len.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&created.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&chunk_size.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&key.primary);
    if let Some(variance) = &key.variance {
        out.extend_from_slice(&**variance);
    }
    out.extend_from_slice(tag);
    out.extend_from_slice(meta);
    for crc in chunk_crcs {
        out.extend_from_slice(&crc.to_le_bytes());
    }
    if let Some(body) = inline_body {
        out.extend_from_slice(body);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A bounds-checked cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(FormatError("truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        self.take(N)?
            .try_into()
            .map_err(|_| FormatError("truncated"))
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// The fields up to and including the key, from the start of a meta file (its first few
/// hundred bytes are enough): what the start-up scan reads. No checksum is verified.
///
/// # Errors
///
/// The bytes are not the start of a version 1 meta file.
pub fn decode_header(bytes: &[u8]) -> Result<(MetaFile<'_>, usize), FormatError> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != MAGIC {
        return Err(FormatError("bad magic"));
    }
    if r.array::<1>()?[0] != VERSION {
        return Err(FormatError("unsupported version"));
    }
    let flags = r.array::<1>()?[0];
    if flags & !(FLAG_INLINE | FLAG_VARIANCE) != 0 {
        return Err(FormatError("unknown flags"));
    }
    let tag_len = usize::from(r.u16()?);
    let id = r.u64()?;
    let created = r.u64()?;
    let body_len = r.u64()?;
    let chunk_size = r.u32()?;
    let count = r.u32()?;
    let meta_len = r.u32()?;
    if u64::from(count) != chunk_count(body_len, chunk_size) || (body_len > 0 && chunk_size == 0) {
        return Err(FormatError("bad chunk count"));
    }
    let primary: HashBinary = r.array()?;
    let variance = if flags & FLAG_VARIANCE != 0 {
        Some(Box::new(r.array::<16>()?))
    } else {
        None
    };
    let tag = std::str::from_utf8(r.take(tag_len)?).map_err(|_| FormatError("bad user tag"))?;
    // The rest is only described here; `decode` checks it against the whole file.
    let key = CompactCacheKey {
        primary,
        variance,
        user_tag: tag.into(),
    };
    let file = MetaFile {
        id,
        created,
        body_len,
        chunk_size,
        key,
        meta: &[],
        chunk_crcs: &[],
        inline_body: (flags & FLAG_INLINE != 0).then_some(&[][..]),
    };
    let _ = (meta_len, count);
    Ok((file, r.pos))
}

/// Decodes a whole meta file and verifies its checksum.
///
/// # Errors
///
/// A truncated, corrupt or foreign file, or one of another format version.
pub fn decode(bytes: &[u8]) -> Result<MetaFile<'_>, FormatError> {
    let (mut file, key_end) = decode_header(bytes)?;
    let Some(body_end) = bytes.len().checked_sub(4) else {
        return Err(FormatError("truncated"));
    };
    let stored = u32::from_le_bytes(
        bytes[body_end..]
            .try_into()
            .map_err(|_| FormatError("truncated"))?,
    );
    if crc32fast::hash(&bytes[..body_end]) != stored {
        return Err(FormatError("checksum mismatch"));
    }
    // Both lengths come from the fixed header, already bounds-checked by `decode_header`.
    let meta_len = u32::from_le_bytes(
        bytes[40..44]
            .try_into()
            .map_err(|_| FormatError("truncated"))?,
    );
    let count = u32::from_le_bytes(
        bytes[36..40]
            .try_into()
            .map_err(|_| FormatError("truncated"))?,
    );
    let mut r = Reader {
        bytes: &bytes[..body_end],
        pos: key_end,
    };
    file.meta = r.take(meta_len as usize)?;
    file.chunk_crcs = r.take(
        (count as usize)
            .checked_mul(4)
            .ok_or(FormatError("truncated"))?,
    )?;
    if file.inline_body.is_some() {
        let len = usize::try_from(file.body_len).map_err(|_| FormatError("truncated"))?;
        let body = r.take(len)?;
        if !chunks_match(body, file.chunk_size, file.chunk_crcs) {
            return Err(FormatError("inline body checksum mismatch"));
        }
        file.inline_body = Some(body);
    }
    if r.pos != body_end {
        return Err(FormatError("trailing bytes"));
    }
    Ok(file)
}

/// Whether `body`, cut into chunks of `chunk_size`, matches the CRC-32s in `crcs`.
pub fn chunks_match(body: &[u8], chunk_size: u32, crcs: &[u8]) -> bool {
    if chunk_size == 0 {
        return body.is_empty() && crcs.is_empty();
    }
    let chunks = body.chunks(chunk_size as usize);
    chunks.len() * 4 == crcs.len()
        && chunks
            .zip(crcs.chunks_exact(4))
            .all(|(chunk, crc)| crc32fast::hash(chunk).to_le_bytes() == crc)
}

/// The CRC-32 of each `chunk_size` chunk of `body`.
pub fn chunk_crcs(body: &[u8], chunk_size: u32) -> Vec<u32> {
    if chunk_size == 0 {
        return Vec::new();
    }
    body.chunks(chunk_size as usize)
        .map(crc32fast::hash)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = CompactCacheKey> {
        (
            any::<[u8; 16]>(),
            proptest::option::of(any::<[u8; 16]>()),
            ".{0,6}",
        )
            .prop_map(|(primary, variance, tag)| CompactCacheKey {
                primary,
                variance: variance.map(Box::new),
                user_tag: tag.into(),
            })
    }

    fn encoded(
        id: u64,
        key: &CompactCacheKey,
        meta: &[u8],
        body: &[u8],
        chunk: u32,
        inline: bool,
    ) -> Vec<u8> {
        let crcs = chunk_crcs(body, chunk);
        encode(
            id,
            7,
            body.len() as u64,
            chunk,
            key,
            meta,
            &crcs,
            inline.then_some(body),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn round_trip_and_every_truncation_or_flip_is_detected(
            id in any::<u64>(),
            key in key(),
            meta in proptest::collection::vec(any::<u8>(), 0..40),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            chunk in 1u32..64,
            inline in any::<bool>(),
            flip in any::<(usize, u8)>(),
        ) {
            let bytes = encoded(id, &key, &meta, &body, chunk, inline);
            let file = decode(&bytes).unwrap();
            prop_assert_eq!(file.id, id);
            prop_assert_eq!(&file.key, &key);
            prop_assert_eq!(file.meta, &meta[..]);
            prop_assert_eq!(file.body_len, body.len() as u64);
            prop_assert_eq!(file.inline_body, inline.then_some(&body[..]));
            prop_assert_eq!(file.chunk_count(), chunk_crcs(&body, chunk).len());
            prop_assert_eq!(decode_header(&bytes).unwrap().0.key, key);
            for len in 0..bytes.len() {
                prop_assert!(decode(&bytes[..len]).is_err());
            }
            let mut flipped = bytes.clone();
            let at = flip.0 % flipped.len();
            flipped[at] ^= flip.1.max(1);
            prop_assert!(decode(&flipped).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
            let _ = decode_header(&bytes);
            let mut prefixed = b"LRDM\x01".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = decode(&prefixed);
            let _ = decode_header(&prefixed);
        }
    }

    #[test]
    fn huge_lengths_are_errors_not_allocations() {
        let key = CompactCacheKey {
            primary: [1; 16],
            variance: None,
            user_tag: "".into(),
        };
        let mut bytes = encoded(1, &key, b"m", b"body", 64, true);
        // Claim a 4 GiB meta and fix the file checksum: still an error.
        bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bytes), Err(FormatError("truncated")));
        assert_eq!(decode(b"LRDM\x02"), Err(FormatError("unsupported version")));
        assert_eq!(decode(b"XXXX"), Err(FormatError("bad magic")));
    }
}
