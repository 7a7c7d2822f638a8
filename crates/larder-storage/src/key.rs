//! Cache keys: [`CacheKey`], its compact form [`CompactCacheKey`], and the Blake2b-128 hashing
//! they share.
//!
//! # How the hashes combine
//!
//! - The **primary** hash is `Blake2b-128(namespace ‖ primary)`, the two byte strings
//!   concatenated with no separator (unless an override was set with
//!   [`CacheKey::set_primary_bin_override`]).
//! - The optional **variance** hash identifies one variant of the primary resource (derived
//!   from the request headers the response `Vary`s on); it is computed by the caller.
//! - The **combined** hash, under which a storage files an entry, is
//!   `Blake2b-128(primary_bin ‖ variance_bin)` when there is a variance, and the primary hash
//!   itself otherwise.
//!
//! "Blake2b-128" is Blake2b with a 16-byte digest length parameter (not Blake2b-512
//! truncated). These rules match pingora-cache exactly, so keys, purge tooling and saved
//! eviction state interoperate with it.

use std::fmt;

use blake2::{Blake2b, Digest, digest::consts::U16};
use serde::{Deserialize, Serialize};

/// A 128-bit hash, the binary form of a cache key.
pub type HashBinary = [u8; 16];

type Blake2b128 = Blake2b<U16>;

/// Hashes `data` with Blake2b-128.
///
/// ```
/// let h = larder_storage::hash_key("aa");
/// assert_eq!(hex::encode(h), "ac10f2aef117729f8dad056b3059eb7e");
/// ```
pub fn hash_key(data: impl AsRef<[u8]>) -> HashBinary {
    let mut hasher = Blake2b128::new();
    hasher.update(data.as_ref());
    hasher.finalize().into()
}

/// The first byte of the Blake2b-128 hash of `key`, e.g. to pick one of 256 buckets.
pub fn hash_u8(key: &str) -> u8 {
    hash_key(key)[0]
}

/// Parses 32 hex digits into a [`HashBinary`]; `None` for any other input.
///
/// ```
/// let h = larder_storage::key::str2hex("ac10f2aef117729f8dad056b3059eb7e").unwrap();
/// assert_eq!(h, larder_storage::hash_key("aa"));
/// assert!(larder_storage::key::str2hex("ac10").is_none());
/// ```
pub fn str2hex(s: &str) -> Option<HashBinary> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn combine(primary: &HashBinary, variance: Option<&HashBinary>) -> HashBinary {
    match variance {
        Some(variance) => {
            let mut hasher = Blake2b128::new();
            hasher.update(primary);
            hasher.update(variance);
            hasher.finalize().into()
        }
        None => *primary,
    }
}

/// Hash accessors shared by [`CacheKey`] and [`CompactCacheKey`], for code generic over both.
pub trait CacheHashKey {
    /// The primary hash.
    fn primary_bin(&self) -> HashBinary;
    /// The variance hash, if any.
    fn variance_bin(&self) -> Option<HashBinary>;
    /// The user tag.
    fn user_tag(&self) -> &str;
    /// The hash a storage files the entry under: primary and variance combined.
    fn combined_bin(&self) -> HashBinary {
        combine(&self.primary_bin(), self.variance_bin().as_ref())
    }
    /// The primary hash as 32 lowercase hex digits.
    fn primary(&self) -> String {
        hex::encode(self.primary_bin())
    }
    /// The variance hash as 32 lowercase hex digits, if any.
    fn variance(&self) -> Option<String> {
        self.variance_bin().map(hex::encode)
    }
    /// The combined hash as 32 lowercase hex digits.
    fn combined(&self) -> String {
        hex::encode(self.combined_bin())
    }
}

/// The key of a cached asset: a namespace, a primary key (typically the URL), an optional
/// variance hash (from `Vary`), and a user tag.
///
/// Two requests with the same key share the same cached entry. See the [module docs](self)
/// for how the parts are hashed.
///
/// ```
/// use larder_storage::CacheKey;
///
/// let mut key = CacheKey::new("", "aa", "");
/// assert_eq!(key.primary(), "ac10f2aef117729f8dad056b3059eb7e");
/// key.set_variance_key([0u8; 16]);
/// assert_eq!(key.combined(), "004174d3e75a811a5b44c46b3856f3ee");
/// ```
#[derive(Clone, Debug, Default)]
pub struct CacheKey {
    namespace: Vec<u8>,
    primary: Vec<u8>,
    primary_bin_override: Option<HashBinary>,
    /// The primary hash, computed once: namespace and primary key never change.
    primary_bin_cache: std::sync::OnceLock<HashBinary>,
    variance: Option<HashBinary>,
    /// A tag that travels with the key (for example to account usage per user); it is not
    /// part of any hash.
    pub user_tag: String,
    /// Data embedding code attaches to the key; never persisted.
    pub extensions: http::Extensions,
}

impl CacheKey {
    /// Creates a key from its namespace, primary key and user tag.
    pub fn new(
        namespace: impl Into<Vec<u8>>,
        primary: impl Into<Vec<u8>>,
        user_tag: impl Into<String>,
    ) -> Self {
        CacheKey {
            namespace: namespace.into(),
            primary: primary.into(),
            primary_bin_override: None,
            primary_bin_cache: std::sync::OnceLock::new(),
            variance: None,
            user_tag: user_tag.into(),
            extensions: http::Extensions::new(),
        }
    }

    /// The namespace bytes.
    pub fn namespace(&self) -> &[u8] {
        &self.namespace
    }

    /// The namespace as UTF-8, if it is.
    pub fn namespace_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.namespace).ok()
    }

    /// The primary key bytes.
    pub fn primary_key(&self) -> &[u8] {
        &self.primary
    }

    /// The primary key as UTF-8, if it is.
    pub fn primary_key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.primary).ok()
    }

    /// Uses `hash` as the primary hash instead of hashing namespace and primary key.
    pub fn set_primary_bin_override(&mut self, hash: HashBinary) {
        self.primary_bin_override = Some(hash);
    }

    /// Sets the variance hash (the key of one variant of the resource).
    pub fn set_variance_key(&mut self, variance: HashBinary) {
        self.variance = Some(variance);
    }

    /// The variance hash, if any.
    pub fn get_variance_key(&self) -> Option<&HashBinary> {
        self.variance.as_ref()
    }

    /// Removes the variance, so the key addresses the primary slot.
    pub fn remove_variance_key(&mut self) {
        self.variance = None;
    }

    /// The primary hash: `Blake2b-128(namespace ‖ primary)` or the override. Computed once
    /// per key and then remembered.
    pub fn primary_bin(&self) -> HashBinary {
        if let Some(hash) = self.primary_bin_override {
            return hash;
        }
        *self.primary_bin_cache.get_or_init(|| {
            let mut hasher = Blake2b128::new();
            hasher.update(&self.namespace);
            hasher.update(&self.primary);
            hasher.finalize().into()
        })
    }

    /// The variance hash, if any.
    pub fn variance_bin(&self) -> Option<HashBinary> {
        self.variance
    }

    /// The combined hash (see the [module docs](self)).
    pub fn combined_bin(&self) -> HashBinary {
        combine(&self.primary_bin(), self.variance.as_ref())
    }

    /// The primary hash as lowercase hex.
    pub fn primary(&self) -> String {
        hex::encode(self.primary_bin())
    }

    /// The variance hash as lowercase hex, if any.
    pub fn variance(&self) -> Option<String> {
        self.variance.map(hex::encode)
    }

    /// The combined hash as lowercase hex.
    pub fn combined(&self) -> String {
        hex::encode(self.combined_bin())
    }

    /// The compact form: hashes and user tag only.
    pub fn to_compact(&self) -> CompactCacheKey {
        CompactCacheKey {
            primary: self.primary_bin(),
            variance: self.variance.map(Box::new),
            user_tag: self.user_tag.clone().into_boxed_str(),
        }
    }
}

impl CacheHashKey for CacheKey {
    fn primary_bin(&self) -> HashBinary {
        CacheKey::primary_bin(self)
    }
    fn variance_bin(&self) -> Option<HashBinary> {
        self.variance
    }
    fn user_tag(&self) -> &str {
        &self.user_tag
    }
}

/// Remembers the primary hashes of recently seen keys, so that a server seeing the same keys
/// again and again computes each key's Blake2b once (a Blake2b costs a couple of thousand
/// instructions; finding a remembered hash, a few hundred).
///
/// [`fill`](Self::fill) gives a key the hash it would compute itself, so nothing changes but
/// the cost. The memo is bounded: a shard that reaches its share of the capacity starts over.
///
/// ```
/// use larder_storage::key::PrimaryHashMemo;
/// use larder_storage::CacheKey;
///
/// let memo = PrimaryHashMemo::new(1024);
/// for _ in 0..3 {
///     let mut key = CacheKey::new("", "aa", "");
///     memo.fill(&mut key);
///     assert_eq!(key.primary(), "ac10f2aef117729f8dad056b3059eb7e");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PrimaryHashMemo {
    shards: Box<[parking_lot::RwLock<MemoShard>]>,
    /// Picks the shard and the slot of `namespace ‖ primary`.
    state: ahash::RandomState,
    per_shard: usize,
}

/// Slots by the 64-bit hash of `namespace ‖ primary`: the bytes (to rule out collisions) and
/// their primary hash.
type MemoShard = std::collections::HashMap<u64, (Box<[u8]>, HashBinary), ahash::RandomState>;

const MEMO_SHARDS: usize = 16;

impl PrimaryHashMemo {
    /// A memo of about `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..MEMO_SHARDS)
                .map(|_| parking_lot::RwLock::new(MemoShard::default()))
                .collect(),
            state: ahash::RandomState::new(),
            per_shard: capacity.div_ceil(MEMO_SHARDS).max(1),
        }
    }

    /// Gives `key` its primary hash from the memo, or computes it and remembers it. A key
    /// with a [primary override](CacheKey::set_primary_bin_override) or a hash already
    /// computed is left alone.
    pub fn fill(&self, key: &mut CacheKey) {
        if key.primary_bin_override.is_some() || key.primary_bin_cache.get().is_some() {
            return;
        }
        let (namespace, primary) = (&key.namespace[..], &key.primary[..]);
        let tag = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = self.state.build_hasher();
            // The primary hash covers the two parts concatenated, so the memo does too.
            h.write(namespace);
            h.write(primary);
            h.finish()
        };
        #[allow(clippy::cast_possible_truncation)] // any bits pick a shard
        let shard = &self.shards[(tag as usize) % MEMO_SHARDS];
        let same = |bytes: &[u8]| {
            bytes.len() == namespace.len() + primary.len()
                && bytes[..namespace.len()] == *namespace
                && bytes[namespace.len()..] == *primary
        };
        let known = shard
            .read()
            .get(&tag)
            .filter(|(bytes, _)| same(bytes))
            .map(|(_, hash)| *hash);
        if let Some(hash) = known {
            let _ = key.primary_bin_cache.set(hash);
            return;
        }
        let hash = key.primary_bin();
        let bytes: Box<[u8]> = [&key.namespace[..], &key.primary[..]].concat().into();
        let mut shard = shard.write();
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(tag, (bytes, hash));
    }
}

impl fmt::Debug for PrimaryHashMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimaryHashMemo")
            .field(
                "keys",
                &self.shards.iter().map(|s| s.read().len()).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// A small, hashable, serialisable form of a [`CacheKey`]: the primary hash, the optional
/// variance hash and the user tag.
///
/// Eviction managers track these, and [`Storage::purge`](crate::Storage::purge) takes one.
///
/// ```
/// use larder_storage::CacheKey;
///
/// let compact = CacheKey::new("", "aa", "alice").to_compact();
/// assert_eq!(compact.to_string(), "ac10f2aef117729f8dad056b3059eb7e, user_tag: alice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CompactCacheKey {
    /// The primary hash.
    pub primary: HashBinary,
    /// The variance hash, boxed so the common no-variance key stays small.
    pub variance: Option<Box<HashBinary>>,
    /// The user tag.
    pub user_tag: Box<str>,
}

impl CompactCacheKey {
    /// The combined hash (see the [module docs](self)).
    pub fn combined_bin(&self) -> HashBinary {
        combine(&self.primary, self.variance.as_deref())
    }

    /// The primary hash as lowercase hex.
    pub fn primary(&self) -> String {
        hex::encode(self.primary)
    }

    /// The variance hash as lowercase hex, if any.
    pub fn variance(&self) -> Option<String> {
        self.variance.as_deref().map(hex::encode)
    }

    /// The combined hash as lowercase hex.
    pub fn combined(&self) -> String {
        hex::encode(self.combined_bin())
    }
}

impl CacheHashKey for CompactCacheKey {
    fn primary_bin(&self) -> HashBinary {
        self.primary
    }
    fn variance_bin(&self) -> Option<HashBinary> {
        self.variance.as_deref().copied()
    }
    fn user_tag(&self) -> &str {
        &self.user_tag
    }
}

impl fmt::Display for CompactCacheKey {
    /// `"<hex primary>[, variance: <hex variance>], user_tag: <tag>"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.primary))?;
        if let Some(variance) = &self.variance {
            write!(f, ", variance: {}", hex::encode(**variance))?;
        }
        write!(f, ", user_tag: {}", self.user_tag)
    }
}

impl From<&CacheKey> for CompactCacheKey {
    fn from(key: &CacheKey) -> Self {
        key.to_compact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_hash_matches_reference_vector() {
        let key = CacheKey::new("", "aa", "1");
        assert_eq!(key.primary(), "ac10f2aef117729f8dad056b3059eb7e");
        assert_eq!(key.variance(), None);
        assert_eq!(key.combined(), "ac10f2aef117729f8dad056b3059eb7e");
        assert_eq!(key.primary_bin(), hash_key("aa"));
    }

    #[test]
    fn combined_hash_with_variance_matches_reference_vector() {
        let mut key = CacheKey::new("", "aa", "1");
        key.set_variance_key([0u8; 16]);
        assert_eq!(key.primary(), "ac10f2aef117729f8dad056b3059eb7e");
        assert_eq!(
            key.variance().as_deref(),
            Some("00000000000000000000000000000000")
        );
        assert_eq!(key.combined(), "004174d3e75a811a5b44c46b3856f3ee");
        let compact = key.to_compact();
        assert_eq!(compact.combined(), "004174d3e75a811a5b44c46b3856f3ee");
        assert_eq!(compact.combined_bin(), key.combined_bin());
        key.remove_variance_key();
        assert_eq!(key.combined(), "ac10f2aef117729f8dad056b3059eb7e");
    }

    #[test]
    fn namespace_and_primary_concatenate_without_separator() {
        assert_eq!(
            CacheKey::new("a", "a", "").primary_bin(),
            CacheKey::new("", "aa", "").primary_bin()
        );
        assert_ne!(
            CacheKey::new("a", "b", "").primary_bin(),
            CacheKey::new("", "a", "").primary_bin()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn memo_gives_the_hash_the_key_computes(
            keys in proptest::collection::vec(("[a-c]{0,2}", "[a-c]{0,3}"), 1..40),
        ) {
            // A tiny memo, so shards start over and the parts' boundaries collide.
            let memo = PrimaryHashMemo::new(4);
            for (ns, primary) in keys {
                let mut key = CacheKey::new(ns.as_str(), primary.as_str(), "");
                memo.fill(&mut key);
                let fresh = CacheKey::new(ns.as_str(), primary.as_str(), "");
                proptest::prop_assert_eq!(key.primary_bin(), fresh.primary_bin());
            }
        }
    }

    #[test]
    fn memo_leaves_an_override_alone() {
        let memo = PrimaryHashMemo::new(16);
        let mut plain = CacheKey::new("", "aa", "");
        memo.fill(&mut plain);
        let mut key = CacheKey::new("", "aa", "");
        key.set_primary_bin_override([7u8; 16]);
        memo.fill(&mut key);
        assert_eq!(key.primary_bin(), [7u8; 16]);
    }

    #[test]
    fn primary_override_replaces_hash() {
        let mut key = CacheKey::new("", "aa", "");
        key.set_primary_bin_override([7u8; 16]);
        assert_eq!(key.primary_bin(), [7u8; 16]);
        assert_eq!(key.to_compact().primary, [7u8; 16]);
    }

    #[test]
    fn compact_key_display_includes_variance() {
        let mut key = CacheKey::new("", "aa", "t");
        key.set_variance_key([0u8; 16]);
        assert_eq!(
            key.to_compact().to_string(),
            "ac10f2aef117729f8dad056b3059eb7e, variance: 00000000000000000000000000000000, user_tag: t"
        );
    }

    #[test]
    fn str2hex_rejects_bad_input() {
        assert_eq!(
            str2hex("ac10f2aef117729f8dad056b3059eb7e"),
            Some(hash_key("aa"))
        );
        assert_eq!(str2hex("zz10f2aef117729f8dad056b3059eb7e"), None);
        assert_eq!(str2hex("ac10f2aef117729f8dad056b3059eb7e00"), None);
        assert_eq!(str2hex(""), None);
    }
}
