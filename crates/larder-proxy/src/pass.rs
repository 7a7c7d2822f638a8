//! Requests the cache does not handle ([`Bypass`]): forwarded as they are, invalidating after
//! an unsafe method's success (RFC 9111 §4.4) and storing a POST answer that names its own URI
//! (RFC 9110 §9.3.3); and the request head every upstream request starts from.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response};
use larder_cache::decide::{self, Bypass};

use crate::body::ProxyBody;
use crate::callbacks;
use crate::error::BoxError;
use crate::headers;
use crate::hooks::CacheHooks;
use crate::invalidate::{invalidate, store_post};
use crate::shared::{Answer, Inner, Shared, new_status};

/// The request head sent upstream, with `Via` added and the body fields gone when the body is
/// not the client's; `Err` when [`CacheHooks::upstream_request_filter`] failed.
pub(crate) fn upstream_head<H: CacheHooks>(
    shared: &Shared<H>,
    req: &Parts,
    mutate: impl FnOnce(&mut Parts),
) -> Result<Parts, BoxError> {
    let mut up = req.clone();
    mutate(&mut up);
    shared.hooks.upstream_request_filter(req, &mut up)?;
    shared.via.append(&mut up.headers, req.version);
    Ok(up)
}

/// Forwards a request the cache does not handle (`why`), invalidating on unsafe methods and
/// storing a cacheable POST answer.
pub(crate) async fn pass_through<H: CacheHooks, I: Inner>(
    shared: &Arc<Shared<H>>,
    inner: &I,
    req: &Parts,
    body: ProxyBody,
    why: Bypass,
) -> Answer {
    let metrics = &shared.metrics;
    // Not cached: forward as is.
    metrics.bypass.inc();
    let reason = why.reason();
    metrics.not_stored(reason.as_str());
    let status = new_status(shared)
        .fwd(why.forward_reason())
        .detail(reason.as_str());
    if let Some(reason) = callbacks::upstream_declined(&shared.hooks, req, None).await {
        return callbacks::declined_answer(reason, status, None);
    }
    let close = decide::body_without_meaning(&req.method) && !http_body::Body::is_end_stream(&body);
    let up = upstream_head(shared, req, |up| {
        if close {
            // An origin that ignores this body (as many do for these methods) would read it
            // as the start of the next request on a reused connection: a client could then
            // choose the answer another client gets, and the cache could store it. The
            // connection carrying it is not reused.
            up.headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    });
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            let reason = callbacks::filter_failed(&e, "upstream_request_filter", None);
            return callbacks::declined_answer(reason, status, None);
        }
    };
    match inner.send(Request::from_parts(up, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            if decide::invalidates(&req.method, parts.status) {
                invalidate(shared, req, &parts.headers).await;
            }
            let status = status.fwd_status(parts.status);
            if req.method == Method::POST {
                return store_post(shared, req, parts, body, status).await;
            }
            (Response::from_parts(parts, body), status)
        }
        Err(e) => {
            metrics.upstream_errors.inc();
            tracing::warn!(error = %e, "upstream failed");
            (shared.hooks.fail_to_proxy(req, &e).await, status)
        }
    }
}
