//! The lenient field-line scanner: splits one field line into directives.
//!
//! Grammar (RFC 9111 §5.2, RFC 9110 §5.6):
//!
//! ```text
//! Cache-Control   = #cache-directive
//! cache-directive = token [ "=" ( token / quoted-string ) ]
//! ```
//!
//! The scanner never fails. An element that does not match the grammar becomes a *malformed*
//! entry: if it starts with a token, that token is kept as the directive name (so a cache still
//! sees that, say, `max-age` was present and can treat its value as invalid); otherwise the
//! element has no name and is only reported. Element boundaries are commas outside quoted
//! strings; a quoted string that is never closed ends at the next comma after its opening quote,
//! so a stray quote cannot swallow the directives that follow it.

/// `tchar` from RFC 9110 §5.6.2, as a lookup table.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        // Indexing a 256-entry table with a `u8`-ranged counter: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2).
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Whether `b` is optional whitespace (`OWS`, RFC 9110 §5.6.3).
#[inline]
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether `b` may appear in a quoted string, either as `qdtext` or escaped in a `quoted-pair`
/// (RFC 9110 §5.6.4): HTAB, SP, visible ASCII and obs-text; not other control bytes.
#[inline]
pub(crate) fn is_quotable(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Whether every byte of `b` is a `tchar`, and there is at least one.
pub(crate) fn is_token(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| is_tchar(c))
}

/// The directives this crate knows by name (RFC 9111 §5.2.1, §5.2.2; RFC 5861; RFC 8246).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    MaxAge = 0,
    SMaxage,
    NoCache,
    NoStore,
    Private,
    Public,
    MustRevalidate,
    ProxyRevalidate,
    MustUnderstand,
    NoTransform,
    Immutable,
    StaleWhileRevalidate,
    StaleIfError,
    MaxStale,
    MinFresh,
    OnlyIfCached,
    /// Any other named directive (RFC 9111 §5.2.3).
    Extension,
    /// A malformed list element that does not even start with a token.
    Unnamed,
}

/// How many variants of [`Kind`] are known directives.
pub(crate) const KNOWN: usize = 16;

impl Kind {
    /// Classifies a directive name, case-insensitively (RFC 9111 §5.2).
    pub(crate) fn classify(name: &[u8]) -> Kind {
        let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            6 if eq("public") => Kind::Public,
            7 if eq("max-age") => Kind::MaxAge,
            7 if eq("private") => Kind::Private,
            8 if eq("s-maxage") => Kind::SMaxage,
            8 if eq("no-cache") => Kind::NoCache,
            8 if eq("no-store") => Kind::NoStore,
            9 if eq("immutable") => Kind::Immutable,
            9 if eq("max-stale") => Kind::MaxStale,
            9 if eq("min-fresh") => Kind::MinFresh,
            12 if eq("no-transform") => Kind::NoTransform,
            14 if eq("stale-if-error") => Kind::StaleIfError,
            14 if eq("only-if-cached") => Kind::OnlyIfCached,
            15 if eq("must-revalidate") => Kind::MustRevalidate,
            15 if eq("must-understand") => Kind::MustUnderstand,
            16 if eq("proxy-revalidate") => Kind::ProxyRevalidate,
            22 if eq("stale-while-revalidate") => Kind::StaleWhileRevalidate,
            _ => Kind::Extension,
        }
    }
}

/// A directive's argument exactly as it appears in the field line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawValue<'a> {
    /// No argument: `no-store`.
    None,
    /// A token argument: `max-age=60` holds `60`.
    Token(&'a [u8]),
    /// A quoted-string argument, without the quotes but with its escapes still in place:
    /// `no-cache="a, b"` holds `a, b`. Every byte is valid in a quoted string.
    Quoted(&'a [u8]),
    /// Anything else after the name, trailing whitespace removed: `max-age= 60` holds `= 60`.
    Malformed(&'a [u8]),
}

/// One list element of a field line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'a> {
    /// The directive name (all `tchar`s); empty for [`Kind::Unnamed`].
    pub(crate) name: &'a [u8],
    pub(crate) value: RawValue<'a>,
    pub(crate) kind: Kind,
}

/// Finds the closing quote of a quoted string whose opening quote is at `open`, honouring
/// `quoted-pair` escapes. Returns the index of the closing quote, if any.
#[inline]
fn closing_quote(line: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < line.len() {
        match line[i] {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Returns the index of the first comma at or after `from` that is outside any quoted string.
fn element_end(line: &[u8], mut i: usize) -> usize {
    while i < line.len() {
        match line[i] {
            b',' => return i,
            b'"' => match closing_quote(line, i) {
                Some(close) => i = close + 1,
                // An unterminated quote ends at the next comma after it.
                None => {
                    return line[i..]
                        .iter()
                        .position(|&b| b == b',')
                        .map_or(line.len(), |p| i + p);
                }
            },
            _ => i += 1,
        }
    }
    line.len()
}

/// Removes trailing optional whitespace.
fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., last] = b {
        if is_ows(*last) {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Index of the first non-OWS byte at or after `i`.
#[inline]
fn skip_ows(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && is_ows(line[i]) {
        i += 1;
    }
    i
}

/// Splits one field line into entries, calling `push` for each.
///
/// With `sf_params` set (targeted fields, RFC 9213 §2.1) a `;` after a directive starts
/// Structured Field parameters, which are ignored.
pub(crate) fn parse_line<'a>(line: &'a [u8], sf_params: bool, push: &mut impl FnMut(Entry<'a>)) {
    let len = line.len();
    let mut i = 0;
    loop {
        // Skip whitespace and empty list elements (`a,,b`, RFC 9110 §5.6.1).
        while i < len && (is_ows(line[i]) || line[i] == b',') {
            i += 1;
        }
        if i >= len {
            return;
        }
        let start = i;
        while i < len && is_tchar(line[i]) {
            i += 1;
        }
        let name = &line[start..i];
        if name.is_empty() {
            let end = element_end(line, i);
            push(Entry {
                name: &[],
                value: RawValue::Malformed(trim_end(&line[start..end])),
                kind: Kind::Unnamed,
            });
            i = end;
            continue;
        }
        let kind = Kind::classify(name);
        let (value, next) = parse_value(line, i, sf_params);
        push(Entry { name, value, kind });
        i = next;
    }
}

/// Parses what follows a directive name at `i`: returns the value and the index of the comma
/// (or end) that ends the element.
#[inline]
fn parse_value(line: &[u8], i: usize, sf_params: bool) -> (RawValue<'_>, usize) {
    let len = line.len();
    // Returns the value if the element ends (after optional whitespace) at `j`.
    let ends_at = |j: usize| {
        let j = skip_ows(line, j);
        if j >= len || line[j] == b',' {
            Some(j)
        } else if sf_params && line[j] == b';' {
            Some(element_end(line, j))
        } else {
            None
        }
    };
    if i < len && line[i] == b'=' {
        let v = i + 1;
        if v < len && line[v] == b'"' {
            if let Some(close) = closing_quote(line, v) {
                let inner = &line[v + 1..close];
                if inner.iter().all(|&b| is_quotable(b))
                    && let Some(end) = ends_at(close + 1)
                {
                    return (RawValue::Quoted(inner), end);
                }
            }
        } else {
            let mut t = v;
            while t < len && is_tchar(line[t]) {
                t += 1;
            }
            if t > v
                && let Some(end) = ends_at(t)
            {
                return (RawValue::Token(&line[v..t]), end);
            }
        }
    } else if let Some(end) = ends_at(i) {
        return (RawValue::None, end);
    }
    let end = element_end(line, i);
    (RawValue::Malformed(trim_end(&line[i..end])), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(line: &str) -> Vec<(String, RawValue<'_>)> {
        let mut out = Vec::new();
        parse_line(line.as_bytes(), false, &mut |e| {
            out.push((String::from_utf8_lossy(e.name).into_owned(), e.value));
        });
        out
    }

    #[test]
    fn unterminated_quote_ends_at_next_comma() {
        let got = entries(r#"foo="abc, max-age=1"#);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, RawValue::Malformed(br#"="abc"#));
        assert_eq!(got[1].1, RawValue::Token(b"1"));
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let got = entries(r#"ext="max-age=3600, x", max-age=1"#);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, RawValue::Quoted(b"max-age=3600, x"));
        assert_eq!(got[1].1, RawValue::Token(b"1"));
    }

    #[test]
    fn unnamed_elements_are_kept_as_malformed() {
        let got = entries(r#"=3, "x,y", max-age=2"#);
        assert_eq!(got[0], (String::new(), RawValue::Malformed(b"=3")));
        assert_eq!(got[1], (String::new(), RawValue::Malformed(br#""x,y""#)));
        assert_eq!(got[2].1, RawValue::Token(b"2"));
    }

    #[test]
    fn escaped_quote_does_not_close() {
        let got = entries(r#"a="x\"y", b"#);
        assert_eq!(got[0].1, RawValue::Quoted(br#"x\"y"#));
        assert_eq!(got[1].0, "b");
    }

    #[test]
    fn sf_parameters_are_skipped() {
        let mut out = Vec::new();
        parse_line(b"max-age=60;a=\"x,y\", no-store;b", true, &mut |e| {
            out.push(e.value);
        });
        assert_eq!(out, vec![RawValue::Token(b"60"), RawValue::None]);
    }

    #[test]
    fn classify_is_case_insensitive() {
        assert_eq!(Kind::classify(b"MaX-AgE"), Kind::MaxAge);
        assert_eq!(
            Kind::classify(b"stale-while-revalidate"),
            Kind::StaleWhileRevalidate
        );
        assert_eq!(Kind::classify(b"max-ages"), Kind::Extension);
        for k in 0..KNOWN {
            let name = [
                "max-age",
                "s-maxage",
                "no-cache",
                "no-store",
                "private",
                "public",
                "must-revalidate",
                "proxy-revalidate",
                "must-understand",
                "no-transform",
                "immutable",
                "stale-while-revalidate",
                "stale-if-error",
                "max-stale",
                "min-fresh",
                "only-if-cached",
            ][k];
            let kind = Kind::classify(name.as_bytes());
            assert_eq!(kind as usize, k);
        }
    }
}
