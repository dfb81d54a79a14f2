//! Valid modules from wasm-smith, each with a `_start`, compiled and run as a function is:
//! tight fuel, memory and time, a fresh store. Whatever the module does, the run ends with an
//! outcome (an exit status or the limit or trap that stopped it), never a host panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wasm_smith::{Config, Module as Smith};
use wisp::engine::{self, Invocation, Limits, Module};

/// The exports every generated module must have: a `_start` to run.
fn exports() -> &'static [u8] {
    static EXPORTS: OnceLock<Vec<u8>> = OnceLock::new();
    EXPORTS.get_or_init(|| wat::parse_str(r#"(module (func (export "_start")))"#).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut config = Config {
        exports: Some(exports().to_vec()),
        max_memory32_bytes: 4 << 20,
        max_memories: 1,
        max_tables: 2,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        exceptions_enabled: false,
        gc_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        // wasmi's handlers call each other in tail position; only an optimized build without
        // debug assertions makes those calls jumps, so tests/fuzz.sh builds this target with
        // `-O`. Guest tail calls are left out as well (an endless `return_call` loop ends at
        // its fuel limit in release builds: engine::tests::an_endless_tail_call_loop_...).
        tail_call_enabled: false,
        ..Config::default()
    };
    config.canonicalize_nans = false;
    let Ok(smith) = Smith::new(config, &mut u) else {
        return;
    };
    let wasm = smith.to_bytes();
    let limits = Limits {
        fuel: 200_000,
        timeout: Duration::from_millis(200),
        memory_bytes: 8 << 20,
        max_recursion_depth: 256,
        ..Limits::default()
    };
    let Ok(module) = Module::compile(&wasm, limits) else {
        return;
    };
    let outcome = engine::run_here(
        module,
        Invocation {
            args: vec!["fuzz".into()],
            ..Invocation::default()
        },
    );
    // An outcome, whatever it is; and its buffers within their caps.
    assert!(outcome.stdout.len() <= Limits::default().stdout_bytes);
    let _ = outcome.result;
});
