//! Targeted cache-control fields such as `CDN-Cache-Control` (RFC 9213).

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::CacheControl;
use crate::cache_control::Duplicates;
use crate::parse::Kind;

/// Which field [`targeted_with_source`] took the directives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The targeted field at this index of the target list.
    Targeted(usize),
    /// `Cache-Control`: no targeted field was present, valid and non-empty.
    CacheControl,
}

/// The directives that govern a response for a cache with the given target list (RFC 9213
/// §2.2): the first field of `targeted_names` (most specific first) that is present, valid and
/// non-empty, else `Cache-Control`.
///
/// A targeted field is a Structured Field Dictionary (RFC 9213 §2.1, RFC 8941 §3.2). It is
/// ignored when it does not parse as one, is empty, or gives a known directive a value of the
/// wrong type (`max-age="60"`, `max-age=1.5`, `max-age=-1`, a bare `max-age`, `no-store=?0`):
/// RFC 9213 §2.1 says a cache SHOULD NOT consume such values. In the chosen targeted field,
/// parameters are ignored and a repeated directive counts by its last occurrence (RFC 8941).
///
/// ```
/// use http::{HeaderMap, HeaderName, header::CACHE_CONTROL};
/// use larder_cache_control::targeted;
///
/// let cdn = HeaderName::from_static("cdn-cache-control");
/// let mut headers = HeaderMap::new();
/// headers.insert(CACHE_CONTROL, "max-age=60".parse()?);
/// headers.insert(cdn.clone(), "max-age=3600".parse()?);
/// assert_eq!(targeted(&headers, &[cdn.clone()]).max_age(), Some(Ok(3600)));
///
/// // An invalid targeted field is ignored.
/// headers.insert(cdn.clone(), "max-age=\"3600\"".parse()?);
/// assert_eq!(targeted(&headers, &[cdn]).max_age(), Some(Ok(60)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn targeted<'a>(headers: &'a HeaderMap, targeted_names: &[HeaderName]) -> CacheControl<'a> {
    targeted_with_source(headers, targeted_names).0
}

/// Like [`targeted`], also saying which field won.
pub fn targeted_with_source<'a>(
    headers: &'a HeaderMap,
    targeted_names: &[HeaderName],
) -> (CacheControl<'a>, Source) {
    for (i, name) in targeted_names.iter().enumerate() {
        if let Some(cc) = parse_targeted(headers, name) {
            return (cc, Source::Targeted(i));
        }
    }
    (
        CacheControl::from_headers_named(CACHE_CONTROL, headers),
        Source::CacheControl,
    )
}

/// Parses the targeted field `name` of `headers`: `None` when it is absent, empty or invalid
/// (RFC 9213 §2.1).
pub fn parse_targeted<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<CacheControl<'a>> {
    let lines = headers.get_all(name);
    let mut members = 0;
    for line in &lines {
        members += sf::dictionary_members(line.as_bytes())?;
    }
    if members == 0 {
        return None;
    }
    Some(CacheControl::from_lines(
        lines.iter().map(HeaderValue::as_bytes),
        true,
        Duplicates::Last,
    ))
}

/// A validating (not value-producing) Structured Field Dictionary parser (RFC 8941 §4.2.2),
/// with the type constraints RFC 9213 §2.1 puts on cache directives.
mod sf {
    use super::Kind;

    /// The type of a bare item or inner list.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Item {
        Integer { negative: bool },
        Decimal,
        String,
        Token,
        Bytes,
        Boolean(bool),
        InnerList,
    }

    struct Parser<'a> {
        b: &'a [u8],
        i: usize,
    }

    /// The number of members of the dictionary in `line`, or `None` when it is not a valid
    /// dictionary or a known directive has a value of the wrong type.
    pub(super) fn dictionary_members(line: &[u8]) -> Option<usize> {
        let mut p = Parser { b: line, i: 0 };
        p.skip_sp();
        let mut members = 0;
        if p.at_end() {
            return Some(0);
        }
        loop {
            let key = p.key()?;
            let item = if p.eat(b'=') {
                p.member_value()?
            } else {
                Item::Boolean(true)
            };
            p.parameters()?;
            if !allowed(Kind::classify(key), item) {
                return None;
            }
            members += 1;
            p.skip_ows();
            if p.at_end() {
                return Some(members);
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            if p.at_end() {
                return None;
            }
        }
    }

    /// RFC 9213 §2.1: the types a known directive's value maps to.
    fn allowed(kind: Kind, item: Item) -> bool {
        match kind {
            Kind::MaxAge
            | Kind::SMaxage
            | Kind::StaleWhileRevalidate
            | Kind::StaleIfError
            | Kind::MinFresh => item == Item::Integer { negative: false },
            Kind::MaxStale => matches!(
                item,
                Item::Integer { negative: false } | Item::Boolean(true)
            ),
            Kind::NoCache | Kind::Private => matches!(item, Item::String | Item::Boolean(true)),
            Kind::NoStore
            | Kind::Public
            | Kind::MustRevalidate
            | Kind::ProxyRevalidate
            | Kind::MustUnderstand
            | Kind::NoTransform
            | Kind::Immutable
            | Kind::OnlyIfCached => item == Item::Boolean(true),
            Kind::Extension | Kind::Unnamed => true,
        }
    }

    impl<'a> Parser<'a> {
        fn at_end(&self) -> bool {
            self.i >= self.b.len()
        }

        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn skip_sp(&mut self) {
            while self.eat(b' ') {}
        }

        fn skip_ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
        }

        fn key(&mut self) -> Option<&'a [u8]> {
            let start = self.i;
            match self.peek()? {
                b'a'..=b'z' | b'*' => self.i += 1,
                _ => return None,
            }
            while matches!(
                self.peek(),
                Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
            ) {
                self.i += 1;
            }
            Some(&self.b[start..self.i])
        }

        fn member_value(&mut self) -> Option<Item> {
            if self.eat(b'(') {
                loop {
                    self.skip_sp();
                    if self.eat(b')') {
                        return Some(Item::InnerList);
                    }
                    self.bare_item()?;
                    self.parameters()?;
                    if !matches!(self.peek(), Some(b' ' | b')')) {
                        return None;
                    }
                }
            }
            self.bare_item()
        }

        fn parameters(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.skip_sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare_item()?;
                }
            }
            Some(())
        }

        fn bare_item(&mut self) -> Option<Item> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => self.string(),
                b':' => self.bytes(),
                b'?' => {
                    self.i += 1;
                    match self.peek()? {
                        b'0' => {
                            self.i += 1;
                            Some(Item::Boolean(false))
                        }
                        b'1' => {
                            self.i += 1;
                            Some(Item::Boolean(true))
                        }
                        _ => None,
                    }
                }
                c if c.is_ascii_alphabetic() || c == b'*' => {
                    self.i += 1;
                    while let Some(c) = self.peek() {
                        if crate::parse::is_tchar(c) || c == b':' || c == b'/' {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                    Some(Item::Token)
                }
                _ => None,
            }
        }

        fn number(&mut self) -> Option<Item> {
            let negative = self.eat(b'-');
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            let int_digits = self.i - start;
            if int_digits == 0 {
                return None;
            }
            if self.eat(b'.') {
                let frac_start = self.i;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                let frac_digits = self.i - frac_start;
                (int_digits <= 12 && (1..=3).contains(&frac_digits)).then_some(Item::Decimal)
            } else {
                (int_digits <= 15).then_some(Item::Integer { negative })
            }
        }

        fn string(&mut self) -> Option<Item> {
            self.i += 1;
            loop {
                match self.peek()? {
                    b'"' => {
                        self.i += 1;
                        return Some(Item::String);
                    }
                    b'\\' => {
                        self.i += 1;
                        if !matches!(self.peek()?, b'"' | b'\\') {
                            return None;
                        }
                        self.i += 1;
                    }
                    0x20..=0x7e => self.i += 1,
                    _ => return None,
                }
            }
        }

        fn bytes(&mut self) -> Option<Item> {
            self.i += 1;
            loop {
                match self.peek()? {
                    b':' => {
                        self.i += 1;
                        return Some(Item::Bytes);
                    }
                    c if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') => {
                        self.i += 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::dictionary_members;

        #[test]
        fn dictionary_validation() {
            let cases: &[(&str, Option<usize>)] = &[
                ("", Some(0)),
                ("   ", Some(0)),
                ("max-age=3600", Some(1)),
                ("foobar, max-age=3600", Some(2)),
                ("max-age=10000, &&&&&", None),
                ("max-age=\"10000\"", None),
                ("max-age=1.5", None),
                ("max-age=-1", None),
                ("max-age", None),
                ("max-age =100", None),
                ("max-age= 100", None),
                ("MaX-aGe=3600", None),
                ("max-age=3600,", None),
                ("max-age=1234567890123456", None),
                ("no-cache=\"set-cookie\", private", Some(2)),
                ("no-store=?0", None),
                ("no-store=?1", Some(1)),
                ("max-age=60;x=1, ext=(a \"b\" 1.5);q", Some(2)),
                ("ext=:aGk=:, other=?0, t=a/b:c", Some(3)),
                ("ext=\"\\n\"", None),
                ("max-age=60,\tno-store", Some(2)),
            ];
            for (input, expect) in cases {
                assert_eq!(dictionary_members(input.as_bytes()), *expect, "{input}");
            }
        }
    }
}
