//! The hooks trait: the cache callbacks of a proxy, each with an RFC 9111 default.

use http::Method;
use http::request::Parts;

use crate::purge::{self, PurgeAuth};

/// Callbacks that customise the cache; every method has a default giving standard shared-cache
/// behaviour (RFC 9111). Implement only the ones to change.
pub trait CacheHooks: Send + Sync + 'static {
    /// Whether the request purges its cache entry instead of being proxied. Default: the
    /// method is `PURGE`.
    fn is_purge(&self, req: &Parts) -> bool {
        req.method.as_str() == "PURGE"
    }

    /// Whether a PURGE request may purge. Default: `Authorization: Bearer <token>` matching the
    /// configured token, compared in constant time; [`PurgeAuth::Disabled`] without a token.
    fn purge_authorization(&self, req: &Parts, token: Option<&str>) -> PurgeAuth {
        purge::check_bearer(&req.headers, token)
    }

    /// Whether the request may use the cache at all. Default: `GET` and `HEAD`.
    fn request_cache_filter(&self, req: &Parts) -> bool {
        req.method == Method::GET || req.method == Method::HEAD
    }
}

/// The default hooks: every callback keeps its default.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultHooks;

impl CacheHooks for DefaultHooks {}
