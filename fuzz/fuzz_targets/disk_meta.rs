//! The disk storage's meta file decoder: arbitrary bytes decode to a meta file or an error,
//! never a panic or a huge allocation; a file that decodes re-encodes to the same bytes.
#![no_main]

use larder_storage_disk::format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = format::decode_header(data);
    if let Ok(file) = format::decode(data) {
        let (head, _) = header.expect("a file that decodes has a header that decodes");
        assert_eq!(head.key, file.key);
        let crcs: Vec<u32> = (0..file.chunk_count())
            .map(|i| file.chunk_crc(i).expect("every chunk has a checksum"))
            .collect();
        let again = format::encode(
            file.id,
            file.created,
            file.body_len,
            file.chunk_size,
            &file.key,
            file.meta,
            &crcs,
            file.inline_body,
        );
        assert_eq!(again, data);
    }
});
