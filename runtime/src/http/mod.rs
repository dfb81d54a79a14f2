//! The HTTP/1.1 front end: accept, parse, respond.
//!
//! Nothing above this module sees bytes or httparse: a [`Handler`] gets a parsed [`Request`]
//! (head and whole body) and returns a [`Response`]. This module owns keep-alive, pipelining,
//! `Transfer-Encoding: chunked`, `Expect: 100-continue`, the limits on heads, bodies and slow
//! clients, the connection cap, graceful shutdown, and TLS on the listeners that have it (the
//! same connection code, over a TLS stream). It knows nothing of wasm.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

mod connection;
mod server;
mod stream;
#[cfg(test)]
mod tests;

pub use server::{Listener, Stats, serve};

/// The limits the front end enforces before a request reaches a [`Handler`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes. Past it: `431`. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Most headers in one request. Past it: `431`. Default 64.
    pub max_headers: usize,
    /// Largest request body, unless the handler says otherwise for a route. Past it: `413`,
    /// sent without reading the body. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Time a client has to send a whole head once its first byte arrived. Past it: `408`.
    /// Default 10 s.
    pub head_timeout: Duration,
    /// Time a client of a TLS listener has to complete the handshake, from its connection on.
    /// Past it, the connection is closed. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time a client has to send the rest of a body. Past it: `408`. Default 30 s.
    pub body_timeout: Duration,
    /// Time an idle keep-alive connection is kept open waiting for the next request. Default 60 s.
    pub idle_timeout: Duration,
    /// Most connections open at once; further clients wait in the listen backlog. Default 1024.
    pub max_connections: usize,
    /// On shutdown, how long in-flight requests get to finish. Default 30 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// One header as received: the name as the client spelled it, the value as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// A parsed request, body included.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ... exactly as sent.
    pub method: String,
    /// The path part of the request target, not decoded (`/api/date`).
    pub path: String,
    /// The query part without its `?`, not decoded; empty when there is none.
    pub query: String,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// It came over TLS.
    pub tls: bool,
}

impl Request {
    /// The first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }
}

/// What a [`Handler`] answers. The front end adds `Date`, `Server`, `Content-Length` (or
/// chunked framing) and `Connection`; a handler must not set those itself.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A response body: bytes known up front, or a stream sent with chunked framing (to HTTP/1.0
/// clients: raw, then the connection closes).
#[derive(Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    /// Each message is one chunk; the stream ends when every sender is dropped.
    Stream(smol::channel::Receiver<Vec<u8>>),
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// A `text/plain` response with the given body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }
}

/// The application behind the front end.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Called once per request, in order, per connection.
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;

    /// The body limit for a request with this method and path, if it differs from
    /// [`Limits::max_body_bytes`] (an upload route may take more than a function).
    fn body_limit(&self, _method: &str, _path: &str) -> Option<usize> {
        None
    }
}

/// The reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
