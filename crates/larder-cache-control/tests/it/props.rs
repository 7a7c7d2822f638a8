//! Property tests: round trips, robustness against arbitrary bytes, and agreement with a small
//! reference parser.

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use larder_cache_control::{CacheControl, DELTA_SECONDS_MAX, InvalidValue};
use proptest::prelude::*;

use crate::cases::assert_round_trip;

const TCHARS: &str =
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A generated directive: name and `None` / token / quoted argument (unescaped text).
#[derive(Clone, Debug)]
enum Arg {
    None,
    Token(String),
    Quoted(String),
}

fn token() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TCHARS.as_bytes().to_vec()), 1..12)
        .prop_map(|v| String::from_utf8(v).expect("ascii"))
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
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
            "MAX-AGE",
            "No-Cache",
        ])
        .prop_map(str::to_owned),
        token(),
    ]
}

fn arg() -> impl Strategy<Value = Arg> {
    prop_oneof![
        Just(Arg::None),
        token().prop_map(Arg::Token),
        "[0-9]{1,12}".prop_map(Arg::Token),
        // Quoted text: printable ASCII (including `"` and `\`, which get escaped), spaces, tabs.
        "[ -~\t]{0,16}".prop_map(Arg::Quoted),
    ]
}

fn directive() -> impl Strategy<Value = (String, Arg)> {
    (name(), arg())
}

fn render(name: &str, arg: &Arg) -> String {
    match arg {
        Arg::None => name.to_owned(),
        Arg::Token(t) => format!("{name}={t}"),
        Arg::Quoted(q) => {
            let escaped: String = q
                .chars()
                .flat_map(|c| {
                    let esc = (c == '"' || c == '\\').then_some('\\');
                    esc.into_iter().chain(std::iter::once(c))
                })
                .collect();
            format!("{name}=\"{escaped}\"")
        }
    }
}

fn expected_value(arg: &Arg) -> Option<String> {
    match arg {
        Arg::None => None,
        Arg::Token(t) | Arg::Quoted(t) => Some(t.clone()),
    }
}

/// Checks that `cc.iter()` contains `list` as a subsequence, with equal names and values.
fn contains_in_order(cc: &CacheControl<'_>, list: &[(String, Arg)]) -> bool {
    let mut it = cc.iter();
    list.iter().all(|(name, arg)| {
        it.by_ref().any(|d| {
            d.name() == name
                && !d.is_malformed()
                && d.value().map(std::borrow::Cow::into_owned) == expected_value(arg)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_lists_parse_and_round_trip(
        list in proptest::collection::vec(directive(), 0..12),
        sep in proptest::sample::select(vec![",", ", ", " ,\t", ",,", " , , "]),
        lines in 1usize..4,
    ) {
        // Spread the directives over `lines` header lines.
        let mut map = HeaderMap::new();
        let per_line = list.len().div_ceil(lines).max(1);
        for chunk in list.chunks(per_line) {
            let text: Vec<String> = chunk.iter().map(|(n, a)| render(n, a)).collect();
            map.append(CACHE_CONTROL, HeaderValue::from_str(&text.join(sep)).expect("valid"));
        }
        let cc = CacheControl::from_headers(&map);
        prop_assert_eq!(cc.len(), list.len());
        prop_assert!(contains_in_order(&cc, &list));
        assert_round_trip(&cc);
        let hv = cc.to_header_value();
        let again = CacheControl::parse(hv.as_bytes());
        prop_assert!(again.iter().eq(cc.iter()));
        prop_assert_eq!(again.max_age(), cc.max_age());
        prop_assert_eq!(again.to_string(), cc.to_string());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let cc = CacheControl::parse(&bytes);
        exercise(&cc);
        assert_round_trip(&cc);
        if let Ok(hv) = HeaderValue::from_bytes(&bytes) {
            let mut map = HeaderMap::new();
            map.append(CACHE_CONTROL, hv.clone());
            map.append(CACHE_CONTROL, hv);
            let cc = CacheControl::from_headers(&map);
            exercise(&cc);
            assert_round_trip(&cc);
            let cdn = http::HeaderName::from_static("cdn-cache-control");
            let mut map = map.clone();
            map.append(cdn.clone(), HeaderValue::from_bytes(&bytes).expect("checked"));
            exercise(&larder_cache_control::targeted(&map, &[cdn]));
        }
    }

    #[test]
    fn garbage_never_hides_valid_directives(
        list in proptest::collection::vec(directive(), 1..8),
        // Garbage elements: any bytes but `"` (a quote may legitimately open a string that
        // spans commas) placed between valid elements.
        garbage in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("no quote", |b| *b != b'"'), 0..12),
            1..8,
        ),
        // Any bytes at all on a separate line.
        other_line in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut line = Vec::new();
        for (i, (name, arg)) in list.iter().enumerate() {
            if let Some(g) = garbage.get(i) {
                line.extend_from_slice(g);
                line.extend_from_slice(b", ");
            }
            line.extend_from_slice(render(name, arg).as_bytes());
            line.extend_from_slice(b", ");
        }
        let cc = CacheControl::parse(&line);
        prop_assert!(contains_in_order(&cc, &list), "{:?}", String::from_utf8_lossy(&line));
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&other_line) {
            map.append(CACHE_CONTROL, v);
        }
        let clean: Vec<String> = list.iter().map(|(n, a)| render(n, a)).collect();
        map.append(CACHE_CONTROL, HeaderValue::from_str(&clean.join(", ")).expect("valid"));
        prop_assert!(contains_in_order(&CacheControl::from_headers(&map), &list));
    }

    #[test]
    fn agrees_with_reference_parser(
        text in proptest::collection::vec(
            proptest::sample::select(b"ax-9=\"\\, \t;mge".to_vec()), 0..40),
        prefix in proptest::sample::select(vec!["", "max-age=", "max-age=\"", "no-cache=\""]),
    ) {
        let mut line = prefix.as_bytes().to_vec();
        line.extend_from_slice(&text);
        let cc = CacheControl::parse(&line);
        let reference = reference::parse(&line);
        let got: Vec<reference::Item> = cc
            .iter()
            .map(|d| reference::Item {
                name: d.name().to_owned(),
                value: d.value_bytes().map(std::borrow::Cow::into_owned),
                malformed: d.is_malformed(),
            })
            .collect();
        prop_assert_eq!(&got, &reference, "{:?}", String::from_utf8_lossy(&line));
        prop_assert_eq!(cc.max_age(), reference::max_age(&reference));
    }
}

/// Calls every accessor.
fn exercise(cc: &CacheControl<'_>) {
    let _ = (
        cc.max_age(),
        cc.s_maxage(),
        cc.stale_while_revalidate(),
        cc.stale_if_error(),
    );
    let _ = (cc.min_fresh(), cc.max_stale(), cc.is_empty(), cc.len());
    let _ = (
        cc.no_cache(),
        cc.private(),
        cc.no_store(),
        cc.public(),
        cc.must_revalidate(),
    );
    let _ = (
        cc.proxy_revalidate(),
        cc.must_understand(),
        cc.no_transform(),
        cc.immutable(),
    );
    let _ = cc.only_if_cached();
    let _ = cc.no_cache_field_names().map(Iterator::count);
    let _ = cc.private_field_names().map(Iterator::count);
    for d in cc.iter() {
        let _ = (
            d.value(),
            d.raw_value(),
            d.delta_seconds(),
            cc.get(d.name()),
        );
    }
    let _ = cc.errors().count();
    let _ = format!("{cc} {cc:?}");
}

/// A deliberately naive parser, written from the grammar with no attention to speed, to check
/// the real one against.
mod reference {
    use super::{DELTA_SECONDS_MAX, InvalidValue};

    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Item {
        pub(super) name: String,
        pub(super) value: Option<Vec<u8>>,
        pub(super) malformed: bool,
    }

    fn is_tchar(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
    }

    /// Splits at commas outside quoted strings; a quote that is never closed ends at the next
    /// comma after it.
    fn split(line: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < line.len() {
            if line[i] == b',' {
                out.push(&line[start..i]);
                start = i + 1;
            } else if line[i] == b'"' {
                // Look for the closing quote.
                let mut j = i + 1;
                let mut closed = None;
                while j < line.len() {
                    if line[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if line[j] == b'"' {
                        closed = Some(j);
                        break;
                    }
                    j += 1;
                }
                if let Some(c) = closed {
                    i = c;
                } else {
                    match line[i..].iter().position(|&b| b == b',') {
                        Some(p) => i += p - 1,
                        None => i = line.len(),
                    }
                }
            }
            i += 1;
        }
        out.push(&line[start.min(line.len())..]);
        out
    }

    /// If `s` is exactly one quoted-string, its unescaped content.
    fn quoted_string(s: &[u8]) -> Option<Vec<u8>> {
        let inner = s.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        let mut out = Vec::new();
        let mut chars = inner.iter();
        while let Some(&c) = chars.next() {
            match c {
                b'"' => return None,
                b'\\' => out.push(*chars.next()?),
                _ => out.push(c),
            }
        }
        Some(out)
    }

    pub(super) fn parse(line: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        for element in split(line) {
            let element = element.trim_ascii_start();
            let element = element
                .iter()
                .rposition(|&b| b != b' ' && b != b'\t')
                .map_or(&element[..0], |p| &element[..=p]);
            if element.is_empty() {
                continue;
            }
            let name_len = element.iter().take_while(|&&b| is_tchar(b)).count();
            if name_len == 0 {
                continue;
            }
            let name = String::from_utf8(element[..name_len].to_vec()).expect("ascii");
            let rest = &element[name_len..];
            let (value, malformed) = if rest.is_empty() {
                (None, false)
            } else if let Some(v) = rest.strip_prefix(b"=") {
                if !v.is_empty() && v.iter().all(|&b| is_tchar(b)) {
                    (Some(v.to_vec()), false)
                } else if let Some(q) = quoted_string(v) {
                    (Some(q), false)
                } else {
                    (None, true)
                }
            } else {
                (None, true)
            };
            items.push(Item {
                name,
                value,
                malformed,
            });
        }
        items
    }

    pub(super) fn max_age(items: &[Item]) -> Option<Result<u32, InvalidValue>> {
        let first = items
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case("max-age"))?;
        if first.malformed {
            return Some(Err(InvalidValue::Malformed));
        }
        let Some(v) = &first.value else {
            return Some(Err(InvalidValue::Missing));
        };
        let s = String::from_utf8_lossy(v);
        if let Some(digits) = s.strip_prefix('-')
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Some(Err(InvalidValue::Negative));
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Err(InvalidValue::NotDeltaSeconds));
        }
        let digits = s.trim_start_matches('0');
        let n: u128 = if digits.is_empty() {
            0
        } else if digits.len() > 30 {
            u128::from(DELTA_SECONDS_MAX)
        } else {
            digits.parse().expect("at most 30 digits")
        };
        Some(Ok(
            u32::try_from(n.min(u128::from(DELTA_SECONDS_MAX))).expect("capped")
        ))
    }
}
