//! The `Cache-Status` field (RFC 9211) parsed, so tests assert on its members' parameters rather
//! than on substrings of the text.
//!
//! The field is a Structured Fields List (RFC 8941 §3.1) of Items: each member is a cache's name
//! (a Token or a String) with parameters. The parameters RFC 9211 §2 defines get their own
//! fields on [`Member`]; any other parameter is kept in [`Member::other`]. `larder-cache`'s
//! `cache_status` module only renders the field, so the kit parses it here.

use std::fmt;

/// A parsed `Cache-Status` field: its members in order, from the cache nearest the origin to the
/// one nearest the client (RFC 9211 §2), so the proxy's own member is the last.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStatus {
    text: String,
    members: Vec<Member>,
}

/// One cache's member of the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    /// The cache's name.
    pub name: String,
    /// `hit`: the response was served from this cache without going forward.
    pub hit: bool,
    /// `fwd`: why the request went forward (`uri-miss`, `stale`, `bypass`, …).
    pub fwd: Option<String>,
    /// `fwd-status`: the status of the response from the next hop.
    pub fwd_status: Option<u16>,
    /// `ttl`: the response's remaining freshness lifetime, in seconds.
    pub ttl: Option<i64>,
    /// `stored`: whether the cache stored the forwarded response.
    pub stored: Option<bool>,
    /// `collapsed`: whether the request was collapsed with another.
    pub collapsed: Option<bool>,
    /// `key`: the cache key, as the cache writes it.
    pub key: Option<String>,
    /// `detail`: implementation-specific detail.
    pub detail: Option<String>,
    /// Every other parameter, in order, with its value.
    pub other: Vec<(String, Value)>,
}

/// A Structured Fields Bare Item (RFC 8941 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An Integer.
    Integer(i64),
    /// A Decimal, as written.
    Decimal(String),
    /// A String, unescaped.
    String(String),
    /// A Token.
    Token(String),
    /// A Byte Sequence, still in base64.
    ByteSequence(String),
    /// A Boolean.
    Boolean(bool),
}

/// Why a field is not a valid `Cache-Status` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The byte offset where parsing stopped.
    pub at: usize,
    /// What was wrong there.
    pub what: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for ParseError {}

impl CacheStatus {
    /// Parses a field value (several field lines joined by `, `).
    ///
    /// # Errors
    ///
    /// When `text` is not a List of Items (RFC 8941 §4.2.1), or a parameter of RFC 9211 has the
    /// wrong type (`fwd-status="x"`).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let members = Parser {
            s: text.as_bytes(),
            at: 0,
        }
        .list()?;
        Ok(Self {
            text: text.to_owned(),
            members,
        })
    }

    /// The members, nearest the origin first.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The last member: the one added by the cache nearest the client.
    pub fn last(&self) -> Option<&Member> {
        self.members.last()
    }

    /// The last member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.name == name)
    }

    /// Whether the field has no member (it was absent or empty).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The field as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Member {
    /// Whether the request went forward for `reason` (`fwd=<reason>`).
    pub fn is_fwd(&self, reason: &str) -> bool {
        self.fwd.as_deref() == Some(reason)
    }

    /// Whether the cache stored the forwarded response (`stored`).
    pub fn is_stored(&self) -> bool {
        self.stored == Some(true)
    }

    /// Whether the cache said it did not store the forwarded response (`stored=?0`).
    pub fn is_not_stored(&self) -> bool {
        self.stored == Some(false)
    }

    /// Whether `detail` is `detail`.
    pub fn has_detail(&self, detail: &str) -> bool {
        self.detail.as_deref() == Some(detail)
    }

    /// The value of another parameter `key`.
    pub fn param(&self, key: &str) -> Option<&Value> {
        self.other.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets the parameter `key`, checking the type RFC 9211 gives it.
    fn set(&mut self, key: String, value: Value) -> Result<(), &'static str> {
        match (key.as_str(), value) {
            ("hit", Value::Boolean(b)) => self.hit = b,
            ("fwd", Value::Token(t)) => self.fwd = Some(t),
            ("fwd-status", Value::Integer(n)) => {
                self.fwd_status = Some(u16::try_from(n).map_err(|_| "fwd-status out of range")?);
            }
            ("ttl", Value::Integer(n)) => self.ttl = Some(n),
            ("stored", Value::Boolean(b)) => self.stored = Some(b),
            ("collapsed", Value::Boolean(b)) => self.collapsed = Some(b),
            ("key", Value::String(s)) => self.key = Some(s),
            ("detail", Value::String(s) | Value::Token(s)) => self.detail = Some(s),
            (
                "hit" | "fwd" | "fwd-status" | "ttl" | "stored" | "collapsed" | "key" | "detail",
                _,
            ) => {
                return Err("a Cache-Status parameter with the wrong type");
            }
            (_, value) => {
                // A repeated key keeps its last value (RFC 8941 §4.2.3.2).
                self.other.retain(|(k, _)| *k != key);
                self.other.push((key, value));
            }
        }
        Ok(())
    }
}

/// A Structured Fields parser over the field's bytes (RFC 8941 §4.2).
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, ParseError> {
        Err(ParseError { at: self.at, what })
    }

    fn skip(&mut self, set: &[u8]) {
        while self.peek().is_some_and(|b| set.contains(&b)) {
            self.at += 1;
        }
    }

    /// RFC 8941 §4.2.1, with the leading and trailing spaces of §4.2 trimmed.
    fn list(&mut self) -> Result<Vec<Member>, ParseError> {
        let mut members = Vec::new();
        self.skip(b" \t");
        while self.peek().is_some() {
            members.push(self.member()?);
            self.skip(b" \t");
            match self.peek() {
                None => break,
                Some(b',') => self.at += 1,
                Some(_) => return self.fail("expected a comma between members"),
            }
            self.skip(b" \t");
            if self.peek().is_none() {
                return self.fail("a trailing comma");
            }
        }
        Ok(members)
    }

    fn member(&mut self) -> Result<Member, ParseError> {
        let (Value::Token(name) | Value::String(name)) = self.bare_item()? else {
            return self.fail("a member that is not a cache name");
        };
        let mut member = Member {
            name,
            ..Member::default()
        };
        while self.peek() == Some(b';') {
            self.at += 1;
            self.skip(b" ");
            let key = self.key()?;
            let value = if self.peek() == Some(b'=') {
                self.at += 1;
                self.bare_item()?
            } else {
                Value::Boolean(true)
            };
            if let Err(what) = member.set(key, value) {
                return self.fail(what);
            }
        }
        Ok(member)
    }

    /// RFC 8941 §4.2.3.3.
    fn key(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        match self.peek() {
            Some(b) if b.is_ascii_lowercase() || b == b'*' => self.at += 1,
            _ => return self.fail("a parameter key must start with a-z or *"),
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
        {
            self.at += 1;
        }
        Ok(self.text(start))
    }

    /// The bytes from `start` to here as text (they are ASCII by construction).
    fn text(&self, start: usize) -> String {
        String::from_utf8_lossy(&self.s[start..self.at]).into_owned()
    }

    /// RFC 8941 §4.2.3.1.
    fn bare_item(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => Ok(self.token()),
            Some(b':') => self.byte_sequence(),
            Some(b'?') => self.boolean(),
            Some(b'(') => self.fail("an inner list, which Cache-Status does not use"),
            _ => self.fail("expected an item"),
        }
    }

    /// RFC 8941 §4.2.4.
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        self.skip(b"0123456789");
        let int_len = self.at - digits;
        if int_len == 0 {
            return self.fail("a number without digits");
        }
        if self.peek() != Some(b'.') {
            if int_len > 15 {
                return self.fail("an integer of more than 15 digits");
            }
            let n = self.text(start).parse().map_err(|_| ParseError {
                at: start,
                what: "an unparsable integer",
            })?;
            return Ok(Value::Integer(n));
        }
        if int_len > 12 {
            return self.fail("a decimal of more than 12 integer digits");
        }
        self.at += 1;
        let frac = self.at;
        self.skip(b"0123456789");
        if !(1..=3).contains(&(self.at - frac)) {
            return self.fail("a decimal needs 1 to 3 fractional digits");
        }
        Ok(Value::Decimal(self.text(start)))
    }

    /// RFC 8941 §4.2.5.
    fn string(&mut self) -> Result<Value, ParseError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.fail("an unterminated string"),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Value::String(out));
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(char::from(c)),
                        _ => return self.fail("a bad escape in a string"),
                    }
                }
                Some(c @ 0x20..=0x7e) => out.push(char::from(c)),
                Some(_) => return self.fail("a string with a non-printable byte"),
            }
            self.at += 1;
        }
    }

    /// RFC 8941 §4.2.6.
    fn token(&mut self) -> Value {
        let start = self.at;
        self.at += 1;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
        {
            self.at += 1;
        }
        Value::Token(self.text(start))
    }

    /// RFC 8941 §4.2.7.
    fn byte_sequence(&mut self) -> Result<Value, ParseError> {
        self.at += 1;
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            self.at += 1;
        }
        let body = self.text(start);
        if self.peek() != Some(b':') {
            return self.fail("an unterminated byte sequence");
        }
        self.at += 1;
        Ok(Value::ByteSequence(body))
    }

    /// RFC 8941 §4.2.8.
    fn boolean(&mut self) -> Result<Value, ParseError> {
        self.at += 1;
        let value = match self.peek() {
            Some(b'0') => false,
            Some(b'1') => true,
            _ => return self.fail("a boolean must be ?0 or ?1"),
        };
        self.at += 1;
        Ok(Value::Boolean(value))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, StatusCode};
    use larder_cache::cache_status::{CacheStatus as Render, ForwardReason};
    use proptest::prelude::*;

    use super::*;

    fn check(text: &str, expect: &[Member]) {
        let parsed = CacheStatus::parse(text).unwrap();
        assert_eq!(parsed.members(), expect, "{text}");
    }

    #[test]
    fn rfc_9211_examples_parse() {
        check(
            "ExampleCache; hit",
            &[Member {
                name: "ExampleCache".into(),
                hit: true,
                ..Member::default()
            }],
        );
        check(
            "OriginCache; hit; ttl=1100, \"CDN Company Here\"; hit; ttl=545",
            &[
                Member {
                    name: "OriginCache".into(),
                    hit: true,
                    ttl: Some(1100),
                    ..Member::default()
                },
                Member {
                    name: "CDN Company Here".into(),
                    hit: true,
                    ttl: Some(545),
                    ..Member::default()
                },
            ],
        );
        check(
            "ExampleCache; fwd=stale; fwd-status=304; stored=?0; detail=\"a \\\"b\\\\\"; x=1.5; y",
            &[Member {
                name: "ExampleCache".into(),
                fwd: Some("stale".into()),
                fwd_status: Some(304),
                stored: Some(false),
                detail: Some("a \"b\\".into()),
                other: vec![
                    ("x".into(), Value::Decimal("1.5".into())),
                    ("y".into(), Value::Boolean(true)),
                ],
                ..Member::default()
            }],
        );
        check("", &[]);
    }

    #[test]
    fn invalid_fields_are_errors() {
        for bad in [
            "a;",
            "a,",
            "a b",
            "a; fwd-status=\"x\"",
            "a; hit=1",
            "a; Hit",
            "(a b)",
            "\"open",
            "a; ttl=1234567890123456",
            "7",
        ] {
            assert!(CacheStatus::parse(bad).is_err(), "{bad}");
        }
    }

    fn reason() -> impl Strategy<Value = ForwardReason> {
        prop::sample::select(vec![
            ForwardReason::Bypass,
            ForwardReason::Method,
            ForwardReason::UriMiss,
            ForwardReason::VaryMiss,
            ForwardReason::Miss,
            ForwardReason::Request,
            ForwardReason::Stale,
            ForwardReason::Partial,
        ])
    }

    proptest! {
        /// What larder-cache renders parses back to the same parameters.
        #[test]
        fn rendered_members_parse_back(
            name in "[ -~]{1,20}",
            fwd in prop::option::of(reason()),
            fwd_status in prop::option::of(100u16..600),
            ttl in prop::option::of(-999_999_999_999_999i64..999_999_999_999_999),
            stored in prop::option::of(any::<bool>()),
            collapsed in prop::option::of(any::<bool>()),
            key in prop::option::of("[ -~]{0,20}"),
            detail in prop::option::of("[ -~]{1,20}"),
            upstream in prop::option::of("[a-z]{1,8}; hit"),
        ) {
            let mut render = Render::new(name.clone());
            render = match fwd {
                Some(reason) => render.fwd(reason),
                None => render.hit(),
            };
            if let Some(s) = fwd_status {
                render = render.fwd_status(StatusCode::from_u16(s).unwrap());
            }
            if let Some(t) = ttl {
                render = render.ttl(t);
            }
            if let Some(s) = stored {
                render = render.stored(s);
            }
            if let Some(c) = collapsed {
                render = render.collapsed(c);
            }
            if let Some(k) = key.clone() {
                render = render.key(k);
            }
            if let Some(d) = detail.clone() {
                render = render.detail(d);
            }
            let existing = upstream.as_deref().map(|u| HeaderValue::from_str(u).unwrap());
            let value = render.append_to_value(existing.as_ref());
            let parsed = CacheStatus::parse(value.to_str().unwrap()).unwrap();
            prop_assert_eq!(parsed.members().len(), 1 + usize::from(upstream.is_some()));
            let ours = parsed.last().unwrap();
            prop_assert_eq!(&ours.name, &name);
            prop_assert_eq!(ours.hit, fwd.is_none());
            prop_assert_eq!(ours.fwd.as_deref(), fwd.as_ref().map(ForwardReason::as_str));
            // `fwd-status`, `stored` and `collapsed` are only rendered with `fwd`.
            let forwarded = fwd.is_some();
            prop_assert_eq!(ours.fwd_status, fwd_status.filter(|_| forwarded));
            prop_assert_eq!(ours.stored, stored.filter(|_| forwarded));
            prop_assert_eq!(ours.collapsed, collapsed.filter(|_| forwarded));
            prop_assert_eq!(ours.ttl, ttl);
            prop_assert_eq!(&ours.key, &key);
            prop_assert_eq!(&ours.detail, &detail);
            prop_assert!(ours.other.is_empty());
        }

        /// Any text is parsed or refused, never a panic.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = CacheStatus::parse(&text);
        }
    }
}
