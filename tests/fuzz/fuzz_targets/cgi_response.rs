//! The CGI response parser: any stdout a function writes becomes a response or a clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|stdout: &[u8]| {
    if let Ok(response) = wisp::wagi::response(stdout.to_vec()) {
        assert!((100..=999).contains(&response.status), "{}", response.status);
    }
});
