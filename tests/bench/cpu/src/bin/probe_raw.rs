//! Answers `ok` with one write to fd 1 and nothing else: no environment, no stdin, no SDK.
//! Beside `trivial` (the SDK's smallest function), it shows what the SDK's request parsing costs.
use std::io::Write;

fn main() {
    let _ = std::io::stdout().write_all(b"Content-Type: text/plain\n\nok");
}
