//! Fuzzes the config loader: YAML parsing and validation of sources,
//! notifiers and routes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = vigil::config::parse(Path::new("fuzz.yml"), text, Path::new("/etc/vigil"));
});
