//! Error types.

/// Why a directive's argument is not usable as `delta-seconds` (RFC 9111 §1.2.2).
///
/// A cache treats a response whose freshness directive carries an invalid value as stale
/// (RFC 9111 §4.2.1); the rest of the header still applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidValue {
    /// The directive has no argument, as in a bare `max-age`.
    #[error("missing value")]
    Missing,
    /// The argument is a negative number, as in `max-age=-1`.
    #[error("negative value")]
    Negative,
    /// The argument is not a whole number of seconds: `max-age=1.5`, `max-age=a1`,
    /// `max-age='60'`.
    #[error("value is not a whole number of seconds")]
    NotDeltaSeconds,
    /// The directive does not follow the `name=value` syntax, as in `max-age= 60`,
    /// `max-age =60` or `max-age=60 60`.
    #[error("malformed directive syntax")]
    Malformed,
}

/// A problem found while parsing cache directives.
///
/// Parsing itself never fails: malformed directives are skipped or kept with an invalid value,
/// and [`CacheControl::errors`](crate::CacheControl::errors) reports them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A list element that does not start with a directive name; it is ignored.
    #[error("malformed cache directive {text:?}")]
    MalformedDirective {
        /// The element as received (invalid UTF-8 replaced).
        text: String,
    },
    /// A directive whose argument does not follow the syntax, or a known directive whose
    /// argument is invalid for it.
    #[error("invalid value for cache directive {directive}")]
    InvalidValue {
        /// The directive name, lowercase.
        directive: String,
        /// What is wrong with the argument.
        #[source]
        source: InvalidValue,
    },
}
