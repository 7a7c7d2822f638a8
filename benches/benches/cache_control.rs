//! Cache-Control parsing: larder-cache-control against pingora-cache's parser, on the same
//! header maps in the same run. Each iteration parses every `Cache-Control` line of the map and
//! reads `max-age` (and, in `access_all`, a handful of other directives), as a cache does for
//! every response.
//!
//! Cases:
//! - `typical`: `public, max-age=3600`;
//! - `cdn`: a long CDN response header (eleven directives, a quoted list with commas);
//! - `worst20`: twenty directives over two lines, with repeats, quoted strings with escapes,
//!   extensions and odd case.
//!
//! Run: `cargo bench --bench cache_control -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use larder_cache_control::CacheControl;
use pingora_cache::cache_control::CacheControl as PingoraCacheControl;

/// Name, field lines, and the max-age each parser reads: `worst20` repeats max-age, and larder
/// keeps the first occurrence (RFC 9111 §4.2.1) where pingora-cache keeps the last.
const CASES: &[(&str, &[&str], u32, u32)] = &[
    ("typical", &["public, max-age=3600"], 3600, 3600),
    (
        "cdn",
        &[
            "public, max-age=300, s-maxage=31536000, stale-while-revalidate=60, \
           stale-if-error=86400, no-transform, immutable, must-understand, \
           cache-tag=\"product-1234, category-shoes, brand-acme\", x-edge-ttl=600, proxy-revalidate",
        ],
        300,
        300,
    ),
    (
        "worst20",
        &[
            "Public, MAX-AGE=60, s-maxage=\"120\", no-cache=\"set-cookie, authorization\", \
             private=\"x-user\", must-revalidate, proxy-revalidate, no-transform, \
             stale-while-revalidate=30, stale-if-error=600",
            "immutable, must-understand, community=\"UCI \\\"quoted\\\"\", ext-a=token, \
             ext-b, ext-c=\"a, b, c\", max-stale=10, min-fresh=5, only-if-cached, max-age=1",
        ],
        60,
        1,
    ),
];

fn header_map(lines: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        map.append(
            CACHE_CONTROL,
            HeaderValue::from_str(line).expect("valid bench header"),
        );
    }
    map
}

fn parse(c: &mut Criterion) {
    for (name, lines, larder_max_age, pingora_max_age) in CASES {
        let map = header_map(lines);
        // Both parsers see the same directives.
        let larder = CacheControl::from_headers(&map);
        let pingora =
            PingoraCacheControl::from_headers_named("cache-control", &map).expect("header present");
        assert_eq!(larder.max_age(), Some(Ok(*larder_max_age)), "{name}");
        assert_eq!(
            pingora.max_age().ok().flatten(),
            Some(*pingora_max_age),
            "{name}"
        );

        let mut group = c.benchmark_group(format!("cache_control/{name}"));
        group.bench_function("larder", |b| {
            b.iter(|| {
                let cc = CacheControl::from_headers(black_box(&map));
                black_box(cc.max_age())
            });
        });
        group.bench_function("pingora-cache", |b| {
            b.iter(|| {
                let cc = PingoraCacheControl::from_headers_named("cache-control", black_box(&map));
                black_box(cc.map(|cc| cc.max_age().ok()))
            });
        });
        group.bench_function("larder/access_all", |b| {
            b.iter(|| {
                let cc = CacheControl::from_headers(black_box(&map));
                black_box((
                    cc.max_age(),
                    cc.s_maxage(),
                    cc.no_store(),
                    cc.no_cache(),
                    cc.private(),
                    cc.stale_while_revalidate(),
                    cc.stale_if_error(),
                    cc.must_revalidate(),
                ))
            });
        });
        group.bench_function("pingora-cache/access_all", |b| {
            b.iter(|| {
                let cc = PingoraCacheControl::from_headers_named("cache-control", black_box(&map));
                black_box(cc.map(|cc| {
                    (
                        cc.max_age().ok(),
                        cc.s_maxage().ok(),
                        cc.no_store(),
                        cc.no_cache(),
                        cc.private(),
                        cc.stale_while_revalidate().ok(),
                        cc.stale_if_error().ok(),
                        cc.must_revalidate(),
                    )
                }))
            });
        });
        group.finish();
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
