//! Byte sizes as flags and TOML values accept them: a number of bytes (`268435456`) or a
//! number with a unit (`256MiB`, `20GiB`, `1.5GB` is refused: whole numbers only).
//!
//! Units, case-insensitive: `B`; `K`, `KiB` (1024), `KB` (1000); `M`, `MiB`, `MB`; `G`, `GiB`,
//! `GB`; `T`, `TiB`, `TB`. A single letter is binary, as in nginx (`10g`).

use serde::Deserialize;

/// Parses a byte size: bytes (`268435456`) or a whole number with a unit (`20GiB`, `512MB`;
/// `B`, `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB` binary, `KB`, `MB`, `GB`, `TB` decimal,
/// any case), what size flags and TOML values accept.
///
/// ```
/// use larder_server::config::parse_size;
///
/// assert_eq!(parse_size("20GiB"), Ok(20 << 30));
/// assert_eq!(parse_size("512MB"), Ok(512_000_000));
/// assert!(parse_size("1.5GiB").is_err());
/// ```
///
/// # Errors
///
/// A message naming the value when it is not a whole number with a known unit, or when it
/// does not fit 64 bits.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected bytes or a whole number with a unit (20GiB, 512MB)"
        ));
    }
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// A TOML size: an integer of bytes or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// Reads a size field of the TOML file: `size = 268435456` or `size = "256MiB"`.
pub(crate) fn deserialize_size<'de, D>(d: D) -> Result<u64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match SizeValue::deserialize(d)? {
        SizeValue::Bytes(n) => Ok(n),
        SizeValue::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<u64, &str>) {
        match (parse_size(input), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
            (Err(e), Err(says)) => assert!(e.contains(says), "{input}: {e}"),
            (got, want) => panic!("{input}: {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn sizes_take_units() {
        check("268435456", Ok(268_435_456));
        check("0", Ok(0));
        check("20GiB", Ok(20 << 30));
        check("20gib", Ok(20 << 30));
        check("20G", Ok(20 << 30));
        check("10g", Ok(10 << 30));
        check("512MiB", Ok(512 << 20));
        check("512 MiB", Ok(512 << 20));
        check("64KiB", Ok(64 << 10));
        check("1TiB", Ok(1 << 40));
        check("3GB", Ok(3_000_000_000));
        check("5MB", Ok(5_000_000));
        check("7kb", Ok(7_000));
        check("9B", Ok(9));
        check("", Err("invalid size"));
        check("GiB", Err("invalid size"));
        check("1.5GiB", Err("unknown unit"));
        check("20GiBs", Err("unknown unit"));
        check("-1", Err("invalid size"));
        check("99999999999TiB", Err("too large"));
        check("99999999999999999999", Err("too large"));
    }
}
