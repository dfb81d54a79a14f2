//! Bad input and limits: each gets its status, and the server carries on.

use super::*;

#[test]
fn malformed_request_line_is_400() {
    let server = Server::start(limits());
    server.client().rejected("hello there\r\n\r\n", 400);
    server.client().rejected("GET /\r\n\r\n", 400);
}

#[test]
fn malformed_header_is_400() {
    let server = Server::start(limits());
    server
        .client()
        .rejected("GET / HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n", 400);
}

#[test]
fn too_many_headers_is_431() {
    let server = Server::start(limits());
    let headers: String = (0..9).map(|i| format!("X-{i}: {i}\r\n")).collect();
    server
        .client()
        .rejected(format!("GET / HTTP/1.1\r\n{headers}\r\n"), 431);
}

#[test]
fn head_too_large_is_431() {
    let server = Server::start(limits());
    let big = "x".repeat(2000);
    server
        .client()
        .rejected(format!("GET / HTTP/1.1\r\nX-Big: {big}\r\n\r\n"), 431);
}

#[test]
fn body_over_the_limit_is_413() {
    let server = Server::start(limits());
    let resp = server.client().rejected(
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1025\r\n\r\n",
        413,
    );
    assert_eq!(resp.text(), "request body too large\n");
    // The handler's limit for a route replaces the default one.
    let mut client = server.client();
    client.send(format!(
        "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 2000\r\n\r\n{}",
        "u".repeat(2000)
    ));
    assert_eq!(
        client.response().text(),
        format!("len=2000 sum={}", 2000 * u32::from(b'u'))
    );
}

#[test]
fn body_over_the_limit_sent_anyway_still_gets_its_413() {
    // Like `curl --data-binary @big` without `Expect`: the body comes regardless. The server
    // must drain it before closing, or the reset would fail the upload before the 413 is read.
    let server = Server::start(limits());
    let body = "b".repeat(8 << 20);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    server.client().rejected(request, 413);
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = Server::start(limits());
    let chunk = format!("300\r\n{}\r\n", "c".repeat(0x300));
    let request = format!(
        "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    server.client().rejected(request, 413);
}

#[test]
fn slow_head_is_408() {
    let server = Server::start(Limits {
        head_timeout: Duration::from_millis(200),
        ..limits()
    });
    let resp = server.client().rejected("GET / HTTP/1.1\r\nHost:", 408);
    assert_eq!(resp.text(), "request head not received in time\n");
}

#[test]
fn slow_body_is_408() {
    let server = Server::start(Limits {
        body_timeout: Duration::from_millis(200),
        ..limits()
    });
    let resp = server.client().rejected(
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc",
        408,
    );
    assert_eq!(resp.text(), "request body not received in time\n");
}

#[test]
fn idle_connection_is_closed_silently() {
    let server = Server::start(Limits {
        idle_timeout: Duration::from_millis(200),
        ..limits()
    });
    let mut client = server.client();
    client.send(get("/"));
    assert_eq!(client.response().status, 200);
    client.assert_closed();
}

#[test]
fn host_must_be_there_once_and_valid() {
    let server = Server::start(limits());
    for (request, why) in [
        ("GET / HTTP/1.1\r\n\r\n", "no Host in an HTTP/1.1 request\n"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "more than one Host\n",
        ),
        (
            "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "more than one Host\n",
        ),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host\n"),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid Host\n"),
        ("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", "invalid Host\n"),
        ("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "invalid Host\n"),
    ] {
        assert_eq!(
            server.client().rejected(request, 400).text(),
            why,
            "{request:?}"
        );
    }
    // HTTP/1.0 need not send one; an empty one is what a target without authority gets.
    for request in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    ] {
        let mut client = server.client();
        client.send(request);
        assert_eq!(client.response().status, 200, "{request:?}");
    }
}

/// A bare LF in a head of CRLF lines is refused, never read as the start of a new field: a
/// proxy in front may read `Dummy: x\nContent-Length: 23` as one field and forward the next
/// request inside this one's body.
#[test]
fn a_bare_lf_among_crlf_lines_is_400() {
    let server = Server::start(limits());
    let smuggled = "GET /admin HTTP/1.1\r\nHost: test\r\n\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: test\r\nDummy: x\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let resp = server.client().rejected(request, 400);
    assert_eq!(resp.text(), "a bare LF in a head of CRLF lines\n");
    // Heads of bare LF lines only are still read.
    let mut client = server.client();
    client.send("GET / HTTP/1.1\nHost: test\nConnection: close\n\n");
    assert_eq!(client.response().status, 200);
}

#[test]
fn ambiguous_framing_is_400() {
    let server = Server::start(limits());
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: +5",
        "Content-Length: five",
        "Content-Length: 99999999999999999999999",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked, chunked",
    ] {
        let request = format!("POST / HTTP/1.1\r\nHost: test\r\n{framing}\r\n\r\nhello");
        server.client().rejected(request, 400);
    }
    let request = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    server.client().rejected(request, 400);
}

#[test]
fn malformed_chunks_are_400() {
    let server = Server::start(limits());
    for body in ["\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "zz\r\n", "-1\r\n"] {
        let request =
            format!("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        server.client().rejected(request, 400);
    }
}

#[test]
fn other_http_versions_are_505() {
    let server = Server::start(limits());
    server
        .client()
        .rejected("GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505);
    server
        .client()
        .rejected("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
}

#[test]
fn a_panicking_handler_gets_a_500_and_others_carry_on() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(get("/panic"));
    let resp = client.response();
    assert_eq!(resp.status, 500);
    assert_eq!(resp.header("Connection"), Some("close"));
    client.assert_closed();
    let mut client = server.client();
    client.send(get("/fine"));
    assert_eq!(client.response().status, 200);
}

#[test]
fn connections_over_the_cap_wait_in_the_backlog() {
    let server = Server::start(Limits {
        max_connections: 1,
        ..limits()
    });
    let mut first = server.client();
    first.send(get("/first"));
    assert_eq!(first.response().status, 200);

    let mut second = server.client();
    second.send(get("/second"));
    let stream = second.reader.get_ref();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0];
    let waited = stream.peek(&mut byte).unwrap_err();
    assert!(matches!(
        waited.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));

    drop(first);
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(second.response().text(), "GET /second  0\n");
    assert_eq!(server.stats.connections.load(Relaxed), 2);
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight() {
    let mut server = Server::start(limits());
    let mut idle = server.client();
    idle.send(get("/"));
    assert_eq!(idle.response().status, 200);
    let mut busy = server.client();
    busy.send(get("/sleep"));
    server.entered.recv_timeout(PATIENCE).unwrap();

    server.begin_shutdown();
    idle.assert_closed();
    let resp = busy.response();
    assert_eq!(resp.text(), "slept");
    assert_eq!(resp.header("Connection"), Some("close"));
    busy.assert_closed();
    server.finish().unwrap();
    assert_eq!(server.stats.open_connections.load(Relaxed), 0);
    assert!(TcpStream::connect(server.addr).is_err());
}

#[test]
fn shutdown_grace_bounds_the_wait() {
    let mut server = Server::start(Limits {
        shutdown_grace: Duration::from_millis(100),
        ..limits()
    });
    let mut busy = server.client();
    busy.send(get("/sleep"));
    server.entered.recv_timeout(PATIENCE).unwrap();
    server.begin_shutdown();
    server.finish().unwrap();
    // The request in flight was dropped with its connection.
    busy.assert_closed();
}
