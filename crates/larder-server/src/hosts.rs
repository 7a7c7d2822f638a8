//! Which site a request is for: its host name (the authority of an absolute-form target or
//! HTTP/2 `:authority`, else the `Host` field) against the sites' `hosts` patterns.

use std::collections::HashMap;

use http::{Request, header};

/// Host patterns mapped to values (site indexes): exact names first, then the longest
/// matching `*.` wildcard, then `*`.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostRoutes<T> {
    exact: HashMap<String, T>,
    /// `(".example.com", value)`, longest suffix first.
    wildcards: Vec<(String, T)>,
    any: Option<T>,
}

impl<T: Clone> HostRoutes<T> {
    /// Adds `pattern` (`a.example`, `*.example.com` or `*`, any case) for `value`; a pattern
    /// already added keeps its first value.
    pub(crate) fn add(&mut self, pattern: &str, value: T) {
        let pattern = pattern.to_ascii_lowercase();
        if pattern == "*" {
            self.any.get_or_insert(value);
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            if !self.wildcards.iter().any(|(s, _)| s == suffix) {
                self.wildcards.push((suffix.to_owned(), value));
                self.wildcards
                    .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
            }
        } else {
            self.exact.entry(pattern).or_insert(value);
        }
    }

    /// The value of `*` when it is the only pattern: every request's, whatever its host.
    pub(crate) fn only_any(&self) -> Option<&T> {
        self.any
            .as_ref()
            .filter(|_| self.exact.is_empty() && self.wildcards.is_empty())
    }

    /// The value for `host` (a bare name, lower case, no port), if any pattern matches.
    pub(crate) fn get(&self, host: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, v)| v)
            .or(self.any.as_ref())
    }
}

/// The host `req` is for, lower case, without port or trailing dot; `None` without one.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(authority) => authority.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    // userinfo is not allowed in a target, but tolerate it rather than route on it.
    let raw = raw.rsplit('@').next().unwrap_or(raw);
    let host = if let Some(v6) = raw.strip_prefix('[') {
        &raw[..v6.find(']')? + 2]
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> HostRoutes<&'static str> {
        let mut r = HostRoutes::default();
        r.add("a.example", "a");
        r.add("*.example.com", "wild");
        r.add("*.deep.example.com", "deep");
        r.add("Exact.Example.com", "exact");
        r
    }

    #[test]
    fn exact_then_longest_wildcard() {
        let r = routes();
        assert_eq!(r.get("a.example"), Some(&"a"));
        assert_eq!(r.get("www.example.com"), Some(&"wild"));
        assert_eq!(r.get("a.b.example.com"), Some(&"wild"));
        assert_eq!(r.get("x.deep.example.com"), Some(&"deep"));
        assert_eq!(r.get("exact.example.com"), Some(&"exact"));
        assert_eq!(r.get("example.com"), None, "a wildcard needs a label");
        assert_eq!(r.get("b.example"), None);
        assert_eq!(r.get("notexample.com"), None);
        assert_eq!(r.only_any(), None);
        let mut r = routes();
        r.add("*", "any");
        assert_eq!(r.only_any(), None);
        assert_eq!(r.get("b.example"), Some(&"any"));
        assert_eq!(r.get("a.example"), Some(&"a"));
        let mut r = HostRoutes::default();
        r.add("*", "any");
        assert_eq!(r.only_any(), Some(&"any"));
    }

    fn host_of(uri: &str, host: Option<&str>) -> Option<String> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        request_host(&b.body(()).unwrap())
    }

    #[test]
    fn the_host_asked_for() {
        assert_eq!(
            host_of("/", Some("A.Example:8080")).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            host_of("/", Some("a.example.")).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            host_of("http://b.example:81/x", Some("a.example")).as_deref(),
            Some("b.example"),
            "the target's authority wins"
        );
        assert_eq!(host_of("/", Some("[::1]:80")).as_deref(), Some("[::1]"));
        assert_eq!(host_of("/", Some("[::1")), None);
        assert_eq!(host_of("/", None), None);
        assert_eq!(host_of("/", Some("")), None);
    }

    proptest::proptest! {
        /// Whatever `Host` a client sends, routing finds a host or none, never panics, and a
        /// host it finds is lower case without port.
        #[test]
        fn any_host_field_is_routed_or_refused(raw in "\\PC{0,40}") {
            if let Ok(value) = http::HeaderValue::from_str(&raw) {
                let mut req = Request::new(());
                req.headers_mut().insert(header::HOST, value);
                if let Some(host) = request_host(&req) {
                    proptest::prop_assert_eq!(host.to_ascii_lowercase(), host.clone());
                    proptest::prop_assert!(!host.is_empty());
                    let _ = routes().get(&host);
                }
            }
        }

        /// A wildcard matches exactly the names with one or more labels before its suffix.
        #[test]
        fn wildcards_need_a_label(label in "[a-z0-9-]{0,8}", suffix in "[a-z]{1,6}\\.[a-z]{2,3}") {
            let mut r = HostRoutes::default();
            r.add(&format!("*.{suffix}"), ());
            let host = format!("{label}.{suffix}");
            proptest::prop_assert_eq!(r.get(&host).is_some(), !label.is_empty());
            proptest::prop_assert!(r.get(&suffix).is_none());
            let glued = format!("{label}{suffix}");
            proptest::prop_assert!(r.get(&glued).is_none());
        }
    }
}
