//! [`Found`]: the meta hash of an entry as Redis returns it, checked before anything is
//! read from it.

use bytes::Bytes;

use crate::config::{MAX_CHUNK_SIZE, MAX_CHUNKS};
use crate::error::{Error, Result};

/// The meta hash of an entry, checked.
pub(crate) struct Found {
    pub(crate) version: String,
    pub(crate) meta: Bytes,
    pub(crate) len: usize,
    pub(crate) chunk_size: usize,
    /// The body, when it is stored in the meta hash.
    pub(crate) inline: Option<Bytes>,
}

impl Found {
    /// Checks the fields `v m l c n b` of a meta hash; `Ok(None)` when there is no entry.
    pub(crate) fn parse(fields: Vec<Option<Bytes>>) -> Result<Option<Found>> {
        let corrupt = |reason| Error::CorruptEntry { reason };
        let number = |field: &Option<Bytes>, what| -> Result<usize> {
            field
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .ok_or(corrupt(what))
        };
        let [version, meta, len, chunk_size, count, body]: [Option<Bytes>; 6] =
            fields
                .try_into()
                .map_err(|_| corrupt("meta hash reply has the wrong shape"))?;
        let Some(version) = version else {
            return Ok(None);
        };
        let version = std::str::from_utf8(&version)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or(corrupt("version id is not alphanumeric"))?
            .to_owned();
        let meta = meta.ok_or(corrupt("meta is missing"))?;
        let len = number(&len, "body length is not a number")?;
        let chunk_size = number(&chunk_size, "chunk size is not a number")?;
        let count = number(&count, "chunk count is not a number")?;
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(corrupt("chunk size out of range"));
        }
        if count > MAX_CHUNKS {
            return Err(corrupt("too many chunks"));
        }
        let inline = if count == 0 {
            // The body is in the meta hash (absent when empty).
            let body = body.unwrap_or_default();
            if body.len() != len || len > chunk_size {
                return Err(corrupt("inline body has the wrong length"));
            }
            Some(body)
        } else {
            if count != len.div_ceil(chunk_size) || len <= chunk_size {
                return Err(corrupt("chunk count does not match the body length"));
            }
            None
        };
        Ok(Some(Found {
            version,
            meta,
            len,
            chunk_size,
            inline,
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fields(values: [Option<&[u8]>; 6]) -> Vec<Option<Bytes>> {
        values
            .into_iter()
            .map(|v| v.map(Bytes::copy_from_slice))
            .collect()
    }

    #[test]
    fn consistent_replies_parse() {
        let inline = Found::parse(fields([
            Some(b"abc123"),
            Some(b"meta"),
            Some(b"4"),
            Some(b"4"),
            Some(b"0"),
            Some(b"0123"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((inline.len, inline.chunk_size), (4, 4));
        assert_eq!(inline.inline.as_deref(), Some(&b"0123"[..]));
        let chunked = Found::parse(fields([
            Some(b"v"),
            Some(b"meta"),
            Some(b"10"),
            Some(b"4"),
            Some(b"3"),
            None,
        ]))
        .unwrap()
        .unwrap();
        assert!(chunked.inline.is_none());
        let empty = Found::parse(fields([
            Some(b"v"),
            Some(b"m"),
            Some(b"0"),
            Some(b"4"),
            Some(b"0"),
            None,
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(empty.inline.as_deref(), Some(&b""[..]));
        assert!(
            Found::parse(fields([None, None, None, None, None, None]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn inconsistent_replies_are_errors() {
        let reply = |len: &'static [u8], n: &'static [u8], body: Option<&'static [u8]>| {
            Found::parse(fields([
                Some(b"v1"),
                Some(b"m"),
                Some(len),
                Some(b"4"),
                Some(n),
                body,
            ]))
        };
        assert!(reply(b"10", b"2", None).is_err());
        assert!(
            reply(b"4", b"1", None).is_err(),
            "one chunk is stored inline"
        );
        assert!(reply(b"3", b"0", Some(b"0123")).is_err());
        assert!(
            reply(b"5", b"0", Some(b"01234")).is_err(),
            "inline body over a chunk"
        );
        assert!(reply(b"2", b"0", None).is_err());
        assert!(
            Found::parse(fields([
                Some(b"v/1"),
                Some(b"m"),
                Some(b"0"),
                Some(b"4"),
                Some(b"0"),
                None
            ]))
            .is_err()
        );
        assert!(Found::parse(vec![None; 2]).is_err());
    }

    fn number() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            (0usize..100_000).prop_map(|n| Some(n.to_string().into_bytes())),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever another writer left under the prefix, a meta hash decodes to an entry, a
        /// miss or an error, and never panics; an entry it accepts is self-consistent.
        #[test]
        fn any_reply_decodes_without_panicking(
            version in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
            len in number(),
            chunk_size in number(),
            count in number(),
            body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            extra in 0usize..2,
        ) {
            let mut reply: Vec<Option<Bytes>> = vec![
                version.map(Bytes::from),
                Some(Bytes::from_static(b"meta")),
                len.map(Bytes::from),
                chunk_size.map(Bytes::from),
                count.map(Bytes::from),
                body.map(Bytes::from),
            ];
            reply.extend(std::iter::repeat_n(None, extra));
            if let Ok(Some(found)) = Found::parse(reply) {
                prop_assert!(found.chunk_size > 0);
                match &found.inline {
                    Some(body) => prop_assert!(body.len() == found.len && found.len <= found.chunk_size),
                    None => prop_assert!(found.len > found.chunk_size),
                }
            }
        }
    }
}
