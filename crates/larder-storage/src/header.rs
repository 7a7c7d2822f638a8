//! [`ResponseHeader`]: the status line and header fields of a cached response.

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version, response};

/// The status, version and header fields of a response, as stored in a
/// [`CacheMeta`](crate::CacheMeta).
///
/// Header names are lowercase (hyper and HTTP/2 normalise them); the values of a name keep
/// the order in which they were received.
///
/// ```
/// use http::{StatusCode, header};
/// use larder_storage::ResponseHeader;
///
/// let mut h = ResponseHeader::new(StatusCode::OK);
/// h.append_header(header::CACHE_CONTROL, "max-age=60")?;
/// let response = h.to_response();
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.headers()["cache-control"], "max-age=60");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The status code.
    pub status: StatusCode,
    /// The HTTP version the response arrived with.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
}

impl Default for ResponseHeader {
    fn default() -> Self {
        ResponseHeader::new(StatusCode::OK)
    }
}

/// The header fields, for code generic over message heads (such as
/// `CacheControl::from_resp_headers`).
impl AsRef<HeaderMap> for ResponseHeader {
    fn as_ref(&self) -> &HeaderMap {
        &self.headers
    }
}

impl ResponseHeader {
    /// A header with `status`, HTTP/1.1 and no fields.
    pub fn new(status: StatusCode) -> Self {
        ResponseHeader {
            status,
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
        }
    }

    /// A header with `status` (a [`StatusCode`] or a `u16`), under pingora's name.
    /// `size_hint` is the number of fields to reserve room for.
    ///
    /// ```
    /// use larder_storage::ResponseHeader;
    ///
    /// let header = ResponseHeader::build(304, Some(4))?;
    /// assert_eq!(header.status, http::StatusCode::NOT_MODIFIED);
    /// assert!(ResponseHeader::build(1000, None).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`http::Error`] if `status` is not a valid status code.
    pub fn build<S>(status: S, size_hint: Option<usize>) -> Result<Self, http::Error>
    where
        S: TryInto<StatusCode>,
        http::Error: From<S::Error>,
    {
        Ok(ResponseHeader {
            status: status.try_into()?,
            version: Version::HTTP_11,
            headers: HeaderMap::with_capacity(size_hint.unwrap_or(0)),
        })
    }

    /// Replaces the status (a [`StatusCode`] or a `u16`).
    ///
    /// # Errors
    ///
    /// [`http::Error`] if `status` is not a valid status code; the status is then unchanged.
    pub fn set_status<S>(&mut self, status: S) -> Result<(), http::Error>
    where
        S: TryInto<StatusCode>,
        http::Error: From<S::Error>,
    {
        self.status = status.try_into()?;
        Ok(())
    }

    /// Removes every value of the field `name`, returning the first one.
    pub fn remove_header<N: http::header::AsHeaderName>(&mut self, name: N) -> Option<HeaderValue> {
        self.headers.remove(name)
    }

    /// Appends a field, keeping any earlier values of the same name.
    ///
    /// # Errors
    ///
    /// [`http::Error`] if the name or value is not valid in HTTP.
    pub fn append_header<N, V>(&mut self, name: N, value: V) -> Result<(), http::Error>
    where
        N: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
        http::Error: From<N::Error> + From<V::Error>,
    {
        let name = name.try_into()?;
        let value = value.try_into()?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Sets a field, replacing every earlier value of the same name.
    ///
    /// # Errors
    ///
    /// [`http::Error`] if the name or value is not valid in HTTP.
    pub fn insert_header<N, V>(&mut self, name: N, value: V) -> Result<(), http::Error>
    where
        N: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
        http::Error: From<N::Error> + From<V::Error>,
    {
        let name = name.try_into()?;
        let value = value.try_into()?;
        self.headers.insert(name, value);
        Ok(())
    }

    /// A response builder with this status, version and fields.
    pub fn to_response_builder(&self) -> response::Builder {
        let mut builder = Response::builder()
            .status(self.status)
            .version(self.version);
        if let Some(headers) = builder.headers_mut() {
            headers.clone_from(&self.headers);
        }
        builder
    }

    /// A `Response<()>` with this status, version and fields.
    pub fn to_response(&self) -> Response<()> {
        self.clone().into_response(())
    }

    /// Consumes the header into a response carrying `body`.
    pub fn into_response<B>(self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = self.version;
        *response.headers_mut() = self.headers;
        response
    }
}

impl From<&response::Parts> for ResponseHeader {
    fn from(parts: &response::Parts) -> Self {
        ResponseHeader {
            status: parts.status,
            version: parts.version,
            headers: parts.headers.clone(),
        }
    }
}

impl From<response::Parts> for ResponseHeader {
    fn from(parts: response::Parts) -> Self {
        ResponseHeader {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
        }
    }
}

impl<B> From<&Response<B>> for ResponseHeader {
    fn from(response: &Response<B>) -> Self {
        ResponseHeader {
            status: response.status(),
            version: response.version(),
            headers: response.headers().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_round_trip_keeps_multi_value_order() {
        let mut h = ResponseHeader::new(StatusCode::NOT_FOUND);
        h.version = Version::HTTP_2;
        h.append_header("Set-Cookie", "a=1").unwrap();
        h.append_header("x-other", "x").unwrap();
        h.append_header("set-cookie", "b=2").unwrap();
        let response = h.to_response_builder().body(()).unwrap();
        let (parts, ()) = response.into_parts();
        let back = ResponseHeader::from(&parts);
        assert_eq!(back, h);
        let cookies: Vec<_> = back.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(ResponseHeader::from(parts), h);
    }

    #[test]
    fn insert_replaces_all_values() {
        let mut h = ResponseHeader::default();
        h.append_header("vary", "a").unwrap();
        h.append_header("vary", "b").unwrap();
        h.insert_header("vary", "c").unwrap();
        assert_eq!(h.headers.get_all("vary").iter().count(), 1);
        assert!(h.append_header("bad name", "x").is_err());
    }
}
