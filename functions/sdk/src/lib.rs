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
//! The crate uses std only. Its parsing works on explicit inputs ([`Request::new`],
//! [`Response::to_cgi`]), so handlers can be unit-tested natively without a host.

#![warn(missing_docs)]

pub mod kv;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};

/// Runs `handler` on this instance's request and writes its response to stdout.
///
/// The request is read from the environment, argv and all of stdin ([`Request::from_env`]); if
/// stdin cannot be read the handler is not called and the answer is a 500. The response goes
/// out in a single write, so the handler itself should not print to stdout: use [`log`].
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
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An HTTP request as the host hands it to a function: CGI variables, argv and the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    env: BTreeMap<String, String>,
    args: Vec<String>,
    body: Vec<u8>,
}

impl Request {
    /// Builds a request from explicit parts: the environment variables, argv and the body.
    ///
    /// [`Request::from_env`] builds the real one; tests can build any other.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new([("REQUEST_METHOD", "GET")], vec![], b"hi".to_vec());
    /// assert_eq!(req.method(), "GET");
    /// ```
    pub fn new<K, V>(
        env: impl IntoIterator<Item = (K, V)>,
        args: Vec<String>,
        body: Vec<u8>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Request { env, args, body }
    }

    /// Reads this instance's request: its environment, its argv and all of stdin.
    ///
    /// Names and values that are not UTF-8 are converted lossily.
    pub fn from_env() -> io::Result<Self> {
        let env = std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        });
        let args = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut body = Vec::new();
        io::stdin().lock().read_to_end(&mut body)?;
        Ok(Request::new(env, args, body))
    }

    /// The request method, such as `GET` (`REQUEST_METHOD`); empty if the host set none.
    pub fn method(&self) -> &str {
        self.var("REQUEST_METHOD").unwrap_or("")
    }

    /// The path below the route that matched (`PATH_INFO`, as in CGI and WAGI): `/x/y` for a
    /// request to `/api/x/y` on the route `/api/...`; empty for an exact route. Percent-decoded.
    pub fn path(&self) -> &str {
        self.var("PATH_INFO").unwrap_or("")
    }

    /// The part of the path the route names (`SCRIPT_NAME`): `/api` for the route `/api/...`,
    /// the whole path for an exact route. `script_name()` then `path()` is the full path.
    pub fn script_name(&self) -> &str {
        self.var("SCRIPT_NAME").unwrap_or("")
    }

    /// The raw query string, without the `?` (`QUERY_STRING`); empty if there is none.
    pub fn query_string(&self) -> &str {
        self.var("QUERY_STRING").unwrap_or("")
    }

    /// The percent-decoded value of the first query parameter called `name`.
    ///
    /// `+` decodes to a space, as in HTML forms; a parameter without `=` has the value `""`.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new([("QUERY_STRING", "city=New+York&x=%31")], vec![], vec![]);
    /// assert_eq!(req.query("city").as_deref(), Some("New York"));
    /// assert_eq!(req.query("x").as_deref(), Some("1"));
    /// assert_eq!(req.query("y"), None);
    /// ```
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// All query parameters in order, percent-decoded as [`Request::query`] does.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        query_pairs(self.query_string())
    }

    /// The value of the request header `name`, matched case-insensitively.
    ///
    /// CGI passes headers as `HTTP_<NAME>` variables (uppercased, `-` turned into `_`), except
    /// `Content-Type` and `Content-Length`, which are `CONTENT_TYPE` and `CONTENT_LENGTH`.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new([("HTTP_USER_AGENT", "curl/8")], vec![], vec![]);
    /// assert_eq!(req.header("user-agent"), Some("curl/8"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        let cgi_name = if name.eq_ignore_ascii_case("content-type") {
            "CONTENT_TYPE".to_string()
        } else if name.eq_ignore_ascii_case("content-length") {
            "CONTENT_LENGTH".to_string()
        } else {
            let upper = name.to_ascii_uppercase().replace('-', "_");
            format!("HTTP_{upper}")
        };
        self.var(&cgi_name)
    }

    /// The request's `Content-Type`, if it has one (`CONTENT_TYPE`).
    pub fn content_type(&self) -> Option<&str> {
        self.var("CONTENT_TYPE").filter(|v| !v.is_empty())
    }

    /// The route pattern that matched this request, such as `/hello-c/...` (`X_MATCHED_ROUTE`).
    pub fn matched_route(&self) -> Option<&str> {
        self.var("X_MATCHED_ROUTE")
    }

    /// The request body: all of stdin.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The request body as UTF-8 text, or `None` if it is not valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Takes the body out of the request without copying it.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The environment variable `name`: any CGI variable, `WISP_FUNCTION`, or one the
    /// function's manifest entry sets.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// All environment variables, sorted by name.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The command line: the module name, then the query parameters as WAGI passes them.
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
}

/// Decodes `%XX` escapes and `+` (a space in form encoding). A `%` that is not followed by two
/// hex digits stays as it is; bytes that do not make UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i] {
            b'%' => bytes.get(i + 1..i + 3).and_then(hex_byte),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let hi = (digits[0] as char).to_digit(16)?;
    let lo = (digits[1] as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// An HTTP response: a status code, headers and a body.
///
/// ```
/// use wisp_sdk::Response;
/// let res = Response::new(303).header("Location", "/done");
/// let created = Response::json(201, r#"{"id":7}"#).header("X-Trace", "abc");
/// assert_eq!(created.status(), 201);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The `Content-Type` written when a response sets none: CGI requires one.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Response {
    /// A response with status `status` (100 to 599), no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// An `application/json` response; `body` must already be JSON (see [`json_string`]).
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body.into())
    }

    /// A plain-text `404 Not Found`.
    pub fn not_found() -> Self {
        Response::text(404, "not found\n")
    }

    /// Adds a header. `Content-Type` replaces the one set before; other names add a line each,
    /// so `Set-Cookie` can repeat.
    ///
    /// Line breaks in `name` or `value` become spaces, since one would end the header block. A
    /// `Status` header is ignored when the response is written: the status code is the one.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = without_line_breaks(name.into());
        let value = without_line_breaks(value.into());
        if name.eq_ignore_ascii_case("content-type") {
            self.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        }
        self.headers.push((name, value));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The response as a CGI script writes it: `Status: <code> <reason>`, `Content-Type` (by
    /// default [`DEFAULT_CONTENT_TYPE`]), the other headers, a blank line, then the body. Lines
    /// end with `\n`.
    ///
    /// ```
    /// let out = wisp_sdk::Response::json(200, "{}").to_cgi();
    /// assert_eq!(out, b"Status: 200 OK\nContent-Type: application/json\n\n{}");
    /// ```
    pub fn to_cgi(&self) -> Vec<u8> {
        let headers_len: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 3)
            .sum();
        let mut head = String::with_capacity(64 + headers_len);
        let _ = writeln!(
            head,
            "Status: {} {}",
            self.status,
            reason_phrase(self.status)
        );
        let is = |name: &str, wanted: &str| name.eq_ignore_ascii_case(wanted);
        match self.headers.iter().find(|(n, _)| is(n, "content-type")) {
            Some((_, value)) => {
                let _ = writeln!(head, "Content-Type: {value}");
            }
            None => {
                let _ = writeln!(head, "Content-Type: {DEFAULT_CONTENT_TYPE}");
            }
        }
        for (name, value) in &self.headers {
            if !is(name, "content-type") && !is(name, "status") {
                let _ = writeln!(head, "{name}: {value}");
            }
        }
        head.push('\n');
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn without_line_breaks(s: String) -> String {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ")
    } else {
        s
    }
}

/// The standard reason phrase of `status`, or `""` for a code without one.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
