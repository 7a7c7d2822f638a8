//! Durations as flags and TOML values accept them: a bare number in the unit the key has
//! always had (`lock_timeout_ms = 5000`, `default_ttl_secs = 60`; seconds for keys without a
//! unit in their name) or a string of whole numbers with units (`"5s"`, `"250ms"`, `"2m"`,
//! `"1h30m"`).
//!
//! Units: `ms`, `s`, `m` (minutes), `h`, `d`.

use std::time::Duration;

use serde::Deserialize;

/// What a bare number (no unit) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bare {
    /// Milliseconds (`*_ms` keys).
    Millis,
    /// Seconds (`*_secs` keys and the unit-less keys).
    Secs,
}

/// Parses a duration: a bare whole number in `bare`'s unit, or whole numbers each with a unit
/// (`5s`, `250ms`, `2m`, `1h`, `1h30m`; `ms`, `s`, `m`, `h`, `d`).
///
/// # Errors
///
/// A message naming the value when it is not such a duration or does not fit.
fn parse_duration(s: &str, bare: Bare) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || {
        format!("invalid duration {s:?}: expected a whole number with a unit (250ms, 5s, 2m, 1h)")
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = t
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: too large"))?;
        return Ok(match bare {
            Bare::Millis => Duration::from_millis(n),
            Bare::Secs => Duration::from_secs(n),
        });
    }
    let mut rest = t;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: too large"))?;
        let after = rest[digits..].trim_start();
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = after[..unit_len].to_ascii_lowercase();
        let millis_per: u64 = match unit.as_str() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(bad()),
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {unit:?} (ms, s, m, h, d)"
                ));
            }
        };
        let part = n
            .checked_mul(millis_per)
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
        rest = after[unit_len..].trim_start();
    }
    Ok(total)
}

/// `d` as a whole number of `unit`s.
fn whole(d: Duration, unit: Bare, s: &str) -> Result<u64, String> {
    match unit {
        Bare::Millis => u64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too large")),
        Bare::Secs if d.subsec_nanos() == 0 => Ok(d.as_secs()),
        Bare::Secs => Err(format!("{s:?} is not a whole number of seconds")),
    }
}

/// A duration in milliseconds, as `*_ms` keys and flags take it: `250`, or with units
/// (`250ms`, `5s`).
///
/// # Errors
///
/// A message naming the value when it is not a duration or does not fit.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    whole(parse_duration(s, Bare::Millis)?, Bare::Millis, s)
}

/// A duration in whole seconds, as `*_secs` keys and flags take it: `60`, or with units
/// (`60s`, `2m`).
///
/// # Errors
///
/// A message naming the value when it is not a whole number of seconds or does not fit.
pub fn parse_secs(s: &str) -> Result<u64, String> {
    whole(parse_duration(s, Bare::Secs)?, Bare::Secs, s)
}

/// [`parse_secs`] for the 32-bit settings.
///
/// # Errors
///
/// As [`parse_secs`], and above `u32::MAX` seconds.
pub fn parse_secs_u32(s: &str) -> Result<u32, String> {
    u32::try_from(parse_secs(s)?).map_err(|_| format!("{s:?} is too large"))
}

/// A duration whose bare numbers are seconds (`shutdown_grace`, `connect_timeout`): `30`,
/// `30s`, `250ms`, `1m30s`.
///
/// # Errors
///
/// A message naming the value when it is not a duration or does not fit.
pub fn parse_secs_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s, Bare::Secs)
}

/// A TOML duration: an integer in the key's unit or a string with units.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Number(u64),
    Text(String),
}

impl DurationValue {
    fn text(self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(s) => s,
        }
    }
}

/// Reads a `*_ms` key: `5000` or `"5s"`.
pub(crate) fn deserialize_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_ms(&DurationValue::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

/// Reads a `*_secs` key: `60` or `"1m"`.
pub(crate) fn deserialize_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_secs(&DurationValue::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

/// [`deserialize_secs`] for the 32-bit settings.
pub(crate) fn deserialize_secs_u32<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<u32, D::Error> {
    parse_secs_u32(&DurationValue::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

/// [`deserialize_secs_u32`] for an optional setting: present means `Some`.
pub(crate) fn deserialize_some_secs_u32<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u32>, D::Error> {
    deserialize_secs_u32(d).map(Some)
}

/// Reads a unit-less duration key (`connect_timeout = "5s"`; a bare number is seconds).
pub(crate) fn deserialize_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Duration, D::Error> {
    parse_duration(&DurationValue::deserialize(d)?.text(), Bare::Secs)
        .map_err(serde::de::Error::custom)
}

/// [`deserialize_duration`] for an optional setting: present means `Some`.
pub(crate) fn deserialize_some_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        let ms = |n| Ok(Duration::from_millis(n));
        for (input, bare, want) in [
            ("5s", Bare::Millis, ms(5_000)),
            ("250ms", Bare::Secs, ms(250)),
            ("2m", Bare::Secs, ms(120_000)),
            ("1h", Bare::Secs, ms(3_600_000)),
            ("1h30m", Bare::Secs, ms(5_400_000)),
            ("1d", Bare::Secs, ms(86_400_000)),
            ("5 s", Bare::Secs, ms(5_000)),
            ("10S", Bare::Secs, ms(10_000)),
            ("250", Bare::Millis, ms(250)),
            ("250", Bare::Secs, ms(250_000)),
            ("0", Bare::Secs, ms(0)),
        ] {
            assert_eq!(parse_duration(input, bare), want, "{input}");
        }
        for (input, says) in [
            ("", "invalid duration"),
            ("s", "invalid duration"),
            ("5 seconds", "unknown unit"),
            ("1.5s", "invalid duration"),
            ("-1s", "invalid duration"),
            ("5s3", "invalid duration"),
            ("99999999999999999999s", "too large"),
            ("999999999999999999d", "too large"),
        ] {
            let e = parse_duration(input, Bare::Secs).unwrap_err();
            assert!(e.contains(says), "{input}: {e}");
        }
    }

    #[test]
    fn old_keys_keep_their_unit() {
        assert_eq!(parse_ms("5000"), Ok(5000));
        assert_eq!(parse_ms("5s"), Ok(5000));
        assert_eq!(parse_secs("60"), Ok(60));
        assert_eq!(parse_secs("2m"), Ok(120));
        assert!(
            parse_secs("500ms")
                .unwrap_err()
                .contains("whole number of seconds")
        );
        assert_eq!(parse_secs_u32("1h"), Ok(3600));
        assert!(parse_secs_u32("99999999999").is_err());
    }

    proptest::proptest! {
        /// Any text is a duration or an error, never a panic; a sum of whole numbers with
        /// units is their total.
        #[test]
        fn any_text_parses_or_errs(s in "\\PC{0,24}") {
            let _ = parse_duration(&s, Bare::Secs);
            let _ = parse_duration(&s, Bare::Millis);
        }

        #[test]
        fn parts_add_up(parts in proptest::collection::vec((0_u64..100_000, 0_usize..5), 1..5)) {
            const UNITS: [(&str, u64); 5] =
                [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
            let text = parts.iter().fold(String::new(), |mut t, (n, u)| {
                t.push_str(&n.to_string());
                t.push_str(UNITS[*u].0);
                t
            });
            let want: u64 = parts.iter().map(|(n, u)| n * UNITS[*u].1).sum();
            proptest::prop_assert_eq!(
                parse_duration(&text, Bare::Secs),
                Ok(Duration::from_millis(want)),
                "{}", text
            );
        }
    }
}
