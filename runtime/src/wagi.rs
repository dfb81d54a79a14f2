//! The WAGI contract: an HTTP request becomes a CGI invocation, CGI output becomes a response.
//!
//! Request: body on stdin, argv = the path then the query's `&`-separated items, environment
//! = the CGI variables (`REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, `HTTP_*`, ...) plus
//! WAGI's `X_*` ones and the function's own. Response: header lines (`Content-Type`,
//! `Status`, `Location`, any other), a blank line, the body. See DESIGN.md, "The function
//! contract".

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
    let mut vars: Vec<String> = Vec::with_capacity(16 + request.headers.len() + env.len());
    let mut set = |k: &str, v: &str| vars.push(format!("{k}={v}"));
    let host = request
        .header("host")
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let host = if host.is_empty() {
        request.local.to_string()
    } else {
        host.into_owned()
    };
    let (server_name, _) = host.rsplit_once(':').unwrap_or((host.as_str(), ""));
    let full_path = if request.query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    set(
        "SERVER_SOFTWARE",
        concat!("wisp/", env!("CARGO_PKG_VERSION")),
    );
    set("GATEWAY_INTERFACE", "CGI/1.1");
    set(
        "SERVER_PROTOCOL",
        if request.version == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
    );
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", &request.local.port().to_string());
    set("REMOTE_ADDR", &request.peer.ip().to_string());
    set("REMOTE_HOST", &request.peer.ip().to_string());
    set("REQUEST_METHOD", &request.method);
    set("SCRIPT_NAME", base);
    set("PATH_INFO", &percent_decode(rest, false));
    set("PATH_TRANSLATED", &percent_decode(rest, false));
    set("X_RAW_PATH_INFO", rest);
    set("QUERY_STRING", &request.query);
    set("X_MATCHED_ROUTE", route.pattern);
    set("X_FULL_URL", &format!("http://{host}{full_path}"));
    set("WISP_FUNCTION", route.function);
    set("CONTENT_LENGTH", &request.body.len().to_string());
    if let Some(ct) = request.header("content-type") {
        set("CONTENT_TYPE", &String::from_utf8_lossy(ct));
    }
    for header in &request.headers {
        let name: String = header
            .name
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        // Never pass credentials meant for the platform, as CGI servers do not.
        if name == "AUTHORIZATION" || name == "CONTENT_TYPE" || name == "CONTENT_LENGTH" {
            continue;
        }
        set(
            &format!("HTTP_{name}"),
            &String::from_utf8_lossy(&header.value),
        );
    }
    for (k, v) in env {
        set(k, v);
    }
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
