//! Deterministic bodies: what the origin sends for a path, generated on the fly and checked on
//! the fly, so a 1 GiB object needs neither a stored copy nor a hash of one.
//!
//! A body is a run of 64 KiB blocks: a pseudo-random block rotated by the path's seed, each
//! block stamped in its first 8 bytes with its index and the seed. A byte out of place within a block, a block out
//! of place, another path's body, a short or a long body: each compares unequal.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use larder_proxy::ProxyBody;

/// The block size of every generated body.
pub(crate) const BLOCK: usize = 64 * 1024;

/// A body's generator: the seed and its block.
pub(crate) struct Content {
    seed: u64,
    base: Vec<u8>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Content {
    /// The generator for `path` (FNV-1a of the path is the seed).
    pub(crate) fn for_path(path: &str) -> Self {
        // One pseudo-random block for all, rotated by the seed: two copies, not a generator
        // run per path (which in a debug build costs more than the request).
        static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let seed = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let table = TABLE.get_or_init(|| {
            let mut state = 0x5eed;
            let mut table = Vec::with_capacity(BLOCK);
            while table.len() < BLOCK {
                table.extend_from_slice(&splitmix(&mut state).to_le_bytes());
            }
            table
        });
        let turn = usize::try_from(seed % BLOCK as u64).unwrap();
        let mut base = Vec::with_capacity(BLOCK);
        base.extend_from_slice(&table[turn..]);
        base.extend_from_slice(&table[..turn]);
        Content { seed, base }
    }

    fn tag(&self, block: u64) -> [u8; 8] {
        (block ^ self.seed).to_le_bytes()
    }

    /// `len` bytes of the body from `offset`.
    pub(crate) fn range(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut at = offset;
        while out.len() < len {
            let block = at / BLOCK as u64;
            let start = usize::try_from(at % BLOCK as u64).unwrap();
            let n = (BLOCK - start).min(len - out.len());
            let mut piece = self.base[start..start + n].to_vec();
            for (i, b) in piece
                .iter_mut()
                .enumerate()
                .take(8usize.saturating_sub(start))
            {
                *b = self.tag(block)[start + i];
            }
            out.extend_from_slice(&piece);
            at += n as u64;
        }
        out
    }

    /// Whether `bytes` are the body's bytes from `offset`.
    pub(crate) fn matches(&self, offset: u64, bytes: &[u8]) -> bool {
        let mut at = offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let block = at / BLOCK as u64;
            let start = usize::try_from(at % BLOCK as u64).unwrap();
            let n = (BLOCK - start).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            let tag = self.tag(block);
            for (i, b) in piece.iter().enumerate() {
                let o = start + i;
                if o >= 8 {
                    if piece[i..] != self.base[o..start + n] {
                        return false;
                    }
                    break;
                }
                if *b != tag[o] {
                    return false;
                }
            }
            at += n as u64;
            rest = tail;
        }
        true
    }

    /// The whole body of `len` bytes as a stream of blocks, `delay` before every `every`-th
    /// block after the first: generated as it is sent, never held whole.
    pub(crate) fn body(self, len: u64, delay: Duration, every: u64) -> ProxyBody {
        let stream = futures_util::stream::unfold((self, 0u64), move |(c, at)| async move {
            if at >= len {
                return None;
            }
            let block = at / BLOCK as u64;
            if block > 0 && block.is_multiple_of(every.max(1)) && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let n = usize::try_from((len - at).min(BLOCK as u64)).unwrap();
            let chunk = Bytes::from(c.range(at, n));
            Some((
                Ok::<_, std::io::Error>(http_body::Frame::data(chunk)),
                (c, at + n as u64),
            ))
        });
        larder_proxy::body::boxed(http_body_util::StreamBody::new(stream))
    }
}

/// What a streamed read saw: checked on the fly against the origin's body.
#[derive(Debug)]
pub(crate) struct Read {
    /// The status code.
    pub(crate) status: u16,
    /// The response head.
    pub(crate) headers: http::HeaderMap,
    /// Bytes received.
    pub(crate) len: u64,
    /// Whether every byte received is the expected one at its offset.
    pub(crate) intact: bool,
    /// The error that ended the body, if any.
    pub(crate) error: Option<String>,
}

impl Read {
    /// Whether the body came whole (no error) and is exactly the `expected` bytes long and
    /// correct.
    pub(crate) fn complete(&self, expected: u64) -> bool {
        self.error.is_none() && self.intact && self.len == expected
    }

    /// The parsed last `Cache-Status` member's `hit`.
    pub(crate) fn hit(&self) -> bool {
        let joined: Vec<&str> = self
            .headers
            .get_all("cache-status")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        larder_testkit::CacheStatus::parse(&joined.join(", "))
            .ok()
            .and_then(|c| c.last().map(|m| m.hit))
            .unwrap_or(false)
    }

    /// `Content-Length`, when sent.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

/// The `Host` every request names. The cache key includes the host, and each start of the
/// binary listens on a new port: as behind a load balancer, the name stays the same.
pub(crate) const HOST: &str = "disk.test";

/// GETs `url` (with `Host: disk.test` and `headers`) and checks the body against `content` from
/// `offset` as it arrives. A request that fails before a head is `status` 0.
pub(crate) async fn read(
    client: &larder_testkit::HttpClient,
    url: &str,
    headers: &[(&str, &str)],
    content: &Content,
    offset: u64,
) -> Read {
    let mut req = http::Request::builder().uri(url).header("host", HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(http_body_util::Full::new(Bytes::new())).unwrap();
    let resp = match client.request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            return Read {
                status: 0,
                headers: http::HeaderMap::new(),
                len: 0,
                intact: true,
                error: Some(e.to_string()),
            };
        }
    };
    let (parts, mut body) = resp.into_parts();
    let mut out = Read {
        status: parts.status.as_u16(),
        headers: parts.headers,
        len: 0,
        intact: true,
        error: None,
    };
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                out.error = Some(e.to_string());
                break;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.intact &= content.matches(offset + out.len, &data);
                    out.len += data.len() as u64;
                }
            }
        }
    }
    out
}

#[test]
fn content_checks_what_it_generates() {
    let c = Content::for_path("/a");
    let whole = c.range(0, 3 * BLOCK + 10);
    assert!(c.matches(0, &whole));
    assert!(c.matches(5, &whole[5..]));
    assert!(c.matches(BLOCK as u64 + 3, &whole[BLOCK + 3..2 * BLOCK + 20]));
    assert_eq!(c.range(70_000, 100), whole[70_000..70_100]);
    // Out of place by a block, by a byte, or another path's body: all differ.
    assert!(!c.matches(BLOCK as u64, &whole[..BLOCK]));
    assert!(!c.matches(1, &whole[..100]));
    assert!(!Content::for_path("/b").matches(0, &whole[..100]));
    let mut flipped = whole.clone();
    flipped[2 * BLOCK + 4] ^= 1;
    assert!(!c.matches(0, &flipped));
}
