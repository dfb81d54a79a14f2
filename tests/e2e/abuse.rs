//! Abusive clients, each while a well-behaved client keeps calling a function: slow senders,
//! connections that never send, pipelining without reading, a chunked body that never ends,
//! and a flood of tiny pipelined requests.
//!
//! Each test checks that the well-behaved client is served throughout (no request of it waits
//! past a generous bound: starved, not slow, is what fails) and that the server's memory stays
//! bounded, and prints the figures. `WISP_ABUSE=full` runs them at the sizes (1,000
//! slow connections and so on: `tests/abuse.sh`); the default is a size CI can afford. The
//! latency target (p99 under 50 ms) is read from the printed figures, not asserted: these
//! machines are shared and noisy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Server, examples};

/// Whether to run at the full sizes.
fn full() -> bool {
    std::env::var("WISP_ABUSE").is_ok_and(|v| v == "full")
}

/// `small` in CI, `large` with `WISP_ABUSE=full`.
fn size(small: usize, large: usize) -> usize {
    if full() { large } else { small }
}

/// No request of the well-behaved client may wait longer than this: a starved client, not a
/// slow machine (CI runs these in a debug build, beside the other end-to-end tests, on 2
/// cores).
const STARVED: Duration = Duration::from_secs(10);

fn server() -> Server {
    // Room for the abusers and the probe; the head deadline as shipped (10 s).
    Server::start(&examples(), &["--max-connections", "4096"])
}

/// Calls `/api/date` on one keep-alive connection for `run`; the latency of each call.
fn well_behaved(server: &Server, run: Duration) -> Vec<Duration> {
    let mut stream = server.connect();
    stream.set_read_timeout(Some(STARVED)).unwrap();
    let request = b"GET /api/date HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut latencies = Vec::new();
    let end = Instant::now() + run;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < end {
        let start = Instant::now();
        stream.write_all(request).unwrap();
        // The date function's response is one small write; read until its body is in.
        let mut got = Vec::new();
        loop {
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                // A signal to this test process (other tests start and kill servers) ends a
                // read that has a timeout early.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("the well-behaved client starved: {e}"),
            };
            assert!(
                n > 0,
                "the server closed the well-behaved client's connection"
            );
            got.extend_from_slice(&buf[..n]);
            if complete(&got) {
                break;
            }
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        latencies.push(start.elapsed());
        thread::sleep(Duration::from_millis(5));
    }
    latencies
}

/// Whether `response` holds a whole response with a `Content-Length` body.
fn complete(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

/// Prints the figures and checks what must hold: served throughout, memory bounded.
fn report(what: &str, server: &Server, latencies: &mut [Duration], rss_before: u64) {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let rss = server.rss_kib();
    eprintln!(
        "abuse: {what}: well-behaved client: {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         server RSS {} -> {} KiB",
        latencies.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        pick(1.0).as_secs_f64() * 1e3,
        rss_before,
        rss,
    );
    assert!(latencies.len() > 10, "{what}: too few calls got through");
    assert!(pick(1.0) < STARVED, "{what}: a call waited {:?}", pick(1.0));
    // Bounded: each abusive connection may cost a read buffer, not what it sends.
    let per_connection_kib = 64;
    let bound = rss_before + 32 * 1024 + per_connection_kib * size(200, 1000) as u64;
    assert!(rss < bound, "{what}: RSS {rss} KiB (bound {bound} KiB)");
}

/// Runs `abuse` on its own threads until the probe is done, then stops it.
fn while_abused(
    what: &str,
    server: &Server,
    abuse: impl FnOnce(Arc<AtomicBool>) -> Vec<thread::JoinHandle<()>>,
) {
    let rss_before = server.rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let abusers = abuse(stop.clone());
    // Let the abuse build up before measuring.
    thread::sleep(Duration::from_millis(500));
    let mut latencies = well_behaved(server, Duration::from_secs(size(3, 20) as u64));
    stop.store(true, Relaxed);
    for abuser in abusers {
        abuser.join().unwrap();
    }
    report(what, server, &mut latencies, rss_before);
}

/// Opens `n` connections from `threads` threads, and calls `each` on every one until `stop`.
fn connections(
    server: &Server,
    n: usize,
    stop: Arc<AtomicBool>,
    each: impl Fn(&mut TcpStream, usize) + Send + Sync + 'static,
) -> Vec<thread::JoinHandle<()>> {
    let addr = server.addr;
    let each = Arc::new(each);
    (0..4)
        .map(|t| {
            let (stop, each) = (stop.clone(), each.clone());
            thread::spawn(move || {
                let mut streams: Vec<TcpStream> = (t..n)
                    .step_by(4)
                    .filter_map(|_| TcpStream::connect(addr).ok())
                    .collect();
                let mut round = 0;
                while !stop.load(Relaxed) {
                    for stream in &mut streams {
                        each(stream, round);
                    }
                    round += 1;
                    thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect()
}

#[test]
fn slow_senders_a_byte_a_second() {
    let server = server();
    let n = size(200, 1000);
    while_abused("slow senders", &server, |stop| {
        let head = b"GET /api/date HTTP/1.1\r\nHost: t\r\nX-Slow: ";
        connections(&server, n, stop, move |stream, round| {
            // One byte a second (the loop turns every 100 ms).
            if round % 10 == 0 {
                let byte = head.get(round / 10).copied().unwrap_or(b'a');
                let _ = stream.write_all(&[byte]);
            }
        })
    });
}

#[test]
fn connections_that_never_send() {
    let server = server();
    let n = size(200, 1000);
    while_abused("silent connections", &server, |stop| {
        connections(&server, n, stop, |_, _| {})
    });
}

#[test]
fn pipelining_without_reading() {
    let server = server();
    // Each such client has the server run requests until both sockets' buffers are full
    // (thousands on loopback) before it stops reading: a few are enough to show the bound.
    let n = size(2, 64);
    while_abused("pipelining, never reading", &server, |stop| {
        let burst = "GET /api/date HTTP/1.1\r\nHost: t\r\n\r\n".repeat(64);
        connections(&server, n, stop, move |stream, _| {
            // Non-blocking: once the server stops reading, the socket fills up and the
            // writes fail, which is the point.
            let _ = stream.set_nonblocking(true);
            let _ = stream.write_all(burst.as_bytes());
        })
    });
}

#[test]
fn a_chunked_body_that_never_ends() {
    let server = server();
    let n = size(8, 64);
    while_abused("endless chunked bodies", &server, |stop| {
        let head = b"POST /hostile/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
        connections(&server, n, stop, move |stream, round| {
            let _ = stream.set_nonblocking(true);
            if round == 0 {
                let _ = stream.write_all(head);
            }
            let _ = stream.write_all(b"10\r\n0123456789abcdef\r\n");
        })
    });
}

#[test]
fn a_flood_of_tiny_pipelined_requests() {
    let server = server();
    let n = size(4, 16);
    while_abused("a flood of tiny requests", &server, |stop| {
        let burst = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n".repeat(100);
        connections(&server, n, stop, move |stream, _| {
            // Reads what came back, so the flood goes on as fast as the server answers.
            let _ = stream.set_nonblocking(true);
            let _ = stream.write_all(burst.as_bytes());
            let mut sink = [0u8; 65536];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        })
    });
}
