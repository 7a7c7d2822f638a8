//! The binary's configuration file: any text is a configuration or an error naming what is
//! wrong, never a panic, and the sizes, durations, host patterns, listeners and sites of a file
//! that parses are checked by `validate` without a panic either.
#![no_main]

use larder_server::config::ProxyConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ProxyConfig::from_toml(text) {
        if config.validate().is_ok() {
            // A valid file names at least one listener and one site.
            assert!(!config.listener_list().is_empty());
            assert!(!config.site_list().is_empty());
        }
    }
});
