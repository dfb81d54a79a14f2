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
        handshake_timeout: PATIENCE,
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
                vec![Listener::plain(listener)],
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

mod bad_input;
mod well_formed;
