//! [`CacheControl`]: the parsed directives of one field, with typed accessors.

use std::fmt;

use http::header::{AsHeaderName, CACHE_CONTROL};
use http::{HeaderMap, HeaderValue};
use smallvec::SmallVec;

use crate::directive::{Directive, FieldNames, MaxStale};
use crate::parse::{Entry, KNOWN, Kind, RawValue, parse_line};
use crate::{Error, InvalidValue};

/// Which occurrence of a repeated directive counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Duplicates {
    /// The first occurrence (RFC 9111 §4.2.1), for `Cache-Control`.
    First,
    /// The last occurrence (RFC 8941 §3.2), for targeted fields, which are Structured Field
    /// Dictionaries.
    Last,
}

/// The cache directives of a `Cache-Control` field (RFC 9111 §5.2) or a targeted field such as
/// `CDN-Cache-Control` (RFC 9213), borrowed from the header values.
///
/// Parsing never fails and never allocates for up to eight directives. See the
/// [crate documentation](crate) for how malformed, invalid and repeated directives are handled.
#[derive(Clone)]
pub struct CacheControl<'a> {
    entries: SmallVec<[Entry<'a>; 8]>,
    /// For each known directive, one plus the index in `entries` of the occurrence that counts;
    /// zero when absent.
    index: [u32; KNOWN],
    /// Number of named directives (entries that are not [`Kind::Unnamed`]).
    named: usize,
    duplicates: Duplicates,
}

impl<'a> CacheControl<'a> {
    #[inline]
    fn empty(duplicates: Duplicates) -> Self {
        CacheControl {
            entries: SmallVec::new(),
            index: [0; KNOWN],
            named: 0,
            duplicates,
        }
    }

    #[inline]
    pub(crate) fn from_lines(
        lines: impl IntoIterator<Item = &'a [u8]>,
        sf_params: bool,
        duplicates: Duplicates,
    ) -> Self {
        let mut cc = Self::empty(duplicates);
        let mut push = |e: Entry<'a>| {
            if e.kind != Kind::Unnamed {
                cc.named += 1;
                if (e.kind as usize) < KNOWN {
                    let slot = &mut cc.index[e.kind as usize];
                    if *slot == 0 || duplicates == Duplicates::Last {
                        // Saturate rather than wrap on absurdly long fields: a directive past
                        // index 2^32 keeps the slot of the last one that fitted.
                        if let Ok(i) = u32::try_from(cc.entries.len() + 1) {
                            *slot = i;
                        }
                    }
                }
            }
            cc.entries.push(e);
        };
        for line in lines {
            parse_line(line, sf_params, &mut push);
        }
        cc
    }

    /// Parses every `Cache-Control` field line of `headers` (RFC 9111 §5.2; several lines are
    /// one comma-separated list, RFC 9110 §5.3).
    ///
    /// ```
    /// use http::{HeaderMap, header::CACHE_CONTROL};
    /// use larder_cache_control::CacheControl;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.append(CACHE_CONTROL, "public".parse()?);
    /// headers.append(CACHE_CONTROL, "max-age=60".parse()?);
    /// let cc = CacheControl::from_headers(&headers);
    /// assert!(cc.public());
    /// assert_eq!(cc.max_age(), Some(Ok(60)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        Self::from_headers_named(CACHE_CONTROL, headers)
    }

    /// Parses every field line named `name` with the `Cache-Control` syntax, for instance a
    /// targeted field (RFC 9213) when its Structured Field checks are not wanted; see
    /// [`targeted`](crate::targeted) for the RFC 9213 rules.
    #[inline]
    pub fn from_headers_named(name: impl AsHeaderName, headers: &'a HeaderMap) -> Self {
        Self::from_lines(
            headers.get_all(name).iter().map(HeaderValue::as_bytes),
            false,
            Duplicates::First,
        )
    }

    /// Parses one field value.
    ///
    /// ```
    /// use larder_cache_control::CacheControl;
    ///
    /// let cc = CacheControl::parse(b"no-cache=\"set-cookie\", max-age=0");
    /// assert!(cc.no_cache());
    /// assert_eq!(cc.no_cache_field_names().map(Iterator::collect), Some(vec!["set-cookie"]));
    /// assert_eq!(cc.max_age(), Some(Ok(0)));
    /// ```
    #[inline]
    pub fn parse(value: &'a [u8]) -> Self {
        Self::from_lines([value], false, Duplicates::First)
    }

    /// Whether there is no directive at all (absent or empty field, or only malformed list
    /// elements that have no name).
    pub fn is_empty(&self) -> bool {
        self.named == 0
    }

    /// The number of directives, counting repeats.
    pub fn len(&self) -> usize {
        self.named
    }

    fn entry(&self, kind: Kind) -> Option<&Entry<'a>> {
        let i = self.index[kind as usize];
        if i == 0 {
            None
        } else {
            self.entries.get(i as usize - 1)
        }
    }

    fn has(&self, kind: Kind) -> bool {
        self.index[kind as usize] != 0
    }

    #[inline]
    fn delta(&self, kind: Kind) -> Option<Result<u32, InvalidValue>> {
        self.entry(kind)
            .map(|e| Directive::from_entry(e).delta_seconds())
    }

    /// `max-age` (RFC 9111 §5.2.1.1 request, §5.2.2.1 response): `None` when absent,
    /// `Some(Err(_))` when present with an invalid value (treat the response as stale,
    /// §4.2.1), otherwise the seconds, saturated at 2147483648 (§1.2.2).
    #[inline]
    pub fn max_age(&self) -> Option<Result<u32, InvalidValue>> {
        self.delta(Kind::MaxAge)
    }

    /// `s-maxage` (RFC 9111 §5.2.2.10); same conventions as [`max_age`](Self::max_age).
    pub fn s_maxage(&self) -> Option<Result<u32, InvalidValue>> {
        self.delta(Kind::SMaxage)
    }

    /// `stale-while-revalidate` (RFC 5861 §3); same conventions as [`max_age`](Self::max_age).
    pub fn stale_while_revalidate(&self) -> Option<Result<u32, InvalidValue>> {
        self.delta(Kind::StaleWhileRevalidate)
    }

    /// `stale-if-error` (RFC 5861 §4); same conventions as [`max_age`](Self::max_age).
    pub fn stale_if_error(&self) -> Option<Result<u32, InvalidValue>> {
        self.delta(Kind::StaleIfError)
    }

    /// `min-fresh` request directive (RFC 9111 §5.2.1.3); same conventions as
    /// [`max_age`](Self::max_age).
    pub fn min_fresh(&self) -> Option<Result<u32, InvalidValue>> {
        self.delta(Kind::MinFresh)
    }

    /// `max-stale` request directive (RFC 9111 §5.2.1.2): `None` when absent.
    pub fn max_stale(&self) -> Option<MaxStale> {
        let e = self.entry(Kind::MaxStale)?;
        Some(match e.value {
            RawValue::None => MaxStale::Any,
            _ => match Directive::from_entry(e).delta_seconds() {
                Ok(n) => MaxStale::Seconds(n),
                Err(_) => MaxStale::Invalid,
            },
        })
    }

    /// Whether `no-cache` is present in any form, bare or qualified (RFC 9111 §5.2.1.4,
    /// §5.2.2.4).
    pub fn no_cache(&self) -> bool {
        self.has(Kind::NoCache)
    }

    /// The field names of the qualified form `no-cache="a, b"` (RFC 9111 §5.2.2.4).
    ///
    /// `None` when `no-cache` is absent, or present in a form that must be read as the
    /// unqualified directive: bare, malformed, an empty list, or a list with something that is
    /// not a field name. Several qualified occurrences contribute all their names.
    pub fn no_cache_field_names(&self) -> Option<FieldNames<'_>> {
        self.no_cache()
            .then(|| FieldNames::new(&self.entries, Kind::NoCache))
            .flatten()
    }

    /// Whether `private` is present in any form, bare or qualified (RFC 9111 §5.2.2.7).
    pub fn private(&self) -> bool {
        self.has(Kind::Private)
    }

    /// The field names of the qualified form `private="a, b"` (RFC 9111 §5.2.2.7); same
    /// conventions as [`no_cache_field_names`](Self::no_cache_field_names).
    pub fn private_field_names(&self) -> Option<FieldNames<'_>> {
        self.private()
            .then(|| FieldNames::new(&self.entries, Kind::Private))
            .flatten()
    }

    /// `no-store` (RFC 9111 §5.2.1.5, §5.2.2.5).
    pub fn no_store(&self) -> bool {
        self.has(Kind::NoStore)
    }

    /// `public` (RFC 9111 §5.2.2.9).
    pub fn public(&self) -> bool {
        self.has(Kind::Public)
    }

    /// `must-revalidate` (RFC 9111 §5.2.2.2).
    pub fn must_revalidate(&self) -> bool {
        self.has(Kind::MustRevalidate)
    }

    /// `proxy-revalidate` (RFC 9111 §5.2.2.8).
    pub fn proxy_revalidate(&self) -> bool {
        self.has(Kind::ProxyRevalidate)
    }

    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub fn must_understand(&self) -> bool {
        self.has(Kind::MustUnderstand)
    }

    /// `no-transform` (RFC 9111 §5.2.1.6, §5.2.2.6).
    pub fn no_transform(&self) -> bool {
        self.has(Kind::NoTransform)
    }

    /// `immutable` (RFC 8246 §2).
    pub fn immutable(&self) -> bool {
        self.has(Kind::Immutable)
    }

    /// `only-if-cached` request directive (RFC 9111 §5.2.1.7).
    pub fn only_if_cached(&self) -> bool {
        self.has(Kind::OnlyIfCached)
    }

    /// The directive named `name` (case-insensitive), known or extension (RFC 9111 §5.2.3).
    /// When it is repeated, the occurrence that counts (the first, or for targeted fields the
    /// last).
    ///
    /// ```
    /// use larder_cache_control::CacheControl;
    ///
    /// let cc = CacheControl::parse(br#"community="UCI", max-age=5"#);
    /// assert_eq!(cc.get("Community").and_then(|d| d.value()).as_deref(), Some("UCI"));
    /// assert!(cc.get("no-store").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<Directive<'_>> {
        let kind = Kind::classify(name.as_bytes());
        if kind == Kind::Extension {
            let mut found = self.entries.iter().filter(|e| {
                e.kind == Kind::Extension && e.name.eq_ignore_ascii_case(name.as_bytes())
            });
            let e = match self.duplicates {
                Duplicates::First => found.next(),
                Duplicates::Last => found.next_back(),
            };
            e.map(Directive::from_entry)
        } else {
            self.entry(kind).map(Directive::from_entry)
        }
    }

    /// Every directive in order of appearance, repeats included (list elements without a name
    /// are left out; see [`errors`](Self::errors)).
    pub fn iter(&self) -> impl Iterator<Item = Directive<'_>> {
        self.entries
            .iter()
            .filter(|e| e.kind != Kind::Unnamed)
            .map(Directive::from_entry)
    }

    /// What was malformed: list elements without a directive name (ignored), directives whose
    /// argument does not follow the syntax, and known `delta-seconds` directives whose argument
    /// is invalid.
    pub fn errors(&self) -> impl Iterator<Item = Error> + '_ {
        self.entries.iter().filter_map(|e| {
            let d = Directive::from_entry(e);
            let source = match (e.kind, e.value) {
                (Kind::Unnamed, RawValue::Malformed(text)) => {
                    return Some(Error::MalformedDirective {
                        text: String::from_utf8_lossy(text).into_owned(),
                    });
                }
                (_, RawValue::Malformed(_)) => InvalidValue::Malformed,
                (
                    Kind::MaxAge
                    | Kind::SMaxage
                    | Kind::StaleWhileRevalidate
                    | Kind::StaleIfError
                    | Kind::MinFresh,
                    _,
                ) => d.delta_seconds().err()?,
                (Kind::MaxStale, RawValue::Token(_) | RawValue::Quoted(_)) => {
                    d.delta_seconds().err()?
                }
                _ => return None,
            };
            Some(Error::InvalidValue {
                directive: d.name().to_ascii_lowercase(),
                source,
            })
        })
    }

    /// Serialises the directives back into one field value, `, `-separated, each as received.
    ///
    /// Parsing the result gives the same directives ([`iter`](Self::iter)) again: same names,
    /// same arguments, and a malformed argument stays malformed. List elements without a name
    /// are dropped; in a malformed argument, bytes that cannot appear there in a field value
    /// (`"`, `,`, control bytes) become `?`, which keeps it malformed. Serialising the re-parsed
    /// value gives the same bytes.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut out = Vec::with_capacity(64);
        self.write_bytes(&mut out);
        // Every byte written is a token character, a valid quoted-string byte, `?`, `=`, `"`,
        // `,`, SP or HTAB, all of which a field value accepts.
        HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn write_bytes(&self, out: &mut Vec<u8>) {
        for d in self.iter() {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(d.name);
            match d.value {
                RawValue::None => {}
                RawValue::Token(t) => {
                    out.push(b'=');
                    out.extend_from_slice(t);
                }
                RawValue::Quoted(q) => {
                    out.extend_from_slice(b"=\"");
                    out.extend_from_slice(q);
                    out.push(b'"');
                }
                RawValue::Malformed(m) => out.extend(m.iter().map(|&b| match b {
                    b'"' | b',' => b'?',
                    b if b != b'\t' && (b < 0x20 || b == 0x7f) => b'?',
                    b => b,
                })),
            }
        }
    }
}

impl fmt::Display for CacheControl<'_> {
    /// The same text as [`to_header_value`](CacheControl::to_header_value), with bytes that
    /// are not UTF-8 replaced by U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(64);
        self.write_bytes(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl fmt::Debug for CacheControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for CacheControl<'_> {
    fn default() -> Self {
        Self::empty(Duplicates::First)
    }
}
