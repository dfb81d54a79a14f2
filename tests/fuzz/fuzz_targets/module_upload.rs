//! What a deploy does with the uploaded bytes before anything is stored: validation and
//! compilation under the default limits. Arbitrary bytes are refused with a reason, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp::engine::{Limits, Module};

fuzz_target!(|wasm: &[u8]| {
    let _ = Module::compile(wasm, Limits::default());
});
