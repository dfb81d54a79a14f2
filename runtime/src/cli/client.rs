//! A small blocking HTTP/1.1 client for the commands that talk to a server: http, or https to a
//! device whose certificate is pinned (see [`super::pin`]), one request per connection
//! (`Connection: close`), bodies sent with Content-Length and read by Content-Length, chunked,
//! or until the server closes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::Error;
use super::pin::{self, TlsStream};
use crate::tls::Fingerprint;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response head, and largest chunk-size or trailer line, we accept.
const MAX_HEAD: u64 = 64 << 10;
const MAX_LINE: u64 = 4 << 10;

/// Where a server is: `http://host[:port][/base]` or `https://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// As in the `Host` header: IPv6 addresses keep their brackets.
    pub host: String,
    pub port: u16,
    /// A path prefix every request goes under: empty, or `/base` without a trailing `/`.
    pub base: String,
}

impl Url {
    /// Parses `http[s]://host[:port][/base]`; a URL without a scheme is taken as http.
    pub fn parse(text: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error(format!("server URL `{text}`: {why}"));
        let (tls, rest) = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, _)) => return Err(bad(&format!("`{scheme}` is not http or https"))),
            None => (false, text),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if path.contains(['?', '#']) || path.contains(char::is_whitespace) {
            return Err(bad("expected http://host:port[/path]"));
        }
        if authority.contains('@') {
            return Err(bad("credentials do not go in the URL; use --token"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
                (format!("[{addr}]"), after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (authority.to_string(), None),
            },
        };
        if host.is_empty() || host == "[]" || host.contains(char::is_whitespace) {
            return Err(bad("no host"));
        }
        let port = match port {
            None => Url::default_port(tls),
            Some(p) => p.parse().map_err(|_| bad(&format!("bad port `{p}`")))?,
        };
        let base = path.trim_end_matches('/').to_string();
        Ok(Url {
            tls,
            host,
            port,
            base,
        })
    }

    fn default_port(tls: bool) -> u16 {
        if tls { 443 } else { 80 }
    }

    /// `host:port`, or just `host` on the scheme's port, as the `Host` header wants it.
    fn authority(&self) -> String {
        match self.port {
            port if port == Url::default_port(self.tls) => self.host.clone(),
            port => format!("{}:{port}", self.host),
        }
    }

    /// `host:port` as `known_devices` names a device.
    pub fn device(&self) -> String {
        format!("{}:{}", self.host.to_ascii_lowercase(), self.port)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.base)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, and `/` if `keep_slash`.
pub fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A server, and what each request to it carries.
pub struct Client {
    pub url: Url,
    /// Sent as `Authorization: Bearer`; only admin calls have one.
    pub token: Option<String>,
    /// None waits forever (`logs --follow`).
    pub read_timeout: Option<Duration>,
    /// The certificate an https server must show; without it, the one pinned in
    /// `known_devices`, or on first use whichever it shows.
    pub fingerprint: Option<Fingerprint>,
}

/// A connection to a server.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    pub reason: String,
    body: Body<BufReader<Stream>>,
    server: String,
}

impl Client {
    /// Sends one request (`target` is the path and query below the server's base) and reads
    /// the response's head.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let server = self.url.to_string();
        let mut stream = self.connect()?;
        let mut head = format!(
            "{method} {}{target} HTTP/1.1\r\nUser-Agent: wisp/{}\r\nConnection: close\r\n",
            self.url.base,
            env!("CARGO_PKG_VERSION")
        );
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.url.authority()));
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .and_then(|()| stream.flush());
        // A server may answer (413, 401) and close before taking the whole body: its answer
        // says more than our broken pipe, so read it whether or not the send went through.
        let read = read_response(BufReader::new(stream), method == "HEAD");
        match (read, sent) {
            (Ok(((status, reason, _), body)), _) => Ok(Response {
                status,
                reason,
                body,
                server,
            }),
            (Err(_), Err(e)) | (Err(e), Ok(())) => Err(io_error(&server, e)),
        }
    }

    fn connect(&self) -> Result<Stream, Error> {
        let tcp = self.connect_tcp()?;
        if !self.url.tls {
            return Ok(Stream::Plain(tcp));
        }
        let tls = pin::connect(tcp, &self.url, self.fingerprint)?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    fn connect_tcp(&self) -> Result<TcpStream, Error> {
        let unreachable = |e: io::Error| Error(format!("cannot reach {}: {e}", self.url));
        let host = self.url.host.trim_start_matches('[').trim_end_matches(']');
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
        for addr in (host, self.url.port)
            .to_socket_addrs()
            .map_err(unreachable)?
        {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(self.read_timeout)
                        .map_err(unreachable)?;
                    stream
                        .set_write_timeout(Some(READ_TIMEOUT))
                        .map_err(unreachable)?;
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(unreachable(last))
    }
}

impl Response {
    /// The whole body, refusing more than `limit` bytes.
    pub fn read_all(mut self, limit: u64) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        let read = (&mut self.body).take(limit + 1).read_to_end(&mut body);
        read.map_err(|e| io_error(&self.server, e))?;
        if body.len() as u64 > limit {
            return Err(Error(format!(
                "{}: response larger than {limit} bytes",
                self.server
            )));
        }
        Ok(body)
    }

    /// Hands the body to `each` as it arrives, until it ends or `each` returns false.
    pub fn stream(mut self, mut each: impl FnMut(&[u8]) -> bool) -> Result<(), Error> {
        let mut buf = vec![0; 16 << 10];
        loop {
            match self.body.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) if !each(&buf[..n]) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.server, e)),
            }
        }
    }
}

fn io_error(server: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error(format!(
            "{server} did not answer within {} s",
            READ_TIMEOUT.as_secs()
        )),
        io::ErrorKind::InvalidData => Error(format!("bad response from {server}: {e}")),
        _ => Error(format!("connection to {server} failed: {e}")),
    }
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

type Head = (u16, String, Vec<(String, String)>);

/// Reads the final response's head (skipping interim 1xx ones) and frames its body.
fn read_response<R: BufRead>(mut r: R, head_request: bool) -> io::Result<(Head, Body<R>)> {
    let (status, reason, headers) = loop {
        let head = read_head(&mut r)?;
        if !(100..200).contains(&head.0) || head.0 == 101 {
            break head;
        }
    };
    let get = |name: &'static str| {
        let named = headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name));
        named.map(|(_, v)| v.trim())
    };
    let body = if head_request || status == 204 || status == 304 {
        Body::Length(r, 0)
    } else if let Some(codings) = get("transfer-encoding").next_back() {
        // Only a final `chunked` frames the body; any other coding runs until close.
        let last = codings.rsplit(',').next().unwrap_or("").trim();
        if last.eq_ignore_ascii_case("chunked") {
            Body::Chunked(Chunked::new(r))
        } else {
            Body::Close(r)
        }
    } else if let Some(first) = get("content-length").next() {
        let length: u64 = first.parse().map_err(|_| invalid("bad Content-Length"))?;
        if get("content-length").any(|v| v != first) {
            return Err(invalid("conflicting Content-Length headers"));
        }
        Body::Length(r, length)
    } else {
        Body::Close(r)
    };
    Ok(((status, reason, headers), body))
}

fn read_head(r: &mut impl BufRead) -> io::Result<Head> {
    let mut head = Vec::new();
    while !(head.ends_with(b"\n\n") || head.ends_with(b"\r\n\r\n")) {
        let room = MAX_HEAD - head.len() as u64;
        if r.by_ref().take(room).read_until(b'\n', &mut head)? == 0 {
            return Err(match room {
                0 => invalid(format!("response head over {MAX_HEAD} bytes")),
                _ if head.is_empty() => {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "closed without a response")
                }
                _ => invalid("response head cut short"),
            });
        }
    }
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("response head cut short")),
        Err(e) => return Err(invalid(e.to_string())),
    }
    let headers = parsed.headers.iter().map(|h| {
        (
            h.name.to_string(),
            String::from_utf8_lossy(h.value).into_owned(),
        )
    });
    Ok((
        parsed.code.unwrap_or(0),
        parsed.reason.unwrap_or("").to_string(),
        headers.collect(),
    ))
}

/// A response body, framed.
enum Body<R> {
    /// This many bytes still to come.
    Length(R, u64),
    Chunked(Chunked<R>),
    /// Everything until the server closes.
    Close(R),
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Length(_, 0) => Ok(0),
            Body::Length(r, left) => {
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = r.read(&mut buf[..want])?;
                if n == 0 && want > 0 {
                    return Err(invalid(format!("body cut short, {left} bytes missing")));
                }
                *left -= n as u64;
                Ok(n)
            }
            Body::Chunked(c) => c.read(buf),
            Body::Close(r) => r.read(buf),
        }
    }
}

/// Decodes a chunked body, giving each chunk's bytes out as soon as they arrive.
pub struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: u64,
    /// A chunk's data was read, and its CRLF not yet.
    in_chunk: bool,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    pub fn new(inner: R) -> Chunked<R> {
        Chunked {
            inner,
            left: 0,
            in_chunk: false,
            done: false,
        }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            let why = if line.len() as u64 == MAX_LINE {
                "chunk line too long"
            } else {
                "chunked body cut short"
            };
            return Err(invalid(why));
        }
        Ok(String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            if self.in_chunk {
                if !self.line()?.is_empty() {
                    return Err(invalid("chunk longer than its size"));
                }
                self.in_chunk = false;
            }
            let line = self.line()?;
            // A size may be followed by `;extensions`, which mean nothing to us.
            let size = line.split(';').next().unwrap_or("").trim();
            if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!("bad chunk size `{size}`")));
            }
            self.left = u64::from_str_radix(size, 16).map_err(|_| invalid("chunk too large"))?;
            if self.left == 0 {
                // Trailers, if any, up to the blank line: read and dropped.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
            self.in_chunk = true;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid("chunked body cut short"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<(String, u16, String), String> {
        Url::parse(text)
            .map(|u| (u.host, u.port, u.base))
            .map_err(|e| e.0)
    }

    #[test]
    fn urls() {
        let ok = |h: &str, p, b: &str| Ok((h.to_string(), p, b.to_string()));
        assert_eq!(url("http://127.0.0.1:8080"), ok("127.0.0.1", 8080, ""));
        assert_eq!(url("https://pi.local:8443/"), ok("pi.local", 8443, ""));
        assert_eq!(url("HTTPS://pi.local"), ok("pi.local", 443, ""));
        assert_eq!(url("HTTP://pi.local/"), ok("pi.local", 80, ""));
        assert_eq!(url("pi.local:9000/wisp/"), ok("pi.local", 9000, "/wisp"));
        assert_eq!(url("http://[::1]:8080/a/b"), ok("[::1]", 8080, "/a/b"));
        assert_eq!(url("http://[fe80::1]"), ok("[fe80::1]", 80, ""));
        for bad in [
            "ftp://pi.local",
            "https://",
            "http://",
            "http://:8080",
            "http://pi:80x",
            "http://pi:99999",
            "http://[::1",
            "http://u:p@pi",
            "http://pi/x?y",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
        let u = Url::parse("http://[::1]:8080/a").unwrap();
        assert_eq!(u.to_string(), "http://[::1]:8080/a");
        assert_eq!(Url::parse("http://pi:80").unwrap().to_string(), "http://pi");
        let u = Url::parse("https://Pi.Local:443").unwrap();
        assert!(u.tls);
        assert_eq!(u.to_string(), "https://Pi.Local");
        assert_eq!(u.device(), "pi.local:443");
        assert!(!Url::parse("pi:8080").unwrap().tls);
        assert_eq!(
            Url::parse("https://pi:80").unwrap().to_string(),
            "https://pi:80"
        );
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(encode("/api/x/...", true), "/api/x/...");
        assert_eq!(encode("/api/x", false), "%2Fapi%2Fx");
        assert_eq!(encode("K=a b&c+d%", true), "K%3Da%20b%26c%2Bd%25");
        assert_eq!(encode("é*", true), "%C3%A9%2A");
    }

    fn chunked(raw: &[u8], read_size: usize) -> io::Result<Vec<u8>> {
        let mut reader = Chunked::new(BufReader::with_capacity(3, raw));
        let mut out = Vec::new();
        let mut buf = vec![0; read_size];
        loop {
            match reader.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for size in [1, 2, 7, 64] {
            assert_eq!(chunked(raw, size).unwrap(), b"hello 0123456789");
        }
        assert_eq!(chunked(b"0\r\n\r\n", 8).unwrap(), b"");
        // Bare LF line ends are taken too.
        assert_eq!(chunked(b"2\nhi\n0\n\n", 8).unwrap(), b"hi");
        for bad in [
            &b"5\r\nhel"[..],
            b"5\r\nhello",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"z\r\n",
            b"\r\n",
            b"-1\r\n",
            b"11111111111111111\r\n",
            b"3\r\nabc\r\n0\r\n",
        ] {
            assert!(chunked(bad, 8).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// The whole response path on an in-memory reader: head, then each way of framing.
    #[test]
    fn responses() {
        let read = |raw: &[u8], head: bool| -> io::Result<(u16, Vec<u8>)> {
            let ((status, _, _), mut body) = read_response(raw, head)?;
            let mut out = Vec::new();
            body.read_to_end(&mut out)?;
            Ok((status, out))
        };
        let ok = |s, b: &[u8]| (s, b.to_vec());
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(read(length, false).unwrap(), ok(200, b"abc"));
        assert_eq!(read(length, true).unwrap(), ok(200, b""));
        let chunked =
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        assert_eq!(read(chunked, false).unwrap(), ok(201, b"ab"));
        let close = b"HTTP/1.1 404 Not Found\r\n\r\nall of it";
        assert_eq!(read(close, false).unwrap(), ok(404, b"all of it"));
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(read(interim, false).unwrap(), ok(204, b""));
        for bad in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            assert!(
                read(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
