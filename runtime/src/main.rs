//! The `wisp` binary: parse, then execute (see `wisp::cli`).

use std::process::ExitCode;

/// The static musl binaries' allocator. musl's own `malloc` maps and unmaps every large
/// allocation (each invocation's linear memory is one) and takes one lock: the server did about
/// half the requests/s of the glibc build. mimalloc (C, compiled by Zig for each target, see
/// boards/build.sh) keeps freed memory and gives each thread its own heap: the static x86_64
/// binary serves function requests a little faster than the glibc build, where the pure-Rust
/// dlmalloc it replaces (one global lock) managed 0.8 of it. mimalloc's transparent huge pages
/// are off (`MI_DEFAULT_ALLOW_THP=0` in .cargo/config.toml): with them the server started at
/// 22 MiB of RSS instead of 6. boards/README.md has the figures. glibc builds keep glibc's
/// `malloc`.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A connection handler's panic must be caught (`catch_unwind` in http/server.rs); on the
    // static binaries the unwinder is Zig's libunwind. tests/emulated.sh runs this on each.
    if std::env::var_os("WISP_CHECK_UNWIND").is_some() {
        return check_unwind();
    }
    match wisp::cli::main(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("wisp: {error}");
            ExitCode::from(2)
        }
    }
}

/// Panics a few frames down on another thread, under `catch_unwind`, as a connection's task
/// does: success when the panic is caught there and the frames' destructors ran.
fn check_unwind() -> ExitCode {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    static DROPPED: AtomicU32 = AtomicU32::new(0);
    struct Frame;
    impl Drop for Frame {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
        }
    }
    #[inline(never)]
    fn down(depth: u32) -> u32 {
        let _frame = Frame;
        if depth == 0 {
            panic!("the unwinding check's deliberate panic");
        }
        down(std::hint::black_box(depth - 1)) + 1
    }
    let depth = std::hint::black_box(3);
    let caught = std::thread::spawn(move || std::panic::catch_unwind(|| down(depth))).join();
    if matches!(caught, Ok(Err(_))) && DROPPED.load(SeqCst) == depth + 1 {
        println!(
            "wisp: unwinding works: the panic was caught and {} frames unwound",
            depth + 1
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("wisp: the panic was not caught ({caught:?})");
        ExitCode::FAILURE
    }
}
