//! Turning received bytes into meaning: request heads, chunk size lines, trailers. No I/O here.

use super::ReadError;
use crate::http::Header;

/// How the request body is delimited.
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

/// The request head, with what the front end needs to know about its framing.
pub(super) struct Head {
    pub method: String,
    pub path: String,
    pub query: String,
    pub version: u8,
    pub headers: Vec<Header>,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// The length up to and including the first empty line, searching from about `from`.
pub(super) fn blank_line_end(buf: &[u8], from: usize) -> Option<usize> {
    // An empty line starts the buffer (an empty trailer section) or follows a '\n'.
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    // The two bytes before `from` may start an empty line that ends after it.
    let from = from.saturating_sub(2);
    let tail = buf.get(from..)?;
    tail.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(i, _)| {
            let rest = &tail[i + 1..];
            if rest.starts_with(b"\n") {
                Some(from + i + 2)
            } else if rest.starts_with(b"\r\n") {
                Some(from + i + 3)
            } else {
                None
            }
        })
}

/// The length up to and including the first '\n', searching from `from`.
pub(super) fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    tail.iter().position(|&b| b == b'\n').map(|i| from + i + 1)
}

/// Parses a complete head, from the request line to the empty line.
pub(super) fn parse_head(bytes: &[u8], max_headers: usize) -> Result<Head, ReadError> {
    // A bare LF may end lines (RFC 9112 §2.2), but in a head whose lines end in CRLF it is how
    // a request gets smuggled past a proxy that reads `Dummy: x\nContent-Length: 23` as one
    // field: httparse would read two.
    if mixed_line_ends(bytes) {
        return Err(ReadError::Reject(400, "a bare LF in a head of CRLF lines"));
    }
    let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        // The empty line is there, so the head cannot be incomplete: it is malformed.
        Ok(httparse::Status::Partial) => {
            return Err(ReadError::Reject(400, "malformed request head"));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Reject(431, "too many header fields"));
        }
        Err(httparse::Error::Version) => return Err(version_error(bytes)),
        Err(httparse::Error::HeaderName) => {
            return Err(ReadError::Reject(400, "invalid header name"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(ReadError::Reject(400, "invalid header value"));
        }
        Err(_) => return Err(ReadError::Reject(400, "malformed request line")),
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ReadError::Reject(400, "malformed request line"));
    };
    let (path, query) =
        split_target(method, target).ok_or(ReadError::Reject(400, "invalid request target"))?;

    let mut length: Option<u64> = None;
    let mut hosts = 0;
    let mut codings = 0;
    let mut chunked = false;
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    for header in parsed.headers.iter() {
        let name = header.name;
        let items = header
            .value
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|i| !i.is_empty());
        if name.eq_ignore_ascii_case("content-length") {
            // A list of equal values is a duplicated field, which is allowed (RFC 9112 §6.3).
            for item in header.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let n =
                    parse_length(item).ok_or(ReadError::Reject(400, "invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ReadError::Reject(400, "conflicting Content-Length values"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(header.value) {
                return Err(ReadError::Reject(400, "invalid Host"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for item in items {
                codings += 1;
                chunked = item.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for item in items {
                close |= item.eq_ignore_ascii_case(b"close");
                keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |= header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        }
    }
    // RFC 9112 §3.2: one Host line, and in HTTP/1.1 always one (empty when the target has no
    // authority).
    match hosts {
        0 if version >= 1 => return Err(ReadError::Reject(400, "no Host in an HTTP/1.1 request")),
        0 | 1 => {}
        _ => return Err(ReadError::Reject(400, "more than one Host")),
    }
    // Any ambiguity in where the body ends is how requests get smuggled: refuse it.
    let framing = match (length, codings) {
        (None, 0) => Framing::Empty,
        (Some(n), 0) => Framing::Length(n),
        (Some(_), _) => {
            return Err(ReadError::Reject(
                400,
                "both Content-Length and Transfer-Encoding",
            ));
        }
        (None, _) if version == 0 => {
            return Err(ReadError::Reject(
                400,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        (None, 1) if chunked => Framing::Chunked,
        (None, _) => return Err(ReadError::Reject(400, "unsupported Transfer-Encoding")),
    };

    Ok(Head {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version,
        headers: parsed
            .headers
            .iter()
            .map(|h| Header {
                name: h.name.to_owned(),
                value: h.value.to_vec(),
            })
            .collect(),
        framing,
        keep_alive: !close && (version >= 1 || keep_alive),
        expect_continue: expect_continue && version >= 1,
    })
}

/// Whether some lines of `head` end in CRLF and others in a bare LF.
fn mixed_line_ends(head: &[u8]) -> bool {
    let mut crlf = false;
    let mut bare = false;
    for (i, _) in head.iter().enumerate().filter(|&(_, &b)| b == b'\n') {
        if i > 0 && head[i - 1] == b'\r' {
            crlf = true;
        } else {
            bare = true;
        }
    }
    crlf && bare
}

/// A Host value: `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2), or empty. The host is
/// a bracketed IP literal, or a registered name or IPv4 address: unreserved characters,
/// percent-encodings and sub-delimiters (an IP literal may also hold colons).
fn valid_host(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let literal_ok = !literal.is_empty() && literal.iter().all(|&b| b == b':' || name_byte(b));
        if !literal_ok {
            return false;
        }
        (&b""[..], &rest[end + 1..])
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &b""[..]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && host.iter().all(|&b| name_byte(b))
}

/// Unreserved, sub-delimiter or `%` (of a percent-encoding).
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b)
}

/// `HTTP/x.y` with a version other than 1.0 and 1.1 is well formed, just not ours.
fn version_error(head: &[u8]) -> ReadError {
    let line = head
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    match line.rsplit(|&b| b == b' ').next().unwrap_or_default() {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            ReadError::Reject(505, "HTTP version not supported")
        }
        _ => ReadError::Reject(400, "malformed request line"),
    }
}

/// Splits a request target into path and query, taking the path out of an absolute-form target.
fn split_target<'a>(method: &str, target: &'a str) -> Option<(&'a str, &'a str)> {
    let origin = if target.starts_with('/') {
        target
    } else if target == "*" {
        return (method == "OPTIONS").then_some(("*", ""));
    } else {
        let (scheme, rest) = target.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        rest.find(['/', '?']).map_or("", |i| &rest[i..])
    };
    let (path, query) = origin.split_once('?').unwrap_or((origin, ""));
    Some((if path.is_empty() { "/" } else { path }, query))
}

/// A Content-Length value: digits only (`str::parse` would also take a `+`).
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The size from a chunk size line (extensions allowed, and ignored).
pub(super) fn chunk_size(line: &[u8]) -> Option<u64> {
    // httparse reads an empty size as zero, which would end the body early.
    if !line.first().is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((_, size))) => Some(size),
        _ => None,
    }
}

/// Checks a trailer section, up to and including its empty line. Trailer fields are dropped:
/// nothing above the front end uses them.
pub(super) fn check_trailers(bytes: &[u8], max_fields: usize) -> Result<(), ReadError> {
    let mut slots = vec![httparse::EMPTY_HEADER; max_fields];
    match httparse::parse_headers(bytes, &mut slots) {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Err(httparse::Error::TooManyHeaders) => {
            Err(ReadError::Reject(431, "too many trailer fields"))
        }
        _ => Err(ReadError::Reject(400, "malformed trailer section")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_line_is_found_however_the_bytes_arrive() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nnext";
        assert_eq!(blank_line_end(head, 0), Some(head.len() - 4));
        // Fed one byte at a time, searching on from where the last search stopped.
        let mut searched = 0;
        let found = (1..=head.len()).find_map(|len| {
            let found = blank_line_end(&head[..len], searched);
            searched = len;
            found
        });
        assert_eq!(found, Some(head.len() - 4));
        assert_eq!(blank_line_end(b"GET / HTTP/1.1\nHost: a\n\n", 0), Some(24));
        assert_eq!(blank_line_end(b"\r\nX: y", 0), Some(2));
        assert_eq!(blank_line_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(blank_line_end(b"abc", 10), None);
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("GET", "/a/b?x=1&y"), Some(("/a/b", "x=1&y")));
        assert_eq!(split_target("GET", "/?"), Some(("/", "")));
        assert_eq!(split_target("GET", "http://h:80/p?q"), Some(("/p", "q")));
        assert_eq!(split_target("GET", "HTTPS://h?q"), Some(("/", "q")));
        assert_eq!(split_target("OPTIONS", "*"), Some(("*", "")));
        assert_eq!(split_target("GET", "*"), None);
        assert_eq!(split_target("CONNECT", "h:443"), None);
        assert_eq!(split_target("GET", "ftp://h/p"), None);
    }

    #[test]
    fn host_values() {
        for good in [
            &b""[..],
            b"example.com",
            b"example.com:8080",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:3000",
            b"[v1.fe80::a+en1]",
            b"my-host_1.local",
            b"a%20b",
            b"host:",
        ] {
            assert!(valid_host(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"a b"[..],
            b"a/b",
            b"a@b",
            b"host:80:80",
            b"host:8x",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"a?b",
            b"a#b",
            b"\"quoted\"",
        ] {
            assert!(!valid_host(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn line_ends_may_be_lf_or_crlf_but_not_both() {
        assert!(!mixed_line_ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!mixed_line_ends(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(mixed_line_ends(
            b"GET / HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\n\r\n"
        ));
        assert!(mixed_line_ends(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"0012"), Some(12));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1aF\r\n"), Some(0x1af));
        assert_eq!(chunk_size(b"5;a=b;c\r\n"), Some(5));
        assert_eq!(chunk_size(b"0\r\n"), Some(0));
        for bad in [
            &b"\r\n"[..],
            b";a\r\n",
            b" 5\r\n",
            b"-5\r\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(chunk_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn versions_other_than_1x_are_505_and_garbage_is_400() {
        let status = |head: &[u8]| match version_error(head) {
            ReadError::Reject(status, _) => status,
            ReadError::Closed => 0,
        };
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.2\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/x\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\r\n\r\n"), 400);
    }
}
