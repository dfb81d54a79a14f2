//! The security review's checks: every admin route refuses a call without the right token, the
//! token is never shown, and no name a client or a function chooses reaches a file outside the
//! data folder.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use crate::support::{Reply, Server, TOKEN, TempDir, examples, module};

/// Every admin route, with a method it answers to, and some that do not exist: without the
/// token, a caller learns nothing, not even which exist.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/_wisp"),
    ("GET", "/_wisp/"),
    ("GET", "/_wisp/functions"),
    ("PUT", "/_wisp/functions/date?route=/x"),
    ("GET", "/_wisp/functions/date"),
    ("DELETE", "/_wisp/functions/date"),
    ("GET", "/_wisp/functions/date/versions"),
    ("POST", "/_wisp/functions/date/rollback?version=1"),
    ("GET", "/_wisp/functions/date/logs"),
    ("GET", "/_wisp/functions/date/logs?follow"),
    ("GET", "/_wisp/kv/default/date"),
    ("GET", "/_wisp/kv/default/date/key"),
    ("PUT", "/_wisp/kv/default/date/key"),
    ("DELETE", "/_wisp/kv/default/date/key"),
    ("GET", "/_wisp/topics"),
    ("POST", "/_wisp/topics/orders"),
    ("GET", "/_wisp/topics/orders/dead-letters"),
    ("POST", "/_wisp/topics/orders/dead-letters/replay"),
    ("GET", "/_wisp/dead-letters"),
    ("POST", "/_wisp/dead-letters/replay"),
    ("DELETE", "/_wisp/dead-letters"),
    ("GET", "/_wisp/fleet"),
    ("GET", "/_wisp/metrics"),
    ("GET", "/_wisp/no-such-thing"),
    ("POST", "/_wisp/functions/../../etc/passwd"),
];

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn every_admin_route_refuses_without_the_right_token() {
    let server = Server::start(&examples(), &[]);
    let basic_token = format!("Basic {}", base64(format!("admin:{TOKEN}").as_bytes()));
    let basic_colon = format!("Basic {}", base64(format!(":{TOKEN}").as_bytes()));
    let wrong = format!("Bearer {TOKEN}x");
    let short = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let lowercase_scheme_wrong = "bearer nope".to_string();
    let credentials: Vec<Option<&str>> = vec![
        None,
        Some("Bearer"),
        Some("Bearer "),
        Some(&wrong),
        Some(&short),
        Some(&lowercase_scheme_wrong),
        Some(&basic_token),
        Some(&basic_colon),
        Some(TOKEN),
    ];
    let mut refusal = None;
    for (method, path) in ROUTES {
        for credential in &credentials {
            let headers: Vec<(&str, &str)> =
                credential.iter().map(|c| ("Authorization", *c)).collect();
            let reply = server.request(method, path, &headers, b"body");
            let what = format!("{method} {path} with {credential:?}");
            assert_eq!(reply.status, 401, "{what}: {}", reply.body);
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"wisp\""),
                "{what}"
            );
            assert!(!reply.body.contains(TOKEN), "{what} shows the token");
            // One refusal for all: nothing tells routes that exist from those that do not.
            let body = refusal.get_or_insert_with(|| reply.body.clone());
            assert_eq!(&reply.body, body, "{what}");
        }
    }
    // The right token opens them (the check above is not refusing everything).
    assert_eq!(server.admin("GET", "/_wisp/functions", b"").status, 200);
}

#[test]
fn the_token_is_never_shown() {
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let token = "s3cret-token-that-must-not-leak";
    let mut child = crate::support::serve_command(&data)
        .env("WISP_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stdout: its first line has the address; all of it is kept, to look for the token.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut text = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.strip_prefix("wisp: listening on http://") {
                let _ = addr_tx.send(addr.parse::<std::net::SocketAddr>().unwrap());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let addr = addr_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the server listens");
    let call = |method: &str, path: &str, auth: &str, body: &[u8]| -> Reply {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        use std::io::Write;
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = String::new();
        let _ = stream.read_to_string(&mut raw);
        Reply::parse(&raw)
    };
    let bearer = format!("Bearer {token}");
    let hostile = std::fs::read(module("hostile")).unwrap();
    let deployed = call(
        "PUT",
        "/_wisp/functions/hostile?route=/hostile/...",
        &bearer,
        &hostile,
    );
    assert_eq!(deployed.status, 201, "{}", deployed.body);
    // A function sees the client's request, never the server's token.
    let echo = call("GET", "/hostile/echo", "Bearer not-the-token", b"");
    assert_eq!(echo.status, 200);
    assert!(!echo.body.contains(token), "{}", echo.body);
    // Refusals, errors, metrics, listings and logs.
    let wrong = call(
        "GET",
        "/_wisp/functions",
        &format!("Bearer {token}-no"),
        b"",
    );
    assert_eq!(wrong.status, 401);
    for (method, path) in [
        ("GET", "/_wisp/metrics"),
        ("GET", "/_wisp/functions"),
        ("GET", "/_wisp/functions/hostile"),
        ("GET", "/_wisp/functions/hostile/logs"),
        ("GET", "/_wisp/functions/nope"),
        ("PUT", "/_wisp/functions/bad?route=/b"),
    ] {
        let reply = call(method, path, &bearer, b"not a module");
        assert!(
            !reply.body.contains(token),
            "{method} {path}: {}",
            reply.body
        );
        assert!(!wrong.body.contains(token));
    }
    let _ = child.kill();
    let _ = child.wait();
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(out.contains("listening"), "{out}");
    assert!(!out.contains(token), "stdout shows the token: {out}");
    assert!(!err.contains(token), "stderr shows the token: {err}");
    for file in files_under(&data) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
        assert!(!found, "{} holds the token", file.display());
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_name_reaches_outside_the_data_folder() {
    let server = Server::start(&examples(), &[]);
    let outside = TempDir::new();
    let escape = outside.0.join("escaped");
    let target = escape.to_string_lossy().into_owned();
    let hostile = std::fs::read(module("hostile")).unwrap();
    // Function names: refused before anything is written.
    for name in [
        "..",
        "../x",
        "..%2Fx",
        "a%2F..%2F..%2Fx",
        "%2Etmp",
        "A",
        "-x",
        &target,
    ] {
        let path = format!("/_wisp/functions/{name}?route=/r{}", name.len());
        let reply = server.admin("PUT", &path, &hostile);
        assert!(
            [400, 404, 405].contains(&reply.status),
            "{name}: {} {}",
            reply.status,
            reply.body
        );
    }
    // Topic names.
    for topic in ["..", "../x", "..%2F..%2Fx"] {
        let reply = server.admin("POST", &format!("/_wisp/topics/{topic}"), b"x");
        assert!(
            [400, 404, 405].contains(&reply.status),
            "{topic}: {}",
            reply.status
        );
    }
    // Keys are bytes in the store, never paths: any key works and stays a key.
    let key = format!("..%2F..%2F..{}", target.replace('/', "%2F"));
    let put = server.admin("PUT", &format!("/_wisp/kv/default/date/{key}"), b"v");
    assert!(
        put.status == 204 || put.status == 400,
        "{}: {}",
        put.status,
        put.body
    );
    // Routes are matched, not opened.
    let reply = server.get(&format!("/..%2F..%2F{}", target.replace('/', "%2F")));
    assert_eq!(reply.status, 404);
    assert!(
        !escape.exists(),
        "something was written outside the data folder"
    );
    assert_eq!(std::fs::read_dir(&outside.0).unwrap().count(), 0);
}
