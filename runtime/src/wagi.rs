//! The WAGI contract: an HTTP request becomes a CGI invocation, CGI output becomes a response.
//!
//! Request: body on stdin, argv = the path then the query's `&`-separated items, environment
//! = the CGI variables (`REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, `HTTP_*`, ...) plus
//! WAGI's `X_*` ones and the function's own. Response: header lines (`Content-Type`,
//! `Status`, `Location`, any other), a blank line, the body. See DESIGN.md, "The function
//! contract".

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::engine::Invocation;
use crate::http::{Request, Response};

/// What the route table knows of the request, for the environment.
pub struct RouteInfo<'a> {
    pub function: &'a str,
    /// The route pattern as written (`/api/...`).
    pub pattern: &'a str,
    /// Where the part of the path the route names ends (see [`crate::router::Match`]).
    pub split: usize,
}

/// Builds the invocation for `request` routed by `route`, with the function's own `env` last
/// (it cannot override the CGI variables: those are set first and the guest sees the first).
pub fn invocation(request: Request, route: &RouteInfo, env: &[(String, String)]) -> Invocation {
    let (base, rest) = request.path.split_at(route.split.min(request.path.len()));
    // One allocation per variable: this runs for every request, on the I/O thread.
    let mut vars = Vars(Vec::with_capacity(18 + request.headers.len() + env.len()));
    let host = match request.header("host").map(String::from_utf8_lossy) {
        Some(host) if !host.is_empty() => host,
        _ => Cow::Owned(request.local.to_string()),
    };
    let (server_name, _) = host.rsplit_once(':').unwrap_or((&host, ""));
    let path_info = percent_decode(rest, false);
    vars.set(
        "SERVER_SOFTWARE",
        &[concat!("wisp/", env!("CARGO_PKG_VERSION"))],
    );
    vars.set("GATEWAY_INTERFACE", &["CGI/1.1"]);
    let protocol = if request.version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    vars.set("SERVER_PROTOCOL", &[protocol]);
    vars.set("SERVER_NAME", &[server_name]);
    vars.display("SERVER_PORT", request.local.port());
    // Formatted once for both variables; 45 bytes hold any IPv6 address.
    let mut peer = heapless::String::<45>::new();
    let _ = write!(peer, "{}", request.peer.ip());
    vars.set("REMOTE_ADDR", &[&peer]);
    vars.set("REMOTE_HOST", &[&peer]);
    vars.set("REQUEST_METHOD", &[&request.method]);
    vars.set("SCRIPT_NAME", &[base]);
    vars.set("PATH_INFO", &[&path_info]);
    vars.set("PATH_TRANSLATED", &[&path_info]);
    vars.set("X_RAW_PATH_INFO", &[rest]);
    vars.set("QUERY_STRING", &[&request.query]);
    vars.set("X_MATCHED_ROUTE", &[route.pattern]);
    let query_mark = if request.query.is_empty() { "" } else { "?" };
    let scheme = if request.tls { "https://" } else { "http://" };
    vars.set(
        "X_FULL_URL",
        &[scheme, &host, &request.path, query_mark, &request.query],
    );
    // CGI's convention (RFC 3875 leaves it to servers; Apache and nginx set it).
    if request.tls {
        vars.set("HTTPS", &["on"]);
    }
    vars.set("WISP_FUNCTION", &[route.function]);
    vars.display("CONTENT_LENGTH", request.body.len());
    if let Some(ct) = request.header("content-type") {
        vars.set("CONTENT_TYPE", &[&String::from_utf8_lossy(ct)]);
    }
    for header in &request.headers {
        // Never pass credentials meant for the platform, as CGI servers do not.
        let name = &header.name;
        if ["authorization", "content-type", "content-length"]
            .iter()
            .any(|skip| name.eq_ignore_ascii_case(skip))
        {
            continue;
        }
        let value = String::from_utf8_lossy(&header.value);
        let mut var = String::with_capacity(6 + name.len() + value.len());
        var.push_str("HTTP_");
        var.extend(name.chars().map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        }));
        var.push('=');
        var.push_str(&value);
        vars.0.push(var);
    }
    for (k, v) in env {
        vars.set(k, &[v]);
    }
    let vars = vars.0;
    let mut args = vec![request.path.clone()];
    args.extend(
        request
            .query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, true)),
    );
    Invocation {
        args,
        env: vars,
        stdin: request.body,
        kv: None,
        topics: None,
        outbound: None,
        console: None,
    }
}

/// The environment being built, as `KEY=VALUE` strings.
struct Vars(Vec<String>);

impl Vars {
    /// Sets `key` to the concatenation of `parts`.
    fn set(&mut self, key: &str, parts: &[&str]) {
        let len = key.len() + 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut var = String::with_capacity(len);
        var.push_str(key);
        var.push('=');
        parts.iter().for_each(|p| var.push_str(p));
        self.0.push(var);
    }

    /// Sets `key` to a number or an address, formatted in place.
    fn display(&mut self, key: &str, value: impl std::fmt::Display) {
        // Room for the longest IPv6 address.
        let mut var = String::with_capacity(key.len() + 1 + 40);
        let _ = write!(var, "{key}={value}");
        self.0.push(var);
    }
}

/// Parses a function's CGI output into a response.
pub fn response(stdout: Vec<u8>) -> Result<Response, String> {
    let (head_end, body_start) = split_head(&stdout)
        .ok_or("the output has no header block (a blank line must end the headers)")?;
    let head = std::str::from_utf8(&stdout[..head_end])
        .map_err(|_| "the output's header block is not UTF-8")?;
    let mut response = Response::new(200);
    let mut status = None;
    let mut location = false;
    for line in head.lines().filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line `{line}`"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("malformed header name in `{line}`"));
        }
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok());
            status =
                Some(code.filter(|c| (200..600).contains(c)).ok_or_else(|| {
                    format!("bad status `{value}`: expected a code from 200 to 599")
                })?);
            continue;
        }
        location |= name.eq_ignore_ascii_case("location");
        response.headers.push((name.to_string(), value.to_string()));
    }
    response.status = status.unwrap_or(if location { 302 } else { 200 });
    let mut body = stdout;
    body.drain(..body_start);
    Ok(response.body(body))
}

/// Where the header block ends and where the body starts: at the first empty line, with
/// either line ending.
fn split_head(out: &[u8]) -> Option<(usize, usize)> {
    let mut start = 0;
    while let Some(len) = out[start..].iter().position(|&b| b == b'\n') {
        let line = &out[start..start + len];
        if line.is_empty() || line == b"\r" {
            return Some((start, start + len + 1));
        }
        start += len + 1;
    }
    None
}

/// Decodes `%XX` escapes, and `+` as a space where asked (query strings use it, paths do
/// not); bad escapes stay as they are.
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgi_output() {
        let r =
            response(b"Content-Type: text/plain\nStatus: 404 Not Found\n\nnope".to_vec()).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(
            r.headers,
            vec![("Content-Type".to_string(), "text/plain".to_string())]
        );
        match r.body {
            crate::http::Body::Bytes(b) => assert_eq!(b, b"nope"),
            _ => panic!("bytes body expected"),
        }
        let r = response(b"Location: /x\r\n\r\n".to_vec()).unwrap();
        assert_eq!(r.status, 302);
        let r = response(b"\nbody".to_vec()).unwrap();
        assert_eq!(r.status, 200);
    }

    #[test]
    fn refuses_malformed_output() {
        assert!(response(b"no blank line".to_vec()).is_err());
        assert!(response(b"not a header\n\n".to_vec()).is_err());
        assert!(response(b"Status: abc\n\n".to_vec()).is_err());
        assert!(response(b"Status: 99\n\n".to_vec()).is_err());
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("/a+b", false), "/a+b");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%41%", false), "A%");
    }
}
