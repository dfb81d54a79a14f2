//! Outbound HTTP: requests from a function to the hosts its configuration allows.
//!
//! ```no_run
//! use wisp_sdk::http;
//!
//! let response = http::Request::get("https://api.example.com/v1/weather?city=Oslo")
//!     .header("Accept", "application/json")
//!     .send();
//! match response {
//!     Ok(r) if r.status() == 200 => println!("{}", r.text()),
//!     Ok(r) => eprintln!("upstream answered {}", r.status()),
//!     Err(e) => eprintln!("no answer: {e}"),
//! }
//! ```
//!
//! A function reaches only the origins its configuration lists in `"allowed_hosts"`
//! (`"https://api.example.com"`, `"http://127.0.0.1:9000"`, `"https://*.example.org"`);
//! nothing by default. Redirects are followed (at most 5) only to allowed origins. A call
//! takes at most 10 seconds and never outlives the invocation's deadline; a request body is
//! at most [`MAX_REQUEST_BODY`] bytes, a response body at most [`MAX_RESPONSE_BODY`]; one
//! invocation makes at most [`MAX_CALLS`] calls. While a call waits, the function is suspended
//! and costs the device no CPU.
//!
//! On `wasm32` this is the host's `http_send` and `http_read` imports (see
//! `functions/README.md`, "Host ABI"). Elsewhere, [`testing::respond`] sets what answers, so a
//! handler that calls out can be unit-tested natively; without it every call is refused as
//! [`HttpError::NotAllowed`], as it is on a host that allows nothing.

use std::fmt;

/// The largest request body: 1 MiB.
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// The largest response body: 4 MiB.
pub const MAX_RESPONSE_BODY: usize = 4 << 20;
/// The most calls one invocation may make.
pub const MAX_CALLS: u32 = 32;

/// Why a call got no response: one variant per error code of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpError {
    /// A pointer or length was outside the module's memory (-5): a bug in the SDK or host.
    BadPointer,
    /// The URL's origin (or a redirect's) is not in `allowed_hosts` (-14). Nothing was sent.
    NotAllowed,
    /// The URL, method or a header is malformed (-15). Nothing was sent.
    InvalidRequest,
    /// No response within the call's timeout or the invocation's deadline (-16).
    Timeout,
    /// The request body or headers, or the response, are over their caps (-17).
    TooLarge,
    /// This invocation made [`MAX_CALLS`] calls already (-18).
    TooManyCalls,
    /// The name did not resolve, or the connection was refused or broke (-19).
    ConnectFailed,
    /// The TLS handshake failed, most often on a certificate that does not verify (-20).
    TlsFailed,
    /// The answer was not HTTP, or there were too many redirects (-21).
    BadResponse,
    /// The host answered something this SDK does not know.
    Unexpected(i32),
}

impl HttpError {
    /// The error for an ABI return value.
    pub fn from_code(code: i32) -> HttpError {
        match code {
            -5 => HttpError::BadPointer,
            -14 => HttpError::NotAllowed,
            -15 => HttpError::InvalidRequest,
            -16 => HttpError::Timeout,
            -17 => HttpError::TooLarge,
            -18 => HttpError::TooManyCalls,
            -19 => HttpError::ConnectFailed,
            -20 => HttpError::TlsFailed,
            -21 => HttpError::BadResponse,
            other => HttpError::Unexpected(other),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::BadPointer => "a pointer or length was outside the module's memory",
            HttpError::NotAllowed => "the host is not in this function's allowed_hosts",
            HttpError::InvalidRequest => "the URL, method or a header is malformed",
            HttpError::Timeout => "timed out",
            HttpError::TooLarge => "the request or the response is over its size cap",
            HttpError::TooManyCalls => "too many outbound calls in one invocation",
            HttpError::ConnectFailed => "could not connect",
            HttpError::TlsFailed => "the TLS handshake failed (the certificate?)",
            HttpError::BadResponse => "the answer was not HTTP, or redirected too often",
            HttpError::Unexpected(code) => {
                return write!(f, "unexpected answer {code} from the host");
            }
        })
    }
}

impl std::error::Error for HttpError {}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with `method` (`GET`, `POST`, ...) to an absolute `http://` or `https://` URL.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// A `POST` request with `body`.
    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Request {
        Request::new("POST", url).body(body)
    }

    /// Adds a header. The host sets `Host`, `Content-Length` and `Connection` itself.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sends it and waits for the response.
    pub fn send(&self) -> Result<Response, HttpError> {
        let mut head = String::new();
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push('\n');
        }
        host::send(self, &head)
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::get(url).send()
}

/// A response, after any redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response, as [`testing::respond`] gives them.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Response {
        let headers = headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v));
        Response {
            status,
            headers: headers.collect(),
            body: body.into(),
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn parse(status: i32, head: &[u8], body: Vec<u8>) -> Response {
        let headers = String::from_utf8_lossy(head)
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Response {
            status: status as u16,
            headers,
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header, names in lowercase, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::{HttpError, Request, Response};

    #[link(wasm_import_module = "wisp")]
    unsafe extern "C" {
        fn http_send(
            method_ptr: *const u8,
            method_len: i32,
            url_ptr: *const u8,
            url_len: i32,
            headers_ptr: *const u8,
            headers_len: i32,
            body_ptr: *const u8,
            body_len: i32,
            out: *mut u32,
        ) -> i32;
        fn http_read(part: i32, offset: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
    }

    fn read(part: i32, len: u32) -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        // SAFETY: the host writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { http_read(part, 0, buf.as_mut_ptr(), buf.len() as i32) };
        buf.truncate(n.max(0) as usize);
        buf
    }

    pub(super) fn send(request: &Request, head: &str) -> Result<Response, HttpError> {
        let mut out = [0u32; 2];
        let (m, u, b) = (&request.method, &request.url, &request.body);
        // SAFETY: the host reads the four slices within their lengths during the call and
        // writes 8 bytes at `out`; it keeps no pointer to any of them.
        let status = unsafe {
            http_send(
                m.as_ptr(),
                m.len() as i32,
                u.as_ptr(),
                u.len() as i32,
                head.as_ptr(),
                head.len() as i32,
                b.as_ptr(),
                b.len() as i32,
                out.as_mut_ptr(),
            )
        };
        if status < 0 {
            return Err(HttpError::from_code(status));
        }
        Ok(Response::parse(status, &read(0, out[0]), read(1, out[1])))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::{HttpError, Request, Response};
    use std::cell::RefCell;

    type Responder = Box<dyn FnMut(&str, &str, &[u8]) -> Result<Response, HttpError>>;

    thread_local! {
        pub(super) static RESPONDER: RefCell<Option<Responder>> = const { RefCell::new(None) };
    }

    pub(super) fn send(request: &Request, _head: &str) -> Result<Response, HttpError> {
        RESPONDER.with_borrow_mut(|r| match r {
            Some(respond) => respond(&request.method, &request.url, &request.body),
            None => Err(HttpError::NotAllowed),
        })
    }
}

/// Sets what answers outbound calls in native builds (not on wasm), per thread.
///
/// ```
/// use wisp_sdk::http::{self, testing, HttpError, Response};
///
/// assert_eq!(http::get("https://api.example.com/").unwrap_err(), HttpError::NotAllowed);
/// testing::respond(|method, url, _body| {
///     assert_eq!((method, url), ("GET", "https://api.example.com/"));
///     Ok(Response::new(200, vec![("Content-Type".into(), "text/plain".into())], "hi"))
/// });
/// let r = http::get("https://api.example.com/").unwrap();
/// assert_eq!((r.status(), r.header("content-type"), r.text().as_str()), (200, Some("text/plain"), "hi"));
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use super::{HttpError, Response};

    /// Answers every call on this thread with `respond(method, url, body)`.
    pub fn respond(
        respond: impl FnMut(&str, &str, &[u8]) -> Result<Response, HttpError> + 'static,
    ) {
        super::host::RESPONDER.with_borrow_mut(|r| *r = Some(Box::new(respond)));
    }

    /// Refuses every call again, as a host that allows nothing.
    pub fn reset() {
        super::host::RESPONDER.with_borrow_mut(|r| *r = None);
    }
}
