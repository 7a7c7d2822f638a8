//! Cache meta decoding: arbitrary bytes must decode to a meta or an error, never panic; a
//! meta that decodes re-encodes to bytes that decode to the same meta.
#![no_main]

use bytes::Bytes;
use larder_storage::CacheMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let copied = CacheMeta::deserialize(data);
    let shared = CacheMeta::deserialize_shared(&Bytes::copy_from_slice(data));
    assert_eq!(copied.is_ok(), shared.is_ok());
    if let Ok(meta) = copied {
        assert!(shared.is_ok_and(|s| s == meta));
        let _ = (meta.fresh_sec(), meta.variance(), meta.headers().len());
        let bytes = meta.serialize().expect("a decoded meta re-encodes");
        let again = CacheMeta::deserialize(&bytes).expect("re-encoded meta decodes");
        assert!(again == meta);
    }
});
