//! PURGE: authorisation (a bearer token compared in constant time) and the request that
//! removes one entry.

use http::Method;
use http::request::Parts;
use larder_cache::HttpCache;

pub use crate::auth::{PurgeAuth, PurgeStatus, check_bearer, constant_time_eq};
use crate::callbacks;
use crate::hooks::CacheHooks;
use crate::shared::{Answer, Shared, enable, new_status};

/// Answers a PURGE request: `405` without a configured token, `401` without the right one,
/// otherwise `200` when the entry was removed and `404` when there was none.
pub(crate) async fn purge<H: CacheHooks>(shared: &Shared<H>, req: &Parts) -> Answer {
    let status = new_status(shared).detail("purge");
    let auth = shared
        .hooks
        .purge_authorization(req, shared.config.purge_token.as_deref());
    let failure;
    let outcome = match auth {
        PurgeAuth::Disabled => PurgeStatus::NoCache,
        PurgeAuth::Unauthorized => PurgeStatus::Unauthorized,
        PurgeAuth::Allowed => {
            let mut target = req.clone();
            target.method = Method::GET;
            match shared.hooks.cache_key_callback(&target) {
                Some(key) if shared.config.storage.is_some() => {
                    let mut cache = HttpCache::new();
                    enable(shared, &mut cache, false);
                    cache.set_cache_key(key);
                    match cache.purge().await {
                        Ok(true) => {
                            shared.metrics.purges.inc();
                            PurgeStatus::Found
                        }
                        Ok(false) => PurgeStatus::NotFound,
                        Err(e) => {
                            tracing::warn!(error = %e, "purge failed");
                            failure = e;
                            PurgeStatus::Error(&failure)
                        }
                    }
                }
                _ => PurgeStatus::NotFound,
            }
        }
    };
    (
        callbacks::purge_answer(&shared.hooks, req, &outcome),
        status,
    )
}
