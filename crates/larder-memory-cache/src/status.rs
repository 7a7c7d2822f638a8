//! [`CacheStatus`]: how a lookup was answered.

use std::time::Duration;

/// How a [`MemoryCache`](crate::MemoryCache) or [`RTCache`](crate::RTCache) lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// The key was found and is fresh.
    Hit,
    /// The key was not found.
    Miss,
    /// The key was found but its TTL had run out.
    Expired,
    /// The key was not found at first, but another caller's lookup for it finished while this
    /// caller waited on the lock, and its value was returned.
    LockHit,
    /// An expired value was returned anyway; the [`Duration`] is how long ago it expired.
    Stale(Duration),
}

impl CacheStatus {
    /// A short lowercase name for logs and metrics: `hit`, `miss`, `expired`, `lock_hit`, `stale`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Expired => "expired",
            Self::LockHit => "lock_hit",
            Self::Stale(_) => "stale",
        }
    }

    /// Whether a value was served from the cache ([`Hit`](Self::Hit), [`LockHit`](Self::LockHit)
    /// or [`Stale`](Self::Stale)).
    pub fn is_hit(&self) -> bool {
        matches!(self, Self::Hit | Self::LockHit | Self::Stale(_))
    }

    /// How long ago the served value expired, if it was served stale.
    pub fn stale(&self) -> Option<Duration> {
        match self {
            Self::Stale(d) => Some(*d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_predicates() {
        let d = Duration::from_secs(3);
        let cases = [
            (CacheStatus::Hit, "hit", true, None),
            (CacheStatus::Miss, "miss", false, None),
            (CacheStatus::Expired, "expired", false, None),
            (CacheStatus::LockHit, "lock_hit", true, None),
            (CacheStatus::Stale(d), "stale", true, Some(d)),
        ];
        for (status, name, hit, stale) in cases {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.is_hit(), hit, "{status:?}");
            assert_eq!(status.stale(), stale, "{status:?}");
        }
    }
}
