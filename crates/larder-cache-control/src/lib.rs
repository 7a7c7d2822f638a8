//! Cache-Control and CDN-Cache-Control parsing (RFC 9111 §5.2, RFC 9213).
//!
//! ```
//! use http::{HeaderMap, header::CACHE_CONTROL};
//! use larder_cache_control::{CacheControl, InvalidValue};
//!
//! let mut headers = HeaderMap::new();
//! headers.append(CACHE_CONTROL, "public, max-age=3600".parse()?);
//! headers.append(CACHE_CONTROL, r#"no-cache="set-cookie", x-ext="a, b""#.parse()?);
//! let cc = CacheControl::from_headers(&headers);
//! assert!(cc.public());
//! assert_eq!(cc.max_age(), Some(Ok(3600)));
//! assert_eq!(cc.s_maxage(), None);
//! let fields: Vec<&str> = cc.no_cache_field_names().into_iter().flatten().collect();
//! assert_eq!(fields, ["set-cookie"]);
//! assert_eq!(cc.get("X-Ext").and_then(|d| d.value()).as_deref(), Some("a, b"));
//!
//! // An invalid value is reported, not fatal: the cache treats the response as stale.
//! let cc = CacheControl::parse(b"max-age=-1, must-revalidate");
//! assert_eq!(cc.max_age(), Some(Err(InvalidValue::Negative)));
//! assert!(cc.must_revalidate());
//! assert_eq!(cc.to_string(), "max-age=-1, must-revalidate");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Parsing
//!
//! `Cache-Control = #cache-directive` and `cache-directive = token [ "=" ( token /
//! quoted-string ) ]` (RFC 9111 §5.2). All field lines of the field count, in order, as one list
//! (RFC 9110 §5.3). Directive names compare case-insensitively; empty list elements (`a,,b`)
//! and optional whitespace around elements are skipped (RFC 9110 §5.6.1). Quoted strings may
//! contain commas and `quoted-pair` escapes; [`Directive::value`] resolves them.
//!
//! [`CacheControl`] borrows from the header values and stores up to eight directives inline,
//! so parsing a typical header does not allocate. Known directives are classified once while
//! parsing, so the typed accessors do not search.
//!
//! Parsing is lenient and never fails (RFC 9111 §5.2.3: unrecognised directives are ignored,
//! not fatal):
//!
//! - An element that starts with a directive name but does not follow the grammar after it
//!   (`max-age= 60`, `max-age =60`, `max-age=60 s`, `no-cache="a` with no closing quote) keeps
//!   its name with a *malformed* value. A known flag directive is still present (so `no-store
//!   junk` still forbids storing — the restrictive reading); a `delta-seconds` directive
//!   reports [`InvalidValue::Malformed`].
//! - An element that does not start with a name (`=5`, `"x"`, `@`) is ignored.
//! - Only commas separate directives: `public; max-age=60` is `public` with a malformed
//!   argument and no `max-age`, so the response gets no explicit freshness from it.
//! - A quoted string that is never closed ends at the next comma after its opening quote, so a
//!   stray quote cannot hide the directives after it. Each field line parses on its own.
//! - [`CacheControl::errors`] lists everything that was malformed or invalid.
//!
//! # `delta-seconds`
//!
//! `max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error`, `min-fresh` and
//! `max-stale` take `delta-seconds = 1*DIGIT` (RFC 9111 §1.2.2). Their accessors return `None`
//! when the directive is absent, `Some(Ok(seconds))` when valid, and `Some(Err(_))` when present
//! but invalid, which a cache treats as stale (RFC 9111 §4.2.1: "caches are encouraged to
//! consider responses that have invalid freshness information to be stale"). In detail:
//!
//! | Value | Result | Why |
//! |---|---|---|
//! | `max-age=003600` | `Ok(3600)` | leading zeros are digits |
//! | `max-age=99999999999` | `Ok(2147483648)` | values past 2^31 saturate at 2^31 (§1.2.2) |
//! | `max-age="3600"` | `Ok(3600)` | recipients ought to accept the quoted form (§5.2) |
//! | `max-age=-1` | `Err(Negative)` | delta-seconds is non-negative |
//! | `max-age=3600.0`, `a3600`, `3600a`, `'3600'` | `Err(NotDeltaSeconds)` | not `1*DIGIT` |
//! | `max-age`, `max-age=` | `Err(Missing)` / `Err(Malformed)` | an argument is required |
//! | `max-age= 3600`, `max-age =3600` | `Err(Malformed)` | no whitespace around `=` |
//!
//! ## Repeated directives
//!
//! When a directive appears more than once, in one line or across lines, **the first
//! occurrence counts**, valid or not (RFC 9111 §4.2.1 allows using the first occurrence or
//! treating the response as stale). This is the rule the public HTTP caching test suite
//! (cache-tests, `cc-parse`) passes for `max-age=1800, max-age=1`; its reverse,
//! `max-age=1, max-age=1800`, is informational there and no rule the RFC allows reuses it.
//! [`CacheControl::iter`] still yields every occurrence.
//!
//! `no-cache` and `private` count as present in any form. Their field-name lists
//! ([`CacheControl::no_cache_field_names`]) are only given when every occurrence is qualified
//! with a clean list of field names; otherwise the directive reads as unqualified, the more
//! restrictive meaning (RFC 9111 §4.2.1, "the most restrictive directive should be honored").
//!
//! # Targeted fields (RFC 9213)
//!
//! [`targeted`] applies RFC 9213 §2.2: the first field in the cache's target list that is
//! present, valid and non-empty replaces `Cache-Control`. Targeted fields are Structured Field
//! Dictionaries, so they are checked against RFC 8941 and the value types RFC 9213 §2.1 infers
//! (`max-age` an Integer, `no-store` a Boolean, `no-cache` a Boolean or String); a field that
//! fails is ignored as §2.1 requires. [`CacheControl::from_headers_named`] parses any field with
//! the plain `Cache-Control` rules instead.
//!
//! # Serialising
//!
//! [`CacheControl::to_header_value`] and `Display` write the directives back as received,
//! `, `-separated; parsing the result gives the same directives again.

mod cache_control;
mod directive;
mod error;
mod headers;
mod parse;
mod targeted;

pub use cache_control::CacheControl;
pub use directive::{DELTA_SECONDS_MAX, Directive, FieldNames, MaxStale};
pub use error::{Error, InvalidValue};
pub use targeted::{Source, parse_targeted, targeted, targeted_with_source};
