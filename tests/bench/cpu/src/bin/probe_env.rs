//! Reads the environment and stdin as the SDK does (`std::env::vars_os`, `read_to_end`), then
//! answers `ok` with one write: the SDK's input side without its maps and response builder.
use std::io::{Read, Write};

fn main() {
    let vars = std::env::vars_os().count();
    let mut body = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut body);
    let out = format!("Content-Type: text/plain\n\nok {vars} {}", body.len());
    let _ = std::io::stdout().write_all(out.as_bytes());
}
