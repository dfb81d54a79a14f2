//! A misbehaving function for the runtime's limit tests. It picks its misdeed from the last
//! segment of the request path, so any route prefix works (`/loop`, `/t/hostile/loop`, ...):
//!
//! - `loop`: spins forever.
//! - `memory`: allocates and touches 1 MiB after 1 MiB, forever.
//! - `recurse`: recurses without end with 1 KiB of linear-memory stack per call, so the 64 KiB
//!   stack overflows (an out-of-bounds trap) after about 60 calls.
//! - `recurse-deep`: recurses without end with 16 bytes of linear-memory stack per call, so an
//!   engine call-depth limit below about 4000 (such as 1024) stops it before the stack runs out.
//! - `flood`: writes headers, then a body without end, to stdout.
//! - `stderr-flood`: writes lines without end to stderr.
//! - `trap`: executes `unreachable`.
//! - `panic`: panics (which aborts: the release profile has `panic = "abort"`).
//! - `exit`: exits with status 3 without writing a response.
//! - `spin?ms=N`: computes for about N ms, then answers `done`.
//! - `echo`: answers 200 (text/plain) with everything it was given, to check the CGI contract:
//!   lines `method=`, `path=`, `query=` (raw), `env:` then every variable as `NAME=value` sorted
//!   by name, `argv:` then `<index>=<arg>`, `body_len=<bytes>`, `body:`, then the body as is.
//! - `status`: answers `201 Created` with `X-Custom: yes` and `Location: /somewhere`.
//!
//! And for the key-value imports (see `kv.rs`), each answering 200 with text:
//!
//! - `kv-bad-pointers`: calls the raw imports with pointers and lengths outside memory (and
//!   one overflowing), one bad argument per call, and answers a line `<call>=<code>` for each:
//!   every code should be -5, `BAD_POINTER`.
//! - `kv-no-store`: a `kv_set` on the store `nope`: `code=<code>` (should be -2).
//! - `kv-big`: a `kv_set` of a 1 MiB + 1 byte value, then one with a 1025-byte key, both on
//!   `default`: `value=<code>` and `key=<code>` (should be -4 and -3).
//! - `kv?op=get|set|delete|exists|incr|counter|cas|list|page&store=&key=&value=&...`: one
//!   operation through the SDK; `kv.rs` lists the parameters and answers.
//!
//! - `fetch?url=...`: outbound HTTP (see `fetch.rs`).
//!
//! Anything else is a 404.

mod fetch;
mod kv;

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};
use wisp_sdk::{Request, Response};

fn main() {
    wisp_sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    let action = req.path().rsplit('/').next().unwrap_or("");
    match action {
        "loop" => spin_forever(),
        "memory" => hog_memory(),
        "recurse" => {
            let depth = recurse(0);
            Response::text(200, format!("returned from depth {depth}"))
        }
        "recurse-deep" => {
            let depth = recurse_deep(0);
            Response::text(200, format!("returned from depth {depth}"))
        }
        "flood" => flood_stdout(),
        "stderr-flood" => flood_stderr(),
        "trap" => trap(),
        "panic" => panic!("hostile: deliberate panic"),
        "exit" => std::process::exit(3),
        "spin" => spin(&req),
        "echo" => echo(&req),
        "kv" => kv::op(&req),
        "fetch" => fetch::fetch(&req),
        "kv-bad-pointers" | "kv-no-store" | "kv-big" => kv::raw(action),
        "status" => Response::text(201, "created\n")
            .header("X-Custom", "yes")
            .header("Location", "/somewhere"),
        _ => Response::not_found(),
    }
}

fn spin_forever() -> ! {
    // black_box makes each step opaque, so the optimizer cannot drop the side-effect-free loop.
    let mut counter = 0u64;
    loop {
        counter = black_box(counter).wrapping_add(1);
    }
}

fn hog_memory() -> ! {
    const MIB: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; MIB];
        // Write every page so the memory is really used, not just reserved.
        for i in (0..MIB).step_by(4096) {
            chunk[i] = i as u8;
        }
        hoard.push(black_box(chunk));
    }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // The frame array and the work after the call keep this from becoming a loop; the check on
    // an opaque value only keeps rustc's unconditional-recursion lint quiet.
    let mut frame = [0u8; 1024];
    frame[(depth % 1024) as usize] = depth as u8;
    if black_box(depth) == u64::MAX {
        return depth;
    }
    let deeper = recurse(black_box(depth + 1));
    deeper.wrapping_add(u64::from(black_box(&frame)[0]))
}

#[inline(never)]
fn recurse_deep(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    // Adding after the call keeps it from being a tail call, and the opaque result keeps LLVM
    // from turning the recursion into a loop with an accumulator. black_box spills its value to
    // the stack: those are the 16 bytes per call.
    black_box(recurse_deep(depth + 1)).wrapping_add(1)
}

fn flood_stdout() -> ! {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(b"Content-Type: text/plain\n\n");
    let line = [b'x'; 63]
        .iter()
        .copied()
        .chain([b'\n'])
        .collect::<Vec<u8>>()
        .repeat(1024);
    // Errors are ignored: the point is that the host, not the guest, must stop this.
    loop {
        let _ = stdout.write_all(&line);
    }
}

fn flood_stderr() -> ! {
    let mut stderr = std::io::stderr().lock();
    let mut n = 0u64;
    loop {
        let _ = writeln!(stderr, "hostile: stderr flood line {n}");
        n = n.wrapping_add(1);
    }
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn spin(req: &Request) -> Response {
    let Some(ms) = req.query("ms").and_then(|ms| ms.parse::<u64>().ok()) else {
        return Response::text(400, "spin needs ?ms=<milliseconds>\n");
    };
    let until = Instant::now() + Duration::from_millis(ms);
    let mut acc = 0u64;
    while Instant::now() < until {
        for i in 0..1000u64 {
            acc = black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
    }
    black_box(acc);
    Response::text(200, "done")
}

fn echo(req: &Request) -> Response {
    let mut out = format!(
        "method={}\npath={}\nquery={}\n",
        req.method(),
        req.path(),
        req.query_string()
    );
    out.push_str("env:\n");
    for (name, value) in req.vars() {
        out.push_str(&format!("{name}={value}\n"));
    }
    out.push_str("argv:\n");
    for (i, arg) in req.args().iter().enumerate() {
        out.push_str(&format!("{i}={arg}\n"));
    }
    out.push_str(&format!("body_len={}\nbody:\n", req.body().len()));
    let mut body = out.into_bytes();
    body.extend_from_slice(req.body());
    Response::new(200).body(body)
}
