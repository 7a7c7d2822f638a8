//! Variance keys for responses with `Vary` (RFC 9111 §4.1).
//!
//! A response that varies is stored under its primary key plus a *variance*: a 128-bit hash of
//! the request header values its `Vary` names. [`VarianceBuilder`] computes that hash exactly as
//! pingora-cache does (Blake2b-128 over `name\0value\0` in name order), so keys interoperate.
//!
//! # Lookup flow for varied entries
//!
//! 1. Look up the primary key (`HttpCache::cache_lookup`). The entry found there may belong to
//!    any variant; its meta records the variance it was stored with.
//! 2. Compute the request's variance from the stored response's `Vary` with
//!    [`variance_from_request`].
//! 3. `HttpCache::cache_vary_lookup(variance, &meta)` records the primary's `created` time as
//!    `valid_after` (older variants are stale leftovers and are ignored), puts the variance into
//!    the key, and says whether the found entry is the right variant. If it is not, look up
//!    again: the second lookup uses the secondary (variance) slot.
//! 4. On a miss the response is written under the key as it stands, with its own variance in the
//!    meta (`HttpCache::update_variance`). If a revalidated or refetched response varies
//!    differently from what the lookup assumed, it is written to the primary slot, which through
//!    `valid_after` invalidates every older variant.
//!
//! A `Vary: *` response never matches (§4.1) and is not stored
//! (see [`filters::resp_cacheable`](crate::filters::resp_cacheable)).

use std::borrow::Cow;
use std::collections::BTreeMap;

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use http::header::VARY;
use http::{HeaderMap, HeaderName};

pub use larder_storage::HashBinary;

/// Builds a variance hash from header names and values. Insertion order does not matter; a
/// repeated name overwrites the earlier value.
///
/// ```
/// use larder_cache::VarianceBuilder;
///
/// let mut a = VarianceBuilder::new();
/// a.add_value("accept-encoding", &"gzip");
/// a.add_value("accept-language", &"en");
/// let mut b = VarianceBuilder::new();
/// b.add_value("accept-language", &"en");
/// b.add_value("accept-encoding", &"gzip");
/// assert_eq!(a.finalize(), b.finalize());
/// assert_eq!(VarianceBuilder::new().finalize(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct VarianceBuilder<'a> {
    values: BTreeMap<Cow<'a, str>, Cow<'a, [u8]>>,
}

impl<'a> VarianceBuilder<'a> {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a borrowed name and value.
    pub fn add_value(&mut self, name: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) {
        self.values
            .insert(Cow::Borrowed(name), Cow::Borrowed(value.as_ref()));
    }

    /// Adds a borrowed name with an owned value.
    pub fn add_owned_value(&mut self, name: &'a str, value: Vec<u8>) {
        self.values.insert(Cow::Borrowed(name), Cow::Owned(value));
    }

    /// Adds an owned name and value.
    pub fn add_owned_name_value(&mut self, name: String, value: Vec<u8>) {
        self.values.insert(Cow::Owned(name), Cow::Owned(value));
    }

    /// Whether anything was added.
    pub fn has_variance(&self) -> bool {
        !self.values.is_empty()
    }

    /// The variance hash, or `None` when nothing was added.
    pub fn finalize(self) -> Option<HashBinary> {
        if self.values.is_empty() {
            return None;
        }
        let mut hasher = Blake2b::<U16>::new();
        for (name, value) in &self.values {
            hasher.update(name.as_bytes());
            hasher.update([0u8]);
            hasher.update(value);
            hasher.update([0u8]);
        }
        Some(hasher.finalize().into())
    }
}

/// The header names a response's `Vary` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaryNames {
    /// No `Vary` (or only empty members): the response does not vary.
    None,
    /// `Vary: *`: the response varies on things outside the request headers and never matches.
    Any,
    /// The named request headers, lowercased, deduplicated and sorted.
    Names(Vec<HeaderName>),
}

/// Parses every `Vary` line of `headers` (comma lists, case-insensitive names). Members that are
/// not valid header names are skipped.
pub fn vary_names(headers: &HeaderMap) -> VaryNames {
    let mut names = Vec::new();
    for line in headers.get_all(VARY) {
        for member in line.as_bytes().split(|b| *b == b',') {
            let member = crate::age::trim_ows(member);
            if member == b"*" {
                return VaryNames::Any;
            }
            if let Ok(name) = HeaderName::from_bytes(member) {
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        return VaryNames::None;
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    VaryNames::Names(names)
}

/// Whether any `Vary` line lists `*` (the response never matches, RFC 9111 §4.1). The same
/// answer as `vary_names(headers) == VaryNames::Any`, without allocating.
pub fn vary_is_any(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|line| {
        line.as_bytes()
            .split(|b| *b == b',')
            .any(|member| crate::age::trim_ows(member) == b"*")
    })
}

/// The request's value of `name` for variance: all lines joined, each comma-separated member
/// trimmed of whitespace and inner whitespace runs collapsed to one space (RFC 9111 §4.1
/// normalisation), members joined with `,`. `None` when the header is absent.
pub fn normalized_value(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut any = false;
    for line in headers.get_all(name) {
        any = true;
        for member in line.as_bytes().split(|b| *b == b',') {
            let member = crate::age::trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(b',');
            }
            let mut in_space = false;
            for &b in member {
                if b == b' ' || b == b'\t' {
                    in_space = true;
                } else {
                    if in_space {
                        out.push(b' ');
                    }
                    in_space = false;
                    out.push(b);
                }
            }
        }
    }
    any.then_some(out)
}

/// The value hashed for a header the request does not carry. A NUL never occurs in a field
/// value, so an absent header never matches any present value, the empty one included
/// (RFC 9111 §4.1: a header absent from both requests matches; absent from one only does not).
pub const ABSENT_VALUE: &[u8] = b"\0absent";

/// The variance of a request for a stored response with these headers: `None` when the response
/// has no `Vary` (or `Vary: *`, which is never stored). Every named header counts, absent ones
/// as [`ABSENT_VALUE`].
pub fn variance_from_request(
    response_headers: &HeaderMap,
    request_headers: &HeaderMap,
) -> Option<HashBinary> {
    let VaryNames::Names(names) = vary_names(response_headers) else {
        return None;
    };
    let mut builder = VarianceBuilder::new();
    for name in names {
        let value =
            normalized_value(request_headers, &name).unwrap_or_else(|| ABSENT_VALUE.to_vec());
        builder.add_owned_name_value(name.as_str().to_owned(), value);
    }
    builder.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn pingora_hash_layout() {
        // Blake2b-128 over "a\0b\0" computed independently.
        let mut b = VarianceBuilder::new();
        b.add_value("a", "b");
        let mut hasher = Blake2b::<U16>::new();
        hasher.update(b"a\0b\0");
        let expect: HashBinary = hasher.finalize().into();
        assert_eq!(b.finalize(), Some(expect));
    }

    #[test]
    fn vary_parsing() {
        let check = |lines: &[&str], expect: VaryNames| {
            let h = headers(&lines.iter().map(|l| ("vary", *l)).collect::<Vec<_>>());
            assert_eq!(vary_names(&h), expect, "{lines:?}");
        };
        let names = |n: &[&'static str]| {
            VaryNames::Names(n.iter().map(|s| HeaderName::from_static(s)).collect())
        };
        check(&[], VaryNames::None);
        check(&[""], VaryNames::None);
        check(&["Accept-Encoding"], names(&["accept-encoding"]));
        check(
            &["Accept-Language, ACCEPT-ENCODING"],
            names(&["accept-encoding", "accept-language"]),
        );
        check(
            &["accept-encoding", "Accept-Language", "accept-encoding"],
            names(&["accept-encoding", "accept-language"]),
        );
        check(&["accept-encoding, *"], VaryNames::Any);
        check(&["bad name, x-ok"], names(&["x-ok"]));
    }

    #[test]
    fn vary_over_several_lines_matches_joined_value() {
        let resp = headers(&[("vary", "accept-encoding")]);
        let one = headers(&[("accept-encoding", "gzip,  br")]);
        let two = headers(&[("accept-encoding", "gzip"), ("accept-encoding", " br ")]);
        let other = headers(&[("accept-encoding", "br, gzip")]);
        let v1 = variance_from_request(&resp, &one);
        assert!(v1.is_some());
        assert_eq!(v1, variance_from_request(&resp, &two));
        assert_ne!(v1, variance_from_request(&resp, &other));
    }

    #[test]
    fn absent_empty_and_present_all_differ() {
        let resp = headers(&[("vary", "x-a")]);
        let absent = variance_from_request(&resp, &HeaderMap::new());
        let empty = variance_from_request(&resp, &headers(&[("x-a", "")]));
        let present = variance_from_request(&resp, &headers(&[("x-a", "1")]));
        assert!(absent.is_some());
        assert_ne!(absent, empty);
        assert_ne!(absent, present);
        assert_ne!(empty, present);
        assert_eq!(
            variance_from_request(&HeaderMap::new(), &headers(&[("x-a", "1")])),
            None
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn vary_is_any_agrees_with_vary_names(
            lines in proptest::collection::vec("[a-z*, \t-]{0,12}", 0..3),
        ) {
            let h = headers(&lines.iter().map(|l| ("vary", l.as_str())).collect::<Vec<_>>());
            proptest::prop_assert_eq!(vary_is_any(&h), vary_names(&h) == VaryNames::Any);
        }
    }

    #[test]
    fn inner_whitespace_is_collapsed() {
        let h = headers(&[("x", "a \t b ,c")]);
        assert_eq!(
            normalized_value(&h, &HeaderName::from_static("x")),
            Some(b"a b,c".to_vec())
        );
    }
}
