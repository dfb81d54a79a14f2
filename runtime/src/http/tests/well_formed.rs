//! Well-formed requests: keep-alive, pipelining, bodies, HEAD, framing, streams.

use super::*;

#[test]
fn every_response_has_date_server_and_length() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(get("/a"));
    let resp = client.response();
    assert!(resp.head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(resp.header("Content-Length"), Some("10"));
    assert_eq!(
        resp.header("Server"),
        Some(concat!("wisp/", env!("CARGO_PKG_VERSION")))
    );
    let date = resp.header("Date").unwrap();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    assert_eq!(resp.header("Connection"), None);
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(get("/a?x=1&y"));
    assert_eq!(client.response().text(), "GET /a x=1&y 0\n");
    client.send(get("/b"));
    assert_eq!(client.response().text(), "GET /b  0\n");
    assert_eq!(server.stats.requests.load(Relaxed), 2);
    assert_eq!(server.stats.connections.load(Relaxed), 1);
    assert_eq!(server.stats.open_connections.load(Relaxed), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(format!(
        "{}POST /2 HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello{}",
        get("/1"),
        get("/3")
    ));
    assert_eq!(client.response().text(), "GET /1  0\n");
    assert_eq!(client.response().text(), "POST /2  5\nhello");
    assert_eq!(client.response().text(), "GET /3  0\n");
}

#[test]
fn http10_closes_unless_keep_alive_is_asked_for() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send("GET /old HTTP/1.0\r\n\r\n");
    let resp = client.response();
    assert_eq!(resp.text(), "GET /old  0\n");
    assert_eq!(resp.header("Connection"), Some("close"));
    client.assert_closed();

    let mut client = server.client();
    for _ in 0..2 {
        client.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = client.response();
        assert_eq!(resp.text(), "GET /old  0\n");
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
}

#[test]
fn connection_close_is_honoured() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send("GET /bye HTTP/1.1\r\nHost: test\r\nConnection: Close\r\n\r\n");
    let resp = client.response();
    assert_eq!(resp.text(), "GET /bye  0\n");
    assert_eq!(resp.header("Connection"), Some("close"));
    client.assert_closed();
}

#[test]
fn content_length_body() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(client.response().text(), "POST /echo  11\nhello world");
    // Repeating an equal Content-Length is allowed.
    client.send(
        "PUT /e HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nhi",
    );
    assert_eq!(client.response().text(), "PUT /e  2\nhi");
}

#[test]
fn chunked_body_with_extension_and_trailer() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(concat!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
        "5;name=value\r\nhello\r\n",
        "6\r\n world\r\n",
        "0\r\nX-Trailer: yes\r\n\r\n",
    ));
    assert_eq!(client.response().text(), "POST /echo  11\nhello world");
    // The framing ended exactly where it should: the connection carries on.
    client.send(get("/after"));
    assert_eq!(client.response().text(), "GET /after  0\n");
}

#[test]
fn expect_continue_gets_an_interim_response() {
    let server = Server::start(limits());
    let mut client = server.client();
    client
        .send("PUT /f HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(client.raw(25), "HTTP/1.1 100 Continue\r\n\r\n");
    client.send("12345");
    assert_eq!(client.response().text(), "PUT /f  5\n12345");
}

#[test]
fn large_upload_with_expect_continue_like_curl() {
    let server = Server::start(limits());
    let body: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sum = body.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    let mut client = server.client();
    client.send(format!(
        "PUT /upload HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    assert_eq!(client.head().status, 100);
    client.send(&body);
    assert_eq!(
        client.response().text(),
        format!("len={} sum={sum}", body.len())
    );

    client.send("POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(100_000) {
        client.send(format!("{:X}\r\n", piece.len()));
        client.send(piece);
        client.send("\r\n");
    }
    client.send("0\r\n\r\n");
    assert_eq!(
        client.response().text(),
        format!("len={} sum={sum}", body.len())
    );
}

#[test]
fn expect_continue_over_the_limit_is_refused_without_continue() {
    let server = Server::start(limits());
    let mut client = server.client();
    let request =
        "PUT /f HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n";
    client.rejected(request, 413);
}

#[test]
fn head_has_the_length_but_no_body() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(format!(
        "HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n{}",
        get("/next")
    ));
    let resp = client.head();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Length"),
        Some(&*"HEAD /h  0\n".len().to_string())
    );
    // The next bytes are the next response, not a body.
    assert_eq!(client.response().text(), "GET /next  0\n");
}

#[test]
fn framing_headers_are_the_front_ends() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(get("/framing"));
    let resp = client.response();
    assert_eq!(resp.text(), "ok");
    assert_eq!(resp.header("Content-Length"), Some("2"));
    assert_eq!(
        resp.header("Server"),
        Some(concat!("wisp/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(resp.header("X-Ok"), Some("yes"));
    for absent in ["Transfer-Encoding", "Connection", "X-Split", "Injected"] {
        assert_eq!(resp.header(absent), None, "{absent} in {resp:?}");
    }
    assert!(!resp.head.contains("never") && !resp.head.contains("evil"));
}

#[test]
fn no_content_has_no_length_and_no_body() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(format!("{}{}", get("/empty"), get("/next")));
    let resp = client.head();
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("Content-Length"), None);
    assert_eq!(resp.header("X-Ok"), Some("yes"));
    assert_eq!(client.response().text(), "GET /next  0\n");
}

#[test]
fn stream_body_is_chunked_on_http11() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send(get("/stream"));
    let resp = client.head();
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(resp.header("Content-Length"), None);
    let body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_eq!(client.raw(body.len()), body);
    client.send(get("/next"));
    assert_eq!(client.response().text(), "GET /next  0\n");
}

#[test]
fn stream_body_is_raw_then_close_on_http10() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let resp = client.response();
    assert_eq!(resp.header("Transfer-Encoding"), None);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.text(), "hello world");
}

#[test]
fn request_targets() {
    let server = Server::start(limits());
    let mut client = server.client();
    client.send("GET http://example.com/p/q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(client.response().text(), "GET /p/q x=1 0\n");
    client.send("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(client.response().text(), "GET /  0\n");
    client.send("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.response().text(), "OPTIONS *  0\n");
    client.rejected("GET * HTTP/1.1\r\nHost: test\r\n\r\n", 400);
}
