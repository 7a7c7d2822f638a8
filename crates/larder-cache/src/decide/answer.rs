//! The answer to the client: its preconditions, `HEAD` and ranges applied to the response the
//! cache answers with, and the `Cache-Status` of each outcome (RFC 9211).

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use larder_storage::{CacheMeta, ResponseHeader};

use crate::cache_status::{CacheStatus, ForwardReason};
use crate::conditional::{self, Precondition};
use crate::max_file_size::content_length;
use crate::phase::NoCacheReason;
use crate::range::{self, RangeBody, RangeSpec};

/// How a response served from storage came about (for `Cache-Status` and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// A fresh hit.
    Fresh,
    /// Stale, served while a background refresh runs (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Stale, served because the upstream failed (RFC 5861 §4), with the upstream's error
    /// status if it answered.
    StaleIfError(Option<StatusCode>),
    /// Stale past any stale-if-error window because the upstream cannot be reached
    /// (RFC 9111 §4.2.4).
    StaleOnDisconnect,
    /// Revalidated by a 304; `stored` says whether the refreshed header was stored.
    Revalidated {
        /// The merged header was stored.
        stored: bool,
    },
}

/// What [`downstream`] decided about the body sent to the client.
#[derive(Debug, Default)]
pub struct Downstream {
    /// Send the header only (`HEAD`, `304`, `412`, an empty range).
    pub header_only: bool,
    /// Send this part of the body (boxed: rare, and it would otherwise take room in every
    /// hit's future).
    pub range: Option<Box<RangeBody>>,
}

/// Applies the client's preconditions, `HEAD` and `Range` to a response the cache answers with
/// (`header`, changed in place): `precondition` is the hook's evaluation of the client's
/// preconditions against `header` (RFC 9110 §13.2.2), `max_ranges` the most ranges honoured.
#[inline]
pub fn downstream(
    method: &Method,
    req_headers: &HeaderMap,
    precondition: Precondition,
    header: &mut ResponseHeader,
    max_ranges: usize,
) -> Downstream {
    downstream_with(method, precondition, header, |header| {
        range::range_for_request(
            method,
            req_headers,
            header.status,
            &header.headers,
            max_ranges,
        )
    })
}

/// [`downstream`] with the range chosen by `choose_range` (a hook that may also change the
/// header), asked only when the preconditions let the response through; its
/// [`RangeSpec::None`] sends the whole response and [`RangeSpec::Invalid`] a `416`.
#[inline]
pub fn downstream_with(
    method: &Method,
    precondition: Precondition,
    header: &mut ResponseHeader,
    choose_range: impl FnOnce(&mut ResponseHeader) -> RangeSpec,
) -> Downstream {
    let mut out = Downstream {
        header_only: *method == Method::HEAD,
        range: None,
    };
    match precondition {
        Precondition::NotModified => {
            header.status = StatusCode::NOT_MODIFIED;
            conditional::to_304(&mut header.headers);
            out.header_only = true;
            return out;
        }
        Precondition::PreconditionFailed => {
            header.status = StatusCode::PRECONDITION_FAILED;
            conditional::to_304(&mut header.headers);
            header
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            out.header_only = true;
            return out;
        }
        Precondition::Proceed => {}
    }
    let spec = choose_range(header);
    if matches!(
        spec,
        RangeSpec::Single(_) | RangeSpec::Multi(_) | RangeSpec::Invalid
    ) && let Some(len) = content_length(&header.headers)
    {
        let chosen = range::range_response_headers(&mut header.headers, &spec, len);
        header.status = chosen.status;
        if chosen.body == RangeBody::Empty {
            out.header_only = true;
        } else {
            out.range = Some(Box::new(chosen.body));
        }
    }
    out
}

/// Whether a stored body must be read before answering, to learn its length: a ranged `GET`
/// of a `200` without `Content-Length` (ranges need the length).
#[inline]
pub fn range_needs_length(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
) -> bool {
    *method == Method::GET
        && req_headers.contains_key(header::RANGE)
        && status == StatusCode::OK
        && content_length(headers).is_none()
}

/// The freshness left, in seconds, negative when stale (RFC 9211 §2.4 `ttl`).
#[inline]
pub fn ttl(meta: &CacheMeta, now: SystemTime) -> i64 {
    match meta.fresh_until().duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `Cache-Status` of a response served from storage (RFC 9211): `ttl` from [`ttl`],
/// `fwd` and `collapsed` for a revalidation (the reason it went upstream, and whether it
/// waited on another request), `not_refreshed` the reason a revalidated header was not stored.
#[inline]
pub fn hit_status(
    status: CacheStatus,
    kind: HitKind,
    ttl: i64,
    fwd: ForwardReason,
    collapsed: bool,
    not_refreshed: Option<NoCacheReason>,
) -> CacheStatus {
    match kind {
        HitKind::Fresh => status.hit().ttl(ttl),
        HitKind::StaleWhileRevalidate => status.hit().ttl(ttl).detail("stale-while-revalidate"),
        HitKind::StaleIfError(upstream) => {
            let status = status
                .fwd(ForwardReason::Stale)
                .ttl(ttl)
                .detail("stale-if-error");
            match upstream {
                Some(s) => status.fwd_status(s),
                None => status,
            }
        }
        HitKind::StaleOnDisconnect => status
            .fwd(ForwardReason::Stale)
            .ttl(ttl)
            .detail("stale-on-disconnect"),
        HitKind::Revalidated { stored } => {
            let mut status = status
                .fwd(fwd)
                .fwd_status(StatusCode::NOT_MODIFIED)
                .stored(stored)
                .ttl(ttl);
            if collapsed {
                status = status.collapsed(true);
            }
            match not_refreshed {
                Some(reason) => status.detail(reason.as_str()),
                None => status,
            }
        }
    }
}

/// The `Cache-Status` of a response forwarded from upstream (RFC 9211): `fwd` why it went
/// upstream, `upstream` the status it answered, `collapsed` whether it waited on another
/// request, and `stored` either the stored response's `ttl` or why it was not stored.
#[inline]
pub fn forwarded_status(
    status: CacheStatus,
    fwd: ForwardReason,
    upstream: StatusCode,
    collapsed: bool,
    stored: Result<Option<i64>, NoCacheReason>,
) -> CacheStatus {
    let mut status = status.fwd(fwd).fwd_status(upstream);
    if collapsed {
        status = status.collapsed(true);
    }
    match stored {
        Ok(ttl) => {
            status = status.stored(true);
            match ttl {
                Some(ttl) => status.ttl(ttl),
                None => status,
            }
        }
        Err(reason) => status.stored(false).detail(reason.as_str()),
    }
}
