//! The response side of the contract: CGI header lines, a blank line and the body.

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

    /// An `application/json` response; `body` must already be JSON (see [`json_string`](crate::json_string)).
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
        let is = |name: &str, wanted: &str| name.eq_ignore_ascii_case(wanted);
        let content_type = self
            .headers
            .iter()
            .find(|(n, _)| is(n, "content-type"))
            .map_or(DEFAULT_CONTENT_TYPE, |(_, v)| v.as_str());
        let reason = reason_phrase(self.status);
        // An upper bound (the headers left out are counted too), so the buffer never grows.
        let headers_len: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 3)
            .sum();
        let capacity = "Status: 65535 \nContent-Type: \n\n".len()
            + reason.len()
            + content_type.len()
            + headers_len
            + self.body.len();
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(b"Status: ");
        push_decimal(&mut out, self.status);
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\nContent-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.push(b'\n');
        for (name, value) in &self.headers {
            if !is(name, "content-type") && !is(name, "status") {
                for part in [name.as_bytes(), b": ", value.as_bytes(), b"\n"] {
                    out.extend_from_slice(part);
                }
            }
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }
}

/// Appends `n` in decimal, without the formatting machinery that `write!` would go through
/// (about 500 fuel more per response).
fn push_decimal(out: &mut Vec<u8>, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// `s` with every `\r` and `\n` turned into a space; `s` itself, not a copy, when it has none,
/// as header names and values nearly always do.
pub(crate) fn without_line_breaks(s: String) -> String {
    // Both are ASCII, so a byte scan finds them (and is cheaper than a `char` pattern).
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
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
