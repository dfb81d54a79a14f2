//! `wisp invoke`: call a function's route like any client would (no admin token: functions
//! must never see it) and print the response body.

use std::io::Write;
use std::process::ExitCode;

use lexopt::ValueExt;

use super::Error;
use super::remote::{self, Syntax};

pub const HELP: &str = "\
Call a function's route on a server and print the response body to stdout. A status other
than 2xx is also printed to stderr, and makes the exit status 1.

Usage: wisp invoke [OPTIONS] <PATH>

Arguments:
  <PATH>  The path and query to call, e.g. /api/date or '/api/weather?city=Oslo'

Options:
  -X, --method <METHOD>      The method [default: GET, or POST with a body]
  -d, --data <BODY>          Send BODY as the request body
      --data-file <FILE>     Send FILE's bytes as the request body (- for stdin)
  -H, --header <'K: V'>      Add a request header (repeatable)
      --server <URL>         The server [default: $WISP_SERVER, else http://127.0.0.1:8080]
      --fingerprint <SHA256> The certificate an https:// server must show [default:
                             $WISP_FINGERPRINT, else the one pinned, else the first one seen]
  -h, --help                 Show this help
";

/// Headers whose value only the client can know: a user's would contradict ours.
const OURS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

pub fn invoke(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax {
        command: "invoke",
        help: HELP,
        args: &["PATH"],
        admin: false,
        json: false,
    };
    let mut method = None;
    let mut body: Option<Vec<u8>> = None;
    let mut headers = Vec::new();
    let parsed = remote::parse(parser, &syntax, |name, parser| {
        match name {
            "X" | "method" => method = Some(self::method(&parser.value()?.string()?)?),
            "d" | "data" | "data-file" if body.is_some() => {
                return Err(Error("give one --data or --data-file".into()));
            }
            "d" | "data" => body = Some(parser.value()?.string()?.into_bytes()),
            "data-file" => body = Some(super::remote::read_file(&parser.value()?.string()?)?),
            "H" | "header" => headers.push(header(&parser.value()?.string()?)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some((common, args)) = parsed else {
        return Ok(ExitCode::SUCCESS);
    };
    let target = request_target(&args[0])?;
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let client = common.client(false)?;
    let response = client.send(&method, &target, &headers, body.as_deref().unwrap_or(b""))?;
    let (status, reason) = (response.status, response.reason.clone());
    let mut stdout = std::io::stdout().lock();
    response.stream(|bytes| stdout.write_all(bytes).is_ok())?;
    let _ = stdout.flush();
    if !(200..300).contains(&status) {
        eprintln!("wisp: HTTP {status} {reason}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The method, upper-cased (`--method post` means POST).
fn method(text: &str) -> Result<String, Error> {
    if !is_token(text) {
        return Err(Error(format!("--method `{text}` is not an HTTP method")));
    }
    Ok(text.to_ascii_uppercase())
}

/// `K: V` as a header.
fn header(text: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| Error(format!("-H `{text}`: {why}"));
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| bad("expected 'NAME: VALUE'"))?;
    let (name, value) = (name.trim(), value.trim());
    if !is_token(name) {
        return Err(bad("not a header name"));
    }
    if OURS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(bad("wisp sets this header itself"));
    }
    if value.contains(|c: char| c.is_control() && c != '\t') {
        return Err(bad("control characters are not allowed in a header"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// PATH as a request target: what may not appear in one (spaces, controls, non-ASCII, quotes)
/// percent-encoded and a `#fragment` dropped, as a browser would. `%` stays as it is: PATH may
/// be encoded already.
fn request_target(path: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return Err(Error(format!(
            "PATH `{path}` must start with /, e.g. /api/date"
        )));
    }
    let path = path.split('#').next().unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_methods_and_headers() {
        assert_eq!(
            request_target("/api/x?a=1&b=%20").unwrap(),
            "/api/x?a=1&b=%20"
        );
        assert_eq!(request_target("/a b/é#frag").unwrap(), "/a%20b/%C3%A9");
        assert!(request_target("api/x").is_err());
        assert_eq!(method("post").unwrap(), "POST");
        assert!(method("GET /x HTTP/1.1\r\n").is_err());
        assert_eq!(
            header("X-Thing:  a: b ").unwrap(),
            ("X-Thing".to_string(), "a: b".to_string())
        );
        for bad in [
            "no colon",
            ": v",
            "Bad Name: v",
            "X: a\r\nY: b",
            "content-length: 3",
        ] {
            assert!(header(bad).is_err(), "{bad}");
        }
    }
}
