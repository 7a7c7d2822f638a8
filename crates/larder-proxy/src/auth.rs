//! PURGE authorisation: a bearer token compared in constant time (public as
//! `larder_proxy::purge`).

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};

/// The outcome of checking a PURGE request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PurgeAuth {
    /// The request may purge.
    Allowed,
    /// The credentials are missing or wrong (`401`).
    Unauthorized,
    /// PURGE is not enabled (`405`).
    Disabled,
}

/// How a PURGE request ended, as [`CacheHooks::purge_response_filter`](crate::CacheHooks::purge_response_filter)
/// sees it (pingora's `PurgeStatus`, plus [`Unauthorized`](Self::Unauthorized)).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum PurgeStatus<'a> {
    /// The entry was purged (`200`).
    Found,
    /// No entry to purge, or the request has no cache key (`404`).
    NotFound,
    /// PURGE is not enabled: no token is configured (`405`; pingora's `NoCache`).
    NoCache,
    /// The credentials are missing or wrong (`401` with `WWW-Authenticate: Bearer`).
    Unauthorized,
    /// The storage failed (`500`).
    Error(&'a larder_cache::Error),
}

impl PurgeStatus<'_> {
    /// The status code of the canned answer.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Found => StatusCode::OK,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::NoCache => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Error(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Checks `Authorization: Bearer <token>` against the configured `token`. The comparison takes
/// the same time wherever the first differing byte is.
pub fn check_bearer(headers: &HeaderMap, token: Option<&str>) -> PurgeAuth {
    let Some(token) = token else {
        return PurgeAuth::Disabled;
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => PurgeAuth::Allowed,
        _ => PurgeAuth::Unauthorized,
    }
}

/// Compares two byte strings without an early exit on the first difference. Only the length
/// can leak, which says nothing about the content of the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn check(auth: Option<&'static str>, token: Option<&str>, expect: PurgeAuth) {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, HeaderValue::from_static(a));
        }
        assert_eq!(check_bearer(&h, token), expect, "{auth:?} vs {token:?}");
    }

    #[test]
    fn bearer_tokens() {
        check(Some("Bearer s3cret"), Some("s3cret"), PurgeAuth::Allowed);
        check(Some("bearer  s3cret "), Some("s3cret"), PurgeAuth::Allowed);
        check(
            Some("Bearer s3creT"),
            Some("s3cret"),
            PurgeAuth::Unauthorized,
        );
        check(
            Some("Basic s3cret"),
            Some("s3cret"),
            PurgeAuth::Unauthorized,
        );
        check(Some("Bearer"), Some("s3cret"), PurgeAuth::Unauthorized);
        check(None, Some("s3cret"), PurgeAuth::Unauthorized);
        check(Some("Bearer s3cret"), None, PurgeAuth::Disabled);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary Authorization bytes never panic and never pass unless they carry the token.
        #[test]
        fn arbitrary_authorization_never_passes_by_accident(v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut h = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&v) {
                h.insert(AUTHORIZATION, value);
            }
            let allowed = check_bearer(&h, Some("tok3n")) == PurgeAuth::Allowed;
            let text = String::from_utf8_lossy(&v);
            proptest::prop_assert!(!allowed || text.trim().ends_with("tok3n"));
        }
    }
}
