//! [`CacheMeta`]: what a cache knows about a stored response besides its body.
//!
//! The meta is stored next to the body in a versioned binary encoding, described in
//! [`CacheMeta::serialize`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;

use crate::{HashBinary, ResponseHeader, Result};

mod format;
mod inner;

use inner::CacheMetaInner;

/// The metadata of a cached response: its freshness timestamps, stale-serving windows, the
/// response header, the variance it was stored under, and a slot for embedding code's data.
///
/// All times are [`SystemTime`]s and every time-dependent method takes `now` as a parameter,
/// so callers decide the clock.
///
/// Clones share one copy of the fields (a reference count), so a storage can keep a decoded
/// meta and hand out clones on every hit; the first change to a shared clone copies it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::StatusCode;
/// use larder_storage::{CacheMeta, ResponseHeader};
///
/// let now = SystemTime::now();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 30, 300,
///     ResponseHeader::new(StatusCode::OK));
/// assert!(meta.is_fresh(now));
/// assert!(!meta.is_fresh(now + Duration::from_secs(61)));
/// assert!(meta.serve_stale_while_revalidate(now + Duration::from_secs(61)));
/// assert_eq!(meta.fresh_sec(), 60);
///
/// let bytes = meta.serialize()?;
/// let back = CacheMeta::deserialize(&bytes)?;
/// assert_eq!(back, meta);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct CacheMeta(Arc<CacheMetaInner>);

impl CacheMeta {
    /// Creates a meta. `updated` starts equal to `created`.
    pub fn new(
        fresh_until: SystemTime,
        created: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
        header: ResponseHeader,
    ) -> Self {
        CacheMeta(Arc::new(CacheMetaInner {
            fresh_until,
            created,
            updated: created,
            epoch_override: None,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            variance: None,
            header,
            extensions: http::Extensions::new(),
        }))
    }

    /// The fields for writing; copies them first if another clone shares them.
    fn inner_mut(&mut self) -> &mut CacheMetaInner {
        Arc::make_mut(&mut self.0)
    }

    /// When the response was first stored (its age counts from here unless revalidated).
    pub fn created(&self) -> SystemTime {
        self.0.created
    }

    /// Sets the creation time. Revalidation keeps the old entry's `created` in the new meta.
    pub fn set_created(&mut self, created: SystemTime) {
        self.inner_mut().created = created;
    }

    /// When the response was last revalidated; equals [`created`](Self::created) if never.
    pub fn updated(&self) -> SystemTime {
        self.0.updated
    }

    /// Sets the last revalidation time.
    pub fn set_updated(&mut self, updated: SystemTime) {
        self.inner_mut().updated = updated;
    }

    /// The reference point for [`age`](Self::age) and [`fresh_sec`](Self::fresh_sec): the
    /// epoch override if set, otherwise [`updated`](Self::updated).
    pub fn epoch(&self) -> SystemTime {
        self.0.epoch_override.unwrap_or(self.0.updated)
    }

    /// The epoch override, if set.
    pub fn epoch_override(&self) -> Option<SystemTime> {
        self.0.epoch_override
    }

    /// Makes `epoch` the reference point for age, e.g. to account for the age a response
    /// already had upstream (RFC 9111 §4.2.3).
    pub fn set_epoch_override(&mut self, epoch: SystemTime) {
        self.inner_mut().epoch_override = Some(epoch);
    }

    /// Removes the epoch override.
    pub fn remove_epoch_override(&mut self) {
        self.inner_mut().epoch_override = None;
    }

    /// Until when the response is fresh (inclusive).
    pub fn fresh_until(&self) -> SystemTime {
        self.0.fresh_until
    }

    /// Sets until when the response is fresh.
    pub fn set_fresh_until(&mut self, fresh_until: SystemTime) {
        self.inner_mut().fresh_until = fresh_until;
    }

    /// Whether the response is fresh at `now` (`fresh_until >= now`).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.0.fresh_until >= now
    }

    /// The freshness lifetime in whole seconds: `fresh_until - epoch()`, 0 if negative.
    pub fn fresh_sec(&self) -> u64 {
        self.0
            .fresh_until
            .duration_since(self.epoch())
            .map_or(0, |d| d.as_secs())
    }

    /// The age at `now`: `now - epoch()`, zero if the epoch is in the future.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.epoch()).unwrap_or_default()
    }

    /// Seconds after `fresh_until` during which a stale response may be served while it is
    /// revalidated (RFC 5861 §3).
    pub fn stale_while_revalidate_sec(&self) -> u32 {
        self.0.stale_while_revalidate_sec
    }

    /// Seconds after `fresh_until` during which a stale response may be served when the
    /// origin fails (RFC 5861 §4).
    pub fn stale_if_error_sec(&self) -> u32 {
        self.0.stale_if_error_sec
    }

    /// Whether `now` is within the stale-while-revalidate window: the window is non-zero and
    /// `fresh_until + window >= now` (an overflowing sum counts as infinite). Does not check
    /// that the response is stale.
    pub fn serve_stale_while_revalidate(&self, now: SystemTime) -> bool {
        self.can_serve_stale(self.0.stale_while_revalidate_sec, now)
    }

    /// Whether `now` is within the stale-if-error window, with the same rule as
    /// [`serve_stale_while_revalidate`](Self::serve_stale_while_revalidate).
    pub fn serve_stale_if_error(&self, now: SystemTime) -> bool {
        self.can_serve_stale(self.0.stale_if_error_sec, now)
    }

    fn can_serve_stale(&self, sec: u32, now: SystemTime) -> bool {
        if sec == 0 {
            return false;
        }
        self.0
            .fresh_until
            .checked_add(Duration::from_secs(u64::from(sec)))
            .is_none_or(|until| until >= now)
    }

    /// Sets both stale windows to zero.
    pub fn disable_serve_stale(&mut self) {
        self.inner_mut().stale_while_revalidate_sec = 0;
        self.inner_mut().stale_if_error_sec = 0;
    }

    /// The variance hash the response was stored under, if any.
    pub fn variance(&self) -> Option<HashBinary> {
        self.0.variance
    }

    /// Sets the variance hash.
    pub fn set_variance(&mut self, variance: HashBinary) {
        self.inner_mut().variance = Some(variance);
    }

    /// Sets the variance hash (the same as [`set_variance`](Self::set_variance)).
    pub fn set_variance_key(&mut self, variance: HashBinary) {
        self.set_variance(variance);
    }

    /// Removes the variance hash.
    pub fn remove_variance(&mut self) {
        self.inner_mut().variance = None;
    }

    /// The stored response header.
    pub fn response_header(&self) -> &ResponseHeader {
        &self.0.header
    }

    /// The stored response header, mutably.
    pub fn response_header_mut(&mut self) -> &mut ResponseHeader {
        &mut self.inner_mut().header
    }

    /// A copy of the stored response header.
    pub fn response_header_copy(&self) -> ResponseHeader {
        self.0.header.clone()
    }

    /// The stored header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.header.headers
    }

    /// Data that embedding code or a storage attaches to the meta. Never persisted: a
    /// deserialized meta has none.
    pub fn extensions(&self) -> &http::Extensions {
        &self.0.extensions
    }

    /// The extensions, mutably.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.inner_mut().extensions
    }

    /// Encodes the meta (everything but the extensions) in the versioned binary format.
    ///
    /// # Format (version 1)
    ///
    /// Integers marked *varint* are unsigned LEB128 (at most 10 bytes). A *time* is a signed
    /// count of nanoseconds written as the zigzag-varint whole seconds (rounded down) followed
    /// by a varint of the remaining nanoseconds (below 10⁹). `created` counts from the Unix
    /// epoch; every other time counts from `created`, so a TTL takes a few bytes.
    ///
    /// | field | encoding |
    /// |---|---|
    /// | magic | the 4 bytes `LRDM` |
    /// | version | 1 byte, `1` |
    /// | `created` | time since the Unix epoch |
    /// | `fresh_until`, `updated` | 2 times since `created` |
    /// | `stale_while_revalidate_sec`, `stale_if_error_sec` | 2 varints (≤ `u32::MAX`) |
    /// | status | varint, 100..=999 |
    /// | HTTP version | 1 byte: 0 = 0.9, 1 = 1.0, 2 = 1.1, 3 = 2, 4 = 3 |
    /// | field count | varint |
    /// | each field | varint name length, name bytes, varint value length, value bytes |
    /// | optional field count | varint |
    /// | each optional field | varint tag, varint length, payload |
    ///
    /// The blob must end exactly there, so any truncation is detected. Optional field tags:
    /// `1` = variance (16 bytes), `2` = epoch override (a time since `created`). A decoder
    /// skips tags it does not know, so later writers can add optional fields that older
    /// readers ignore; a change to the meaning of an existing field takes a new version.
    ///
    /// A typical meta (five header fields) takes about 35 bytes beyond its header names and
    /// values.
    ///
    /// # Errors
    ///
    /// [`Error::EncodeMeta`](crate::Error::EncodeMeta) if a time is more than 2⁶³ seconds
    /// away from its reference time.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        format::encode(&self.0)
    }

    /// Decodes a meta written by [`serialize`](Self::serialize). The extensions come back
    /// empty.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMeta`](crate::Error::InvalidMeta) for truncated or malformed input
    /// and [`Error::UnsupportedMetaVersion`](crate::Error::UnsupportedMetaVersion) for an
    /// unknown version. Never panics, and allocates at most in proportion to the input.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        format::decode(bytes, None).map(|inner| CacheMeta(Arc::new(inner)))
    }

    /// Like [`deserialize`](Self::deserialize), but the header values share `bytes`' buffer
    /// instead of being copied.
    ///
    /// # Errors
    ///
    /// As [`deserialize`](Self::deserialize).
    pub fn deserialize_shared(bytes: &Bytes) -> Result<Self> {
        format::decode(bytes, Some(bytes)).map(|inner| CacheMeta(Arc::new(inner)))
    }
}

impl PartialEq for CacheMeta {
    /// Compares everything that [`serialize`](Self::serialize) persists; the extensions are
    /// ignored.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        a.fresh_until == b.fresh_until
            && a.created == b.created
            && a.updated == b.updated
            && a.epoch_override == b.epoch_override
            && a.stale_while_revalidate_sec == b.stale_while_revalidate_sec
            && a.stale_if_error_sec == b.stale_if_error_sec
            && a.variance == b.variance
            && a.header == b.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn meta_at(now: SystemTime) -> CacheMeta {
        CacheMeta::new(
            now + Duration::from_secs(100),
            now,
            10,
            20,
            ResponseHeader::new(StatusCode::OK),
        )
    }

    #[test]
    fn freshness_is_inclusive_of_fresh_until() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let meta = meta_at(now);
        assert!(meta.is_fresh(now + Duration::from_secs(100)));
        assert!(!meta.is_fresh(now + Duration::from_secs(101)));
        assert_eq!(meta.fresh_sec(), 100);
        assert_eq!(meta.updated(), meta.created());
    }

    #[test]
    fn stale_windows_extend_past_fresh_until() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut meta = meta_at(now);
        assert!(meta.serve_stale_while_revalidate(now + Duration::from_secs(110)));
        assert!(!meta.serve_stale_while_revalidate(now + Duration::from_secs(111)));
        assert!(meta.serve_stale_if_error(now + Duration::from_mins(2)));
        assert!(!meta.serve_stale_if_error(now + Duration::from_secs(121)));
        meta.disable_serve_stale();
        assert!(!meta.serve_stale_while_revalidate(now));
        assert!(!meta.serve_stale_if_error(now));
    }

    #[test]
    fn stale_window_overflow_counts_as_infinite() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let meta = CacheMeta::new(far, far, u32::MAX, 0, ResponseHeader::default());
        // Whether or not the platform can represent `far + u32::MAX`, the window is open.
        assert!(meta.serve_stale_while_revalidate(far));
        assert!(!meta.serve_stale_if_error(far));
    }

    #[test]
    fn age_counts_from_epoch_override_then_updated() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut meta = meta_at(now);
        assert_eq!(
            meta.age(now + Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(meta.age(now - Duration::from_secs(5)), Duration::ZERO);
        meta.set_updated(now + Duration::from_secs(3));
        assert_eq!(
            meta.age(now + Duration::from_secs(5)),
            Duration::from_secs(2)
        );
        assert_eq!(meta.fresh_sec(), 97);
        meta.set_epoch_override(now - Duration::from_secs(10));
        assert_eq!(meta.epoch(), now - Duration::from_secs(10));
        assert_eq!(meta.age(now), Duration::from_secs(10));
        assert_eq!(meta.fresh_sec(), 110);
        meta.remove_epoch_override();
        assert_eq!(meta.epoch(), meta.updated());
    }

    #[test]
    fn extensions_are_not_persisted() {
        let mut meta = meta_at(SystemTime::UNIX_EPOCH);
        meta.extensions_mut().insert(5u32);
        let back = CacheMeta::deserialize(&meta.serialize().unwrap()).unwrap();
        assert_eq!(back, meta);
        assert!(back.extensions().get::<u32>().is_none());
    }
}
