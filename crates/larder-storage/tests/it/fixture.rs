//! The committed meta fixture must keep decoding to the same values, so entries stored by
//! this version stay readable by later ones.
//!
//! Regenerate (only when adding a new fixture version) with
//! `LARDER_BLESS=1 cargo test -p larder-storage --test it fixture`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use http::{StatusCode, Version};
use larder_storage::{CacheMeta, ResponseHeader};

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data/meta_v1.bin")
}

fn expected_v1() -> CacheMeta {
    let created = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let mut header = ResponseHeader::new(StatusCode::OK);
    header.version = Version::HTTP_2;
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "max-age=3600, stale-while-revalidate=60"),
        ("etag", "\"abc\""),
        ("set-cookie", "a=1"),
        ("vary", "accept-encoding"),
        ("set-cookie", "b=2"),
    ] {
        header
            .append_header(name, value)
            .expect("fixture fields are valid");
    }
    let mut meta = CacheMeta::new(created + Duration::from_hours(1), created, 60, 300, header);
    meta.set_updated(created + Duration::from_secs(10));
    meta.set_variance(larder_storage::hash_key("gzip"));
    meta.set_epoch_override(created - Duration::from_secs(5));
    meta
}

#[test]
fn meta_v1_fixture_still_decodes() {
    let expected = expected_v1();
    if std::env::var_os("LARDER_BLESS").is_some() {
        std::fs::write(fixture_path(), expected.serialize().unwrap()).unwrap();
    }
    let bytes = std::fs::read(fixture_path()).unwrap();
    let meta = CacheMeta::deserialize(&bytes).unwrap();
    assert_eq!(meta, expected);
    let cookies: Vec<_> = meta.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(meta.fresh_sec(), 3605);
    // The writer of this version still produces the same bytes.
    assert_eq!(expected.serialize().unwrap(), bytes);
}
