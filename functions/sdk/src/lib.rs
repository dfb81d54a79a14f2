//! Write Wisp functions: HTTP handlers that run as WebAssembly on the Wisp runtime.
//!
//! A Wisp function is a WASI preview1 command module. For every request the host starts a fresh
//! instance and speaks the WAGI contract to it, which is CGI: the request body on stdin, the
//! request line, headers and route data in environment variables, and the response on stdout as
//! CGI header lines, a blank line and the body. This crate does that plumbing so a handler is a
//! closure from [`Request`] to [`Response`]:
//!
//! ```no_run
//! use wisp_sdk::{Request, Response};
//!
//! fn main() {
//!     wisp_sdk::serve(|req: Request| {
//!         let name = req.query("name").unwrap_or_else(|| "world".to_string());
//!         wisp_sdk::log(format_args!("greeting {name}"));
//!         Response::text(200, format!("Hello, {name}!\n"))
//!     })
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip1`, with the link settings that
//! `functions/.cargo/config.toml` holds (a 64 KiB stack keeps instantiation cheap).
//!
//! [`kv`] is the key-value store the host keeps for functions: `kv::Store::default_store()`,
//! then `get`, `set`, `increment`, `compare_and_swap`, `keys` and so on.
//!
//! A function also runs for events: messages on the topics it subscribes to, ticks of its
//! timers and changes to the keys it watches. Each arrives like an HTTP request (a `POST`
//! whose body is the payload), and [`Request::event`] tells which it is ([`events`]). An event
//! succeeds when the handler answers a status below 400, as `Response::new(204)` does; a higher
//! status or a panic fails it, and the host retries topic messages and key changes.
//! [`topics::publish`] sends a message to a topic, delivered only if the invocation succeeds:
//!
//! ```
//! use wisp_sdk::events::Event;
//! use wisp_sdk::{topics, Request, Response};
//!
//! fn handle(req: Request) -> Response {
//!     match req.event() {
//!         // An HTTP request: pass the body on to whoever subscribes to `orders`.
//!         Event::Http => match topics::publish("orders", req.body()) {
//!             Ok(()) => Response::new(202),
//!             Err(e) => Response::text(503, format!("{e}\n")),
//!         },
//!         Event::Topic(message) => {
//!             wisp_sdk::log(format_args!("message {} on {}", message.id, message.topic));
//!             Response::new(204)
//!         }
//!         _ => Response::new(204),
//!     }
//! }
//! # let req = Request::new([("REQUEST_METHOD", "POST")], vec![], b"{}".to_vec());
//! # assert_eq!(handle(req).status(), 202);
//! ```
//!
//! The crate uses std only. Its parsing works on explicit inputs ([`Request::new`],
//! [`Response::to_cgi`]), so handlers can be unit-tested natively without a host.
//!
//! Every request pays for what the SDK does, so it does little: a [`Request`] reads a variable
//! only when the handler asks for it, and on wasm32 the default feature `arena` installs a
//! small bump arena in front of the system allocator as the global allocator, since wasmi
//! charges each `malloc` and `free` far more than the few bytes they usually serve are worth.
//! A function that needs another global allocator turns the default features off.

#![warn(missing_docs)]

pub mod events;
pub mod http;
pub mod kv;
pub mod topics;

#[cfg(any(
    test,
    all(
        feature = "arena",
        target_arch = "wasm32",
        not(target_feature = "atomics")
    )
))]
mod arena;

mod request;
mod response;

pub use request::Request;
pub use response::{DEFAULT_CONTENT_TYPE, Response};

use std::fmt;
use std::io::{self, Write};

/// See [`arena`]: without it, allocations are most of a small function's fuel.
#[cfg(all(
    feature = "arena",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new(std::alloc::System);

/// Runs `handler` on this instance's request and writes its response to stdout.
///
/// The request is this instance's ([`Request::from_env`]); if stdin cannot be read the handler
/// is not called and the answer is a 500. The response goes out in a single write, so the
/// handler itself should not print to stdout: use [`log`].
pub fn serve(handler: impl FnOnce(Request) -> Response) {
    let response = match Request::from_env() {
        Ok(request) => handler(request),
        Err(err) => {
            log(format_args!(
                "wisp-sdk: cannot read the request body: {err}"
            ));
            Response::text(500, "cannot read the request body\n")
        }
    };
    if let Err(err) = write_stdout(&response.to_cgi()) {
        log(format_args!("wisp-sdk: cannot write the response: {err}"));
    }
}

fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    // Whatever the handler printed anyway must come before the response.
    io::stdout().flush()?;
    // std's stdout is line buffered: it would hand the host one write up to the last newline and
    // another for the rest. Writing fd 1 directly sends the whole response in one call.
    #[cfg(any(unix, target_os = "wasi"))]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: fd 1 is open for the whole run, and ManuallyDrop keeps it from being closed.
        let mut stdout = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
        stdout.write_all(bytes)
    }
    #[cfg(not(any(unix, target_os = "wasi")))]
    {
        let mut stdout = io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()
    }
}

/// Writes `message` and a newline to stderr, which the host keeps as the function's log.
///
/// Errors are ignored: a function should not fail because its log is full.
pub fn log(message: impl fmt::Display) {
    let line = format!("{message}\n");
    let _ = io::stderr().write_all(line.as_bytes());
}

/// Quotes and escapes `s` as a JSON string, for building JSON bodies by hand.
///
/// ```
/// assert_eq!(wisp_sdk::json_string("say \"hi\"\n"), r#""say \"hi\"\n""#);
/// ```
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    // Copies the runs between escapes whole: a push per `char` costs several times more, and
    // most strings have nothing to escape. Only ASCII needs escaping, so bytes can be searched.
    let mut rest = s;
    while let Some(at) = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < b' ')
    {
        // `get` rather than indexing: `at` is at an ASCII byte, always a char boundary, and
        // indexing would link the code of a panic that cannot happen.
        out.push_str(rest.get(..at).unwrap_or_default());
        let byte = rest.as_bytes()[at];
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(byte >> 4)].into());
                out.push(HEX[usize::from(byte & 0xf)].into());
            }
        }
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
