//! `trivial` as a lazy SDK could run it: look up only the variables it needs (`getenv`), read
//! stdin only when there is a body, build the response in one buffer and write it once. Beside
//! `trivial` (the SDK reads every variable into a map, converts each lossily, reads stdin and
//! formats the response through several allocations) it shows what the SDK's eagerness costs.
use std::io::{Read, Write};
use std::os::fd::FromRawFd;

fn main() {
    let method = std::env::var_os("REQUEST_METHOD").unwrap_or_default();
    let len: usize = std::env::var_os("CONTENT_LENGTH")
        .and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    let mut body = Vec::new();
    if len > 0 {
        let _ = std::io::stdin().read_to_end(&mut body);
    }
    std::hint::black_box((&method, &body));
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"Status: 200 OK\nContent-Type: text/plain; charset=utf-8\n\nok");
    // SAFETY: fd 1 is open for the whole run; ManuallyDrop keeps it from being closed.
    let mut stdout = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let _ = stdout.write_all(&out);
}
