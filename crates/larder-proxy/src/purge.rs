//! PURGE: authorisation (a bearer token compared in constant time) and the request that
//! removes one entry.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use larder_cache::HttpCache;

pub use crate::auth::{PurgeAuth, check_bearer, constant_time_eq};
use crate::body::canned;
use crate::hooks::CacheHooks;
use crate::shared::{Answer, Shared, enable, new_status};

/// Answers a PURGE request: `405` without a configured token, `401` without the right one,
/// otherwise `200` when the entry was removed and `404` when there was none.
pub(crate) async fn purge<H: CacheHooks>(shared: &Shared<H>, req: &Parts) -> Answer {
    let status = new_status(shared).detail("purge");
    let auth = shared
        .hooks
        .purge_authorization(req, shared.config.purge_token.as_deref());
    let code = match auth {
        PurgeAuth::Disabled => StatusCode::METHOD_NOT_ALLOWED,
        PurgeAuth::Unauthorized => {
            let mut resp = canned(StatusCode::UNAUTHORIZED);
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return (resp, status);
        }
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
                            StatusCode::OK
                        }
                        Ok(false) => StatusCode::NOT_FOUND,
                        Err(e) => {
                            tracing::warn!(error = %e, "purge failed");
                            StatusCode::INTERNAL_SERVER_ERROR
                        }
                    }
                }
                _ => StatusCode::NOT_FOUND,
            }
        }
    };
    (canned(code), status)
}
