//! The HTTP front end, through its public entry point: arbitrary bytes sent on a connection
//! to a server whose handler echoes the request. The head parser, the body decoders (length
//! and chunked, trailers included) and the response writer all run; whatever the bytes, the
//! server answers with a well-formed status line or closes, and never panics (a panic on its
//! thread aborts the process, which libFuzzer reports).
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wisp::http::{Handler, Limits, Request, Response};

struct Echo;

impl Handler for Echo {
    async fn handle(&self, request: Request) -> Response {
        let mut body = format!("{} {} {}\n", request.method, request.path, request.query);
        for header in &request.headers {
            body.push_str(&format!("{}: {}\n", header.name, header.value.len()));
        }
        body.push_str(&format!("{}\n", request.body.len()));
        Response::text(200, body)
    }
}

/// One server for the whole run, small limits so that big inputs hit them.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let ex = Arc::new(smol::Executor::new());
            let listener = smol::Async::new(listener).unwrap();
            let limits = Limits {
                max_head_bytes: 4096,
                max_headers: 16,
                max_body_bytes: 8192,
                head_timeout: Duration::from_secs(2),
                body_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(2),
                ..Limits::default()
            };
            let serve = wisp::http::serve(
                ex.clone(),
                vec![wisp::http::Listener::plain(listener)],
                limits,
                Arc::new(Echo),
                Default::default(),
                std::future::pending::<()>(),
            );
            smol::block_on(ex.run(serve)).unwrap();
        });
        addr
    })
}

fuzz_target!(|bytes: &[u8]| {
    let mut stream = TcpStream::connect(server()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before it has read everything: that is allowed.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 ") && out.len() >= 12 && out[9..12].iter().all(u8::is_ascii_digit),
            "{:?}",
            String::from_utf8_lossy(&out[..out.len().min(200)])
        );
    }
});
