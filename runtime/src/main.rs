//! The `wisp` binary: parse, then execute (see `wisp::cli`).

use std::process::ExitCode;

/// The static musl binaries' allocator. musl's own `malloc` maps and unmaps every large
/// allocation, and each invocation's linear memory is one: the server did about half the
/// requests/s of the glibc build, at twice the CPU per request. dlmalloc (pure Rust) keeps
/// freed memory for reuse and brings it level with glibc (boards/bench.sh; boards/README.md
/// has the figures). glibc builds, the static armv7 one included, keep glibc's `malloc`.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    match wisp::cli::main(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("wisp: {error}");
            ExitCode::from(2)
        }
    }
}
