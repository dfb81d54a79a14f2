//! The HTTP front end of the real binary, byte by byte.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::{Reply, Server, examples};

fn server() -> Server {
    Server::start(
        &examples(),
        &["--max-body-kb", "64", "--head-timeout-ms", "300"],
    )
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn keep_alive_and_pipelining_on_one_connection() {
    let server = server();
    let one = "GET /api/date HTTP/1.1\r\nHost: t\r\n\r\n";
    let last = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let out = server.raw(format!("{one}{one}{last}").as_bytes());
    assert_eq!(count(&out, "HTTP/1.1 200 OK"), 3, "{out}");
    assert!(out.ends_with("ok\n"));
}

#[test]
fn http_1_0_closes_after_the_response() {
    let server = server();
    let out = server.raw(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
        "{out}"
    );
    assert!(out.ends_with("ok\n"));
}

#[test]
fn chunked_and_100_continue_bodies_reach_the_function() {
    let server = server();
    let chunked = b"POST /hostile/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n";
    let reply = Reply::parse(&server.raw(chunked));
    assert!(
        reply.body.contains("body_len=11") && reply.body.ends_with("hello world"),
        "{reply:?}"
    );

    let mut stream = server.connect();
    let body = vec![b'x'; 50_000];
    write!(
        stream,
        "PUT /hostile/echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&body).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(Reply::parse(&out).body.contains("body_len=50000"));
}

#[test]
fn bad_requests_get_their_4xx() {
    let server = server();
    let cases: &[(&[u8], &str)] = &[
        (b"GARBAGE\r\n\r\n", "400"),
        (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", "400"),
        (
            b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400",
        ),
        (
            b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            "400",
        ),
        (
            b"POST /hostile/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n",
            "413",
        ),
        // RFC 9112 §3.2: Host once, valid, and always in HTTP/1.1.
        (b"GET /api/date HTTP/1.1\r\n\r\n", "400"),
        (
            b"GET /api/date HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "400",
        ),
        (b"GET /api/date HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
        // RFC 9112 §2.2: a bare LF among CRLF lines is not a line end we read.
        (
            b"POST /hostile/echo HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: 3\r\n\r\nabc",
            "400",
        ),
    ];
    for (request, status) in cases {
        let out = server.raw(request);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status}")),
            "{:?} -> {out}",
            String::from_utf8_lossy(request)
        );
    }
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    let out = server.raw(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let big = "a".repeat(20_000);
    let out = server.raw(format!("GET / HTTP/1.1\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // The server is still fine.
    assert_eq!(server.get("/api/date").status, 200);
}

#[test]
fn a_slow_head_gets_408() {
    let server = server();
    let mut stream = server.connect();
    stream.write_all(b"GET /api/date HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}
