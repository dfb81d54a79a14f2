//! The function configuration and manifest parsers: any text is a configuration or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    if let Ok(config) = serde_json::from_str::<wisp::config::FunctionConfig>(text) {
        let _ = config.validate();
    }
    let _ = wisp::config::Manifest::parse(text, Path::new("/fuzz/wisp.json"));
});
