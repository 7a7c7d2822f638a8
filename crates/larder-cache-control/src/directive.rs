//! One directive, its argument, and the field-name lists of `no-cache` and `private`.

use std::borrow::Cow;
use std::fmt;

use crate::InvalidValue;
use crate::parse::{Entry, Kind, RawValue, is_token};

/// The value delta-seconds saturate at: RFC 9111 §1.2.2 says a cache that cannot represent a
/// larger value MUST use 2147483648 (2^31).
pub const DELTA_SECONDS_MAX: u32 = 2_147_483_648;

/// One cache directive, borrowed from the header value it came from.
#[derive(Clone, Copy)]
pub struct Directive<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: RawValue<'a>,
}

impl<'a> Directive<'a> {
    pub(crate) fn from_entry(e: &Entry<'a>) -> Self {
        Directive {
            name: e.name,
            value: e.value,
        }
    }

    /// The directive name as received (compare it case-insensitively, RFC 9111 §5.2).
    pub fn name(&self) -> &'a str {
        // Names are made of `tchar`s only, which are ASCII.
        std::str::from_utf8(self.name).unwrap_or_default()
    }

    /// The argument with quotes removed and `quoted-pair` escapes resolved; bytes that are not
    /// UTF-8 (obs-text) are replaced with U+FFFD.
    ///
    /// `None` for a directive without an argument and for a malformed one (see
    /// [`is_malformed`](Self::is_malformed) and [`raw_value`](Self::raw_value)).
    pub fn value(&self) -> Option<Cow<'a, str>> {
        match self.value_bytes()? {
            Cow::Borrowed(b) => Some(String::from_utf8_lossy(b)),
            Cow::Owned(v) => Some(Cow::Owned(String::from_utf8_lossy(&v).into_owned())),
        }
    }

    /// Like [`value`](Self::value), as bytes (no UTF-8 replacement).
    pub fn value_bytes(&self) -> Option<Cow<'a, [u8]>> {
        match self.value {
            RawValue::None | RawValue::Malformed(_) => None,
            RawValue::Token(t) => Some(Cow::Borrowed(t)),
            RawValue::Quoted(q) => Some(unescape(q)),
        }
    }

    /// Everything after the name exactly as received, with quotes and escapes: `=60` for
    /// `max-age=60`, `="a"` for `no-cache="a"`, `= 60` for the malformed `max-age= 60`; `None`
    /// for a directive without an argument.
    pub fn raw_value(&self) -> Option<Cow<'a, [u8]>> {
        match self.value {
            RawValue::None => None,
            RawValue::Token(t) => Some(Cow::Owned([b"=", t].concat())),
            RawValue::Quoted(q) => Some(Cow::Owned([b"=\"", q, b"\""].concat())),
            RawValue::Malformed(m) => Some(Cow::Borrowed(m)),
        }
    }

    /// Whether the argument was a quoted string.
    pub fn is_quoted(&self) -> bool {
        matches!(self.value, RawValue::Quoted(_))
    }

    /// Whether the text after the name does not follow `[ "=" ( token / quoted-string ) ]`.
    pub fn is_malformed(&self) -> bool {
        matches!(self.value, RawValue::Malformed(_))
    }

    /// Whether the directive's name is `name`, compared case-insensitively.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The argument as `delta-seconds` (RFC 9111 §1.2.2), saturating at
    /// [`DELTA_SECONDS_MAX`]. A quoted argument is accepted as RFC 9111 §5.2 asks of
    /// recipients.
    ///
    /// # Errors
    ///
    /// [`InvalidValue`] says why the argument is not a non-negative whole number.
    #[inline]
    pub fn delta_seconds(&self) -> Result<u32, InvalidValue> {
        match self.value {
            RawValue::None => Err(InvalidValue::Missing),
            RawValue::Token(t) => delta_seconds(t),
            RawValue::Quoted(q) => delta_seconds(&unescape(q)),
            RawValue::Malformed(_) => Err(InvalidValue::Malformed),
        }
    }
}

impl fmt::Debug for Directive<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directive")
            .field("name", &self.name())
            .field(
                "raw_value",
                &self
                    .raw_value()
                    .map(|v| String::from_utf8_lossy(&v).into_owned()),
            )
            .finish()
    }
}

impl PartialEq for Directive<'_> {
    /// Directives are equal when their names match case-insensitively and their arguments are
    /// byte-for-byte the same as received.
    fn eq(&self, other: &Self) -> bool {
        self.name.eq_ignore_ascii_case(other.name) && self.value == other.value
    }
}

impl Eq for Directive<'_> {}

/// Resolves `quoted-pair` escapes (RFC 9110 §5.6.4).
fn unescape(q: &[u8]) -> Cow<'_, [u8]> {
    if !q.contains(&b'\\') {
        return Cow::Borrowed(q);
    }
    let mut out = Vec::with_capacity(q.len());
    let mut it = q.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            if let Some(&next) = it.next() {
                out.push(next);
            }
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// Parses `delta-seconds = 1*DIGIT` (RFC 9111 §1.2.2), saturating at [`DELTA_SECONDS_MAX`].
#[inline]
pub(crate) fn delta_seconds(b: &[u8]) -> Result<u32, InvalidValue> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidValue::NotDeltaSeconds);
    }
    if negative {
        return Err(InvalidValue::Negative);
    }
    let mut n: u32 = 0;
    for &d in digits {
        n = n.saturating_mul(10).saturating_add(u32::from(d - b'0'));
        if n >= DELTA_SECONDS_MAX {
            return Ok(DELTA_SECONDS_MAX);
        }
    }
    Ok(n)
}

/// The value of `max-stale` (RFC 9111 §5.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness is acceptable.
    Any,
    /// `max-stale=N`: at most `N` seconds of staleness.
    Seconds(u32),
    /// A value that is not valid `delta-seconds`; a cache should not serve stale on its account.
    Invalid,
}

/// The field names of a qualified `no-cache="..."` or `private="..."` (RFC 9111 §5.2.2.4,
/// §5.2.2.7), in order of appearance, as received (compare them case-insensitively).
#[derive(Clone, Debug)]
pub struct FieldNames<'a> {
    /// The lists still to walk: each is the unquoted argument of one occurrence.
    lists: std::slice::Iter<'a, Entry<'a>>,
    kind: Kind,
    current: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

// `slice::split` hands its predicate a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_comma(b: &u8) -> bool {
    *b == b','
}

impl<'a> FieldNames<'a> {
    /// Field names of every occurrence of `kind`, or `None` when any occurrence is unqualified,
    /// malformed or lists something that is not a field name, or when the lists are all empty.
    /// Each `None` case makes the caller fall back to the unqualified directive, which is the
    /// more restrictive reading (RFC 9111 §4.2.1: the most restrictive directive is honoured).
    pub(crate) fn new(entries: &'a [Entry<'a>], kind: Kind) -> Option<Self> {
        let mut any = false;
        for e in entries.iter().filter(|e| e.kind == kind) {
            let list = match e.value {
                RawValue::Token(t) | RawValue::Quoted(t) => t,
                RawValue::None | RawValue::Malformed(_) => return None,
            };
            for name in list.split(is_comma) {
                let name = trim(name);
                if name.is_empty() {
                    continue;
                }
                if !is_token(name) {
                    return None;
                }
                any = true;
            }
        }
        any.then(|| FieldNames {
            lists: entries.iter(),
            kind,
            current: [].split(is_comma as fn(&u8) -> bool),
        })
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

impl<'a> Iterator for FieldNames<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            for name in self.current.by_ref() {
                let name = trim(name);
                if !name.is_empty() {
                    // Checked to be a token, hence ASCII, in `new`.
                    return std::str::from_utf8(name).ok();
                }
            }
            let e = self.lists.by_ref().find(|e| e.kind == self.kind)?;
            if let RawValue::Token(t) | RawValue::Quoted(t) = e.value {
                self.current = t.split(is_comma as fn(&u8) -> bool);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds_cases() {
        let cases: &[(&[u8], Result<u32, InvalidValue>)] = &[
            (b"0", Ok(0)),
            (b"3600", Ok(3600)),
            (b"003600", Ok(3600)),
            (b"2147483647", Ok(2_147_483_647)),
            (b"2147483648", Ok(DELTA_SECONDS_MAX)),
            (b"2147483649", Ok(DELTA_SECONDS_MAX)),
            (b"99999999999999999999999999", Ok(DELTA_SECONDS_MAX)),
            (b"-1", Err(InvalidValue::Negative)),
            (b"-", Err(InvalidValue::NotDeltaSeconds)),
            (b"", Err(InvalidValue::NotDeltaSeconds)),
            (b"3600.0", Err(InvalidValue::NotDeltaSeconds)),
            (b"a3600", Err(InvalidValue::NotDeltaSeconds)),
            (b"3600a", Err(InvalidValue::NotDeltaSeconds)),
            (b"'3600'", Err(InvalidValue::NotDeltaSeconds)),
            (b"+5", Err(InvalidValue::NotDeltaSeconds)),
        ];
        for (input, expect) in cases {
            assert_eq!(
                delta_seconds(input),
                *expect,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn unescape_resolves_quoted_pairs() {
        assert_eq!(&*unescape(br#"a\"b\\c\d"#), br#"a"b\cd"#);
        assert!(matches!(unescape(b"plain"), Cow::Borrowed(_)));
    }
}
