//! Constructors from a message head, under the names pingora-cache uses
//! (`CacheControl::from_resp_headers`, `from_req_headers`, ...), and `has_key`.
//!
//! They differ from [`CacheControl::from_headers`] in one way: they return `None` when the
//! message has no field of that name, as pingora-cache's do, so the result can be passed
//! straight to a filter taking `Option<&CacheControl>`.

use http::header::{AsHeaderName, CACHE_CONTROL};
use http::{HeaderMap, request};

use crate::CacheControl;
use crate::cache_control::Duplicates;

impl<'a> CacheControl<'a> {
    /// Parses the `Cache-Control` field of a response head: anything that lends its
    /// [`HeaderMap`], such as larder's `ResponseHeader`. `None` when the response has no
    /// `Cache-Control` field.
    ///
    /// ```
    /// use http::{HeaderMap, header::CACHE_CONTROL};
    /// use larder_cache_control::CacheControl;
    ///
    /// // A response head type that lends its fields.
    /// struct Head(HeaderMap);
    /// impl AsRef<HeaderMap> for Head {
    ///     fn as_ref(&self) -> &HeaderMap { &self.0 }
    /// }
    ///
    /// let mut head = Head(HeaderMap::new());
    /// assert!(CacheControl::from_resp_headers(&head).is_none());
    /// head.0.insert(CACHE_CONTROL, "max-age=60".parse()?);
    /// let cc = CacheControl::from_resp_headers(&head).expect("present");
    /// assert_eq!(cc.max_age(), Some(Ok(60)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_resp_headers<H: AsRef<HeaderMap> + ?Sized>(resp: &'a H) -> Option<Self> {
        Self::from_resp_headers_named(CACHE_CONTROL, resp)
    }

    /// [`from_resp_headers`](Self::from_resp_headers) for the field `name` (for instance
    /// `CDN-Cache-Control` read with the plain `Cache-Control` rules).
    pub fn from_resp_headers_named<H: AsRef<HeaderMap> + ?Sized>(
        name: impl AsHeaderName,
        resp: &'a H,
    ) -> Option<Self> {
        Self::from_map_named(name, resp.as_ref())
    }

    /// Parses the `Cache-Control` field of a request head (its directives are the request
    /// directives of RFC 9111 §5.2.1). `None` when the request has no `Cache-Control` field.
    ///
    /// ```
    /// use larder_cache_control::CacheControl;
    ///
    /// let (req, ()) = http::Request::get("/").header("cache-control", "only-if-cached")
    ///     .body(())?.into_parts();
    /// assert!(CacheControl::from_req_headers(&req).is_some_and(|cc| cc.only_if_cached()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_req_headers(req: &'a request::Parts) -> Option<Self> {
        Self::from_req_headers_named(CACHE_CONTROL, req)
    }

    /// [`from_req_headers`](Self::from_req_headers) for the field `name`.
    pub fn from_req_headers_named(
        name: impl AsHeaderName,
        req: &'a request::Parts,
    ) -> Option<Self> {
        Self::from_map_named(name, &req.headers)
    }

    /// Whether the directive `name` (case-insensitive) is present, in any form.
    ///
    /// ```
    /// use larder_cache_control::CacheControl;
    ///
    /// let cc = CacheControl::parse(b"public, x-custom=1");
    /// assert!(cc.has_key("public") && cc.has_key("X-Custom"));
    /// assert!(!cc.has_key("private"));
    /// ```
    pub fn has_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn from_map_named(name: impl AsHeaderName, headers: &'a HeaderMap) -> Option<Self> {
        // `AsHeaderName` is consumed by the lookup; look it up once and parse the lines found.
        let mut lines = headers.get_all(name).iter().peekable();
        lines.peek()?;
        Some(Self::from_lines(
            lines.map(http::HeaderValue::as_bytes),
            false,
            Duplicates::First,
        ))
    }
}
