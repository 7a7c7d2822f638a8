//! Header handling shared by both directions: hop-by-hop fields (RFC 9110 §7.6.1) and `Via`
//! (RFC 9110 §7.6.3).

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The hop-by-hop fields RFC 9110 §7.6.1 names (plus the non-standard `Keep-Alive` and
/// `Proxy-Connection` still sent by old clients). A proxy never forwards them.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop fields, including every field named in `Connection`
/// (RFC 9110 §7.6.1). Unparseable names in `Connection` are ignored.
///
/// Most messages carry none of these, so the fields present are scanned once and nothing is
/// removed (or hashed) unless one of them is hop-by-hop.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether `name` is one of [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The `Via` received-protocol for a message of `version` (RFC 9110 §7.6.3).
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Appends `Via: <protocol> <pseudonym>` for a message received as `version`.
pub fn add_via(headers: &mut HeaderMap, version: Version, pseudonym: &str) {
    let value = format!("{} {pseudonym}", protocol(version));
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.append(header::VIA, value);
    }
}

/// The `Via` values of one proxy, made once: appending one is a reference count bump instead
/// of formatting and validating the same text on every message.
#[derive(Debug, Clone)]
pub struct Via {
    /// Indexed by [`version_index`]; `None` when the pseudonym makes an invalid field value.
    values: [Option<HeaderValue>; 5],
}

/// The slot of `version` in [`Via::values`].
fn version_index(version: Version) -> usize {
    match version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 2,
    }
}

impl Via {
    /// The values `<protocol> <pseudonym>` for every HTTP version.
    pub fn new(pseudonym: &str) -> Self {
        let value =
            |version| HeaderValue::from_str(&format!("{} {pseudonym}", protocol(version))).ok();
        Self {
            values: [
                value(Version::HTTP_09),
                value(Version::HTTP_10),
                value(Version::HTTP_11),
                value(Version::HTTP_2),
                value(Version::HTTP_3),
            ],
        }
    }

    /// Appends `Via: <protocol> <pseudonym>` for a message received as `version`, as
    /// [`add_via`] does.
    pub fn append(&self, headers: &mut HeaderMap, version: Version) {
        if let Some(value) = &self.values[version_index(version)] {
            headers.append(header::VIA, value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_listed_and_connection_named_fields() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, X-Foo , bad name"),
        );
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn via_names_the_protocol_version() {
        let mut h = HeaderMap::new();
        add_via(&mut h, Version::HTTP_2, "larder");
        add_via(&mut h, Version::HTTP_11, "larder");
        let all: Vec<_> = h.get_all(header::VIA).iter().collect();
        assert_eq!(all, ["2 larder", "1.1 larder"]);
    }

    #[test]
    fn each_listed_field_alone_is_removed() {
        for name in HOP_BY_HOP {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert("x-keep", HeaderValue::from_static("1"));
            remove_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name}");
            assert!(h.contains_key("x-keep"));
        }
    }

    #[test]
    fn prepared_via_matches_add_via() {
        for pseudonym in ["larder", "edge-1", "bad\nname", ""] {
            let via = Via::new(pseudonym);
            for version in [
                Version::HTTP_09,
                Version::HTTP_10,
                Version::HTTP_11,
                Version::HTTP_2,
                Version::HTTP_3,
            ] {
                let (mut a, mut b) = (HeaderMap::new(), HeaderMap::new());
                add_via(&mut a, version, pseudonym);
                via.append(&mut b, version);
                assert_eq!(a, b, "{pseudonym:?} {version:?}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any Connection value: no panic, and every valid name it lists is gone afterwards.
        #[test]
        fn connection_named_fields_are_always_removed(conn in "[ -~]{0,60}") {
            let Ok(value) = HeaderValue::from_str(&conn) else { return Ok(()); };
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, value);
            let names: Vec<HeaderName> = conn
                .split(',')
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect();
            for n in &names {
                h.insert(n.clone(), HeaderValue::from_static("1"));
            }
            h.insert("x-end-to-end", HeaderValue::from_static("1"));
            remove_hop_by_hop(&mut h);
            for n in &names {
                proptest::prop_assert!(!h.contains_key(n), "{n} kept");
            }
            proptest::prop_assert!(
                h.contains_key("x-end-to-end") || names.iter().any(|n| n == "x-end-to-end")
            );
        }
    }
}
