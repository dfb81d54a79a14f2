//! Raw-socket tests: a real `serve` on 127.0.0.1, driven by hand-written bytes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use smol::{Async, Executor, Timer, channel};

use super::*;

/// Long enough never to fire on a slow machine, short enough that a hang fails the test.
const PATIENCE: Duration = Duration::from_secs(5);

struct TestHandler {
    /// Told when `/sleep` has started, so a test knows the request is in flight.
    entered: mpsc::Sender<()>,
}

impl Handler for TestHandler {
    async fn handle(&self, request: Request) -> Response {
        match request.path.as_str() {
            "/sleep" => {
                let _ = self.entered.send(());
                Timer::after(Duration::from_millis(300)).await;
                Response::text(200, "slept")
            }
            "/stream" => {
                let (tx, rx) = channel::unbounded();
                for chunk in ["hello", "", " world"] {
                    let _ = tx.try_send(chunk.as_bytes().to_vec());
                }
                Response {
                    status: 200,
                    headers: Vec::new(),
                    body: Body::Stream(rx),
                }
            }
            "/framing" => Response::text(200, "ok")
                .header("Content-Length", "999")
                .header("Transfer-Encoding", "gzip")
                .header("Connection", "keep-alive")
                .header("Date", "never")
                .header("Server", "evil")
                .header("X-Split", "a\r\nInjected: yes")
                .header("X-Ok", "yes"),
            "/empty" => Response::new(204).header("X-Ok", "yes"),
            "/upload" => {
                let sum = request
                    .body
                    .iter()
                    .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
                Response::text(200, format!("len={} sum={sum}", request.body.len()))
            }
            "/panic" => panic!("the test handler panics on purpose"),
            _ => {
                let mut body = format!(
                    "{} {} {} {}\n",
                    request.method,
                    request.path,
                    request.query,
                    request.body.len()
                )
                .into_bytes();
                body.extend_from_slice(&request.body);
                Response::new(200).body(body)
            }
        }
    }

    fn body_limit(&self, _method: &str, path: &str) -> Option<usize> {
        (path == "/upload").then_some(4 << 20)
    }
}

fn limits() -> Limits {
    Limits {
        max_head_bytes: 1024,
        max_headers: 8,
        max_body_bytes: 1024,
        head_timeout: PATIENCE,
        body_timeout: PATIENCE,
        idle_timeout: PATIENCE,
        max_connections: 64,
        shutdown_grace: PATIENCE,
    }
}

/// `serve` on its own thread and executor.
struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    entered: mpsc::Receiver<()>,
    /// Dropping it shuts the server down.
    shutdown: Option<channel::Sender<()>>,
    returned: mpsc::Receiver<io::Result<()>>,
}

impl Server {
    fn start(limits: Limits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = Async::new(listener).unwrap();
        let stats = Arc::new(Stats::default());
        let (entered_tx, entered) = mpsc::channel();
        let handler = Arc::new(TestHandler {
            entered: entered_tx,
        });
        let (shutdown, shutdown_rx) = channel::bounded::<()>(1);
        let (returned_tx, returned) = mpsc::channel();
        let server_stats = stats.clone();
        thread::spawn(move || {
            let ex = Arc::new(Executor::new());
            let shutdown = async move {
                let _ = shutdown_rx.recv().await;
            };
            let serving = serve(
                ex.clone(),
                listener,
                limits,
                handler,
                server_stats,
                shutdown,
            );
            let _ = returned_tx.send(smol::block_on(ex.run(serving)));
        });
        Self {
            addr,
            stats,
            entered,
            shutdown: Some(shutdown),
            returned,
        }
    }

    fn client(&self) -> Client {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Starts shutdown; `finish` waits for `serve` to return.
    fn begin_shutdown(&mut self) {
        self.shutdown = None;
    }

    fn finish(&self) -> io::Result<()> {
        self.returned
            .recv_timeout(PATIENCE)
            .expect("serve did not return")
    }
}

struct Client {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Resp {
    head: String,
    status: u16,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

impl Client {
    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.reader.get_mut().write_all(bytes.as_ref()).unwrap();
    }

    /// Reads a status line and headers.
    fn head(&mut self) -> Resp {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed in a response head: {head:?}");
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        assert!(head.starts_with("HTTP/1.1 "), "bad status line: {head:?}");
        let status = head[9..12].parse().unwrap();
        Resp {
            head,
            status,
            body: Vec::new(),
        }
    }

    /// Reads a whole response, with a body framed by its length or by the close.
    fn response(&mut self) -> Resp {
        let mut resp = self.head();
        if resp.status < 200 || resp.status == 204 || resp.status == 304 {
            return resp;
        }
        if let Some(len) = resp.header("Content-Length") {
            resp.body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut resp.body).unwrap();
        } else {
            // Unframed: the body ends with the connection.
            assert_eq!(resp.header("Connection"), Some("close"), "{resp:?}");
            self.reader.read_to_end(&mut resp.body).unwrap();
        }
        resp
    }

    fn raw(&mut self, len: usize) -> String {
        let mut bytes = vec![0; len];
        self.reader.read_exact(&mut bytes).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// Asserts the server closed the connection with nothing more to say.
    fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// Sends `request`, expects an error response with this status, then the close.
    fn rejected(&mut self, request: impl AsRef<[u8]>, status: u16) -> Resp {
        self.send(request);
        let resp = self.response();
        assert_eq!(resp.status, status, "{resp:?}");
        assert!(
            resp.head
                .starts_with(&format!("HTTP/1.1 {status} {}\r\n", reason(status)))
        );
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_eq!(
            resp.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(!resp.body.is_empty());
        self.assert_closed();
        resp
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

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
    client.send("PUT /e HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nhi");
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

    client.send("POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
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
        "POST /upload HTTP/1.1\r\nContent-Length: 2000\r\n\r\n{}",
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
        "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    server.client().rejected(request, 413);
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = Server::start(limits());
    let chunk = format!("300\r\n{}\r\n", "c".repeat(0x300));
    let request =
        format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n");
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
    let resp = server
        .client()
        .rejected("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 408);
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
        let request = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
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
