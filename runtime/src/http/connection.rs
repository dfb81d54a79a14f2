//! One client connection: reading requests off the socket and writing responses onto it.
//!
//! This module (with [`parse`], its bytes-to-meaning half) is the only place that sees bytes
//! and httparse. Everything here is sequential: one request is read, answered, and only then is
//! the next one read, which is what keeps pipelined responses in order.

use std::fmt::Write as _;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smol::Timer;
use smol::future::{self, Future};
use smol::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::Stream;
use super::{Body, Limits, Request, Response, reason};

mod parse;

use parse::{Framing, blank_line_end, check_trailers, chunk_size, line_end, parse_head};

/// The read buffer starts this small and grows up to its capacity only for large heads.
const INITIAL_BUFFER: usize = 4096;
/// The read buffer also holds chunk size lines and trailers, so it never gets smaller than this
/// even when `max_head_bytes` is.
const MIN_BUFFER: usize = 1024;
/// A body remainder at least this large is read straight into the body, skipping the buffer.
const DIRECT_READ: usize = 64 * 1024;
/// A streamed response is written once this much is batched, even if more chunks are ready.
const STREAM_BATCH: usize = 64 * 1024;
/// How long to keep draining a client's input after the last response, see [`Connection::close`].
const LINGER: Duration = Duration::from_secs(2);
const SERVER: &str = concat!("Server: wisp/", env!("CARGO_PKG_VERSION"), "\r\n");
/// Headers the front end owns: a handler's are dropped rather than trusted.
const OWNED_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "server",
];

/// Why no request came out of [`Connection::read_request`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadError {
    /// The client went away, idled out, or the server is shutting down between requests, or
    /// the socket failed: close without answering.
    Closed,
    /// The client broke the protocol or a limit: answer with this status and text, then close.
    Reject(u16, &'static str),
}

/// A request, and what its response must look like on the wire.
pub(super) struct Incoming {
    pub request: Request,
    pub reply: Reply,
}

/// What the framing of a response depends on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply {
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version: u8,
    /// The request was `HEAD`: headers only.
    pub head_only: bool,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

impl Reply {
    /// For a response the front end sends on its own before closing.
    pub const CLOSE: Reply = Reply {
        version: 1,
        head_only: false,
        keep_alive: false,
    };
}

/// How a read stopped short of what was wanted.
enum Stop {
    /// End of input, or a socket error.
    Closed,
    TimedOut,
    /// What was wanted did not fit in the allowed length.
    TooLong,
}

impl Stop {
    fn reject(self, timed_out: &'static str, too_long: ReadError) -> ReadError {
        match self {
            Stop::Closed => ReadError::Closed,
            Stop::TimedOut => ReadError::Reject(408, timed_out),
            Stop::TooLong => too_long,
        }
    }
}

/// One client connection: its socket, its read buffer, and the buffer responses are built in.
pub(super) struct Connection {
    stream: Stream,
    peer: SocketAddr,
    local: SocketAddr,
    limits: Limits,
    /// Received bytes; `buf[start..end]` is not consumed yet.
    // INVARIANT: start <= end <= buf.len() <= capacity.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    capacity: usize,
    /// The head of the response being written, kept to reuse its allocation.
    out: Vec<u8>,
}

impl Connection {
    pub fn new(stream: Stream, peer: SocketAddr, local: SocketAddr, limits: &Limits) -> Self {
        let capacity = limits.max_head_bytes.max(MIN_BUFFER);
        Self {
            stream,
            peer,
            local,
            limits: limits.clone(),
            buf: vec![0; capacity.min(INITIAL_BUFFER)],
            start: 0,
            end: 0,
            capacity,
            out: Vec::with_capacity(256),
        }
    }

    /// Reads the next request, head and body. While no byte of it has arrived, `interrupt`
    /// completing (shutdown) or `idle_timeout` passing ends the connection quietly; from the
    /// first byte on, the request is read to the end or rejected.
    pub async fn read_request(
        &mut self,
        interrupt: impl Future<Output = ()>,
        body_limit: impl FnOnce(&str, &str) -> usize,
    ) -> Result<Incoming, ReadError> {
        let idle = Instant::now() + self.limits.idle_timeout;
        // Polled first, so bytes already buffered (pipelining) win over the interrupt.
        let waited = future::or(self.wait_for_request(idle), async {
            interrupt.await;
            Err(Stop::Closed)
        });
        waited.await.map_err(|_| ReadError::Closed)?;

        let deadline = Instant::now() + self.limits.head_timeout;
        let max = self.limits.max_head_bytes;
        let len = self
            .fill_until(max, deadline, blank_line_end)
            .await
            .map_err(|stop| stop.reject("request head not received in time", TOO_LARGE_HEAD))?;
        let head = parse_head(
            &self.buf[self.start..self.start + len],
            self.limits.max_headers,
        )?;
        self.start += len;

        let limit = body_limit(&head.method, &head.path);
        let deadline = Instant::now() + self.limits.body_timeout;
        let body = match head.framing {
            Framing::Empty => Vec::new(),
            Framing::Length(n) => {
                // Decided before reading anything, and before inviting the body with a 100.
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= limit)
                    .ok_or(TOO_LARGE_BODY)?;
                if head.expect_continue && n > 0 {
                    self.send_continue().await?;
                }
                let mut body = Vec::new();
                self.read_exact_into(&mut body, n, deadline)
                    .await
                    .map_err(body_stop)?;
                body
            }
            Framing::Chunked => {
                if head.expect_continue {
                    self.send_continue().await?;
                }
                self.read_chunked(limit, deadline).await?
            }
        };

        let reply = Reply {
            version: head.version,
            head_only: head.method == "HEAD",
            keep_alive: head.keep_alive,
        };
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            version: head.version,
            headers: head.headers,
            body,
            peer: self.peer,
            local: self.local,
            tls: self.stream.is_tls(),
        };
        Ok(Incoming { request, reply })
    }

    /// Writes a response framed for `reply`. Returns whether the connection stays open for
    /// another request.
    pub async fn write_response(&mut self, response: Response, reply: Reply) -> io::Result<bool> {
        let status = if (100..=999).contains(&response.status) {
            response.status
        } else {
            500
        };
        // 1xx, 204 and 304 never have content (RFC 9110 §6.4.1).
        let bodiless = status < 200 || status == 204 || status == 304;
        let chunked = reply.version >= 1;
        let keep_alive =
            reply.keep_alive && (bodiless || chunked || matches!(response.body, Body::Bytes(_)));

        let out = &mut self.out;
        out.clear();
        let _ = io::Write::write_fmt(
            out,
            format_args!("HTTP/1.1 {status} {}\r\n", reason(status)),
        );
        push_date(out);
        out.extend_from_slice(SERVER.as_bytes());
        for (name, value) in &response.headers {
            if OWNED_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) || !is_field(name, value)
            {
                continue;
            }
            for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        match &response.body {
            _ if bodiless => {}
            Body::Bytes(bytes) => {
                let _ =
                    io::Write::write_fmt(out, format_args!("Content-Length: {}\r\n", bytes.len()));
            }
            // Without chunked framing (HTTP/1.0) the end of the connection is the end of the body.
            Body::Stream(_) if chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Body::Stream(_) => {}
        }
        match (keep_alive, reply.version) {
            (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
            (true, 0) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            (true, _) => {}
        }
        out.extend_from_slice(b"\r\n");

        let stall = self.limits.idle_timeout;
        match response.body {
            Body::Bytes(bytes) if !bodiless && !reply.head_only => {
                write_all(
                    &mut self.stream,
                    &mut [IoSlice::new(out), IoSlice::new(&bytes)],
                    stall,
                )
                .await?;
            }
            Body::Stream(chunks) if !bodiless && !reply.head_only => {
                self.write_stream(chunks, chunked).await?;
            }
            _ => write_all(&mut self.stream, &mut [IoSlice::new(out)], stall).await?,
        }
        Ok(keep_alive)
    }

    /// Closes after a response. Closing with input unread makes the kernel answer with a reset,
    /// which can destroy the response before the client has read it (a 413 while the body is
    /// still coming, or a pipelined request behind a `Connection: close`). So when more input
    /// may come (`input_may_follow`) or already has, this stops sending and drains the input
    /// for a moment first.
    pub async fn close(mut self, input_may_follow: bool) {
        self.stream.shutdown_write(LINGER).await;
        let unread = self.start < self.end || self.stream.tcp().peek(&mut [0]).is_ok_and(|n| n > 0);
        if !input_may_follow && !unread {
            return;
        }
        let deadline = Instant::now() + LINGER;
        while let Ok(n) = read_by(&mut self.stream, &mut self.buf, deadline).await {
            if n == 0 {
                break;
            }
        }
    }

    /// Waits for the first byte of a request.
    async fn wait_for_request(&mut self, deadline: Instant) -> Result<(), Stop> {
        loop {
            // Empty lines before a request line are to be ignored (RFC 9112 §2.2).
            let blank = self
                .pending()
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.start += blank;
            if self.start < self.end {
                return Ok(());
            }
            self.fill(deadline).await?;
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer.
    async fn fill(&mut self, deadline: Instant) -> Result<(), Stop> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() < self.capacity {
                self.buf.resize((self.buf.len() * 2).min(self.capacity), 0);
            } else {
                return Err(Stop::TooLong);
            }
        }
        let n = read_by(&mut self.stream, &mut self.buf[self.end..], deadline).await?;
        if n == 0 {
            return Err(Stop::Closed);
        }
        self.end += n;
        Ok(())
    }

    /// Reads until `find` locates the end of what is wanted in the pending bytes, and returns
    /// its length. `find` gets how much it has already searched, so each byte is searched about
    /// once however slowly the client sends them.
    // INVARIANT: `find` returns at most the length it was given, so `start + len <= end`.
    async fn fill_until(
        &mut self,
        max: usize,
        deadline: Instant,
        find: impl Fn(&[u8], usize) -> Option<usize>,
    ) -> Result<usize, Stop> {
        let mut searched = 0;
        loop {
            let pending = self.pending();
            match find(pending, searched) {
                Some(len) if len <= max => return Ok(len),
                Some(_) => return Err(Stop::TooLong),
                None if pending.len() >= max => return Err(Stop::TooLong),
                None => searched = pending.len(),
            }
            self.fill(deadline).await?;
        }
    }

    /// Appends exactly `n` bytes of body to `body`.
    async fn read_exact_into(
        &mut self,
        body: &mut Vec<u8>,
        mut n: usize,
        deadline: Instant,
    ) -> Result<(), Stop> {
        while n > 0 {
            // A small remainder goes through the buffer, which then also holds what follows it.
            if self.start == self.end && n < self.buf.len() {
                self.fill(deadline).await?;
            }
            if self.start < self.end {
                let take = n.min(self.end - self.start);
                body.extend_from_slice(&self.buf[self.start..self.start + take]);
                self.start += take;
                n -= take;
            } else {
                // The body grows as bytes arrive, not by what the client declared.
                let old = body.len();
                body.resize(old + n.min(DIRECT_READ), 0);
                let read = read_by(&mut self.stream, &mut body[old..], deadline).await;
                body.truncate(old + *read.as_ref().unwrap_or(&0));
                match read? {
                    0 => return Err(Stop::Closed),
                    got => n -= got,
                }
            }
        }
        Ok(())
    }

    async fn read_chunked(
        &mut self,
        limit: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let len = self
                .fill_until(self.capacity, deadline, line_end)
                .await
                .map_err(|stop| stop.reject(SLOW_BODY, BAD_CHUNK))?;
            let size = chunk_size(&self.buf[self.start..self.start + len]).ok_or(BAD_CHUNK)?;
            self.start += len;
            if size == 0 {
                break;
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|&size| {
                    body.len()
                        .checked_add(size)
                        .is_some_and(|total| total <= limit)
                })
                .ok_or(TOO_LARGE_BODY)?;
            self.read_exact_into(&mut body, size, deadline)
                .await
                .map_err(body_stop)?;
            let len = self
                .fill_until(2, deadline, |pending, _| (pending.len() >= 2).then_some(2))
                .await
                .map_err(body_stop)?;
            if &self.buf[self.start..self.start + len] != b"\r\n" {
                return Err(BAD_CHUNK);
            }
            self.start += len;
        }
        let len = self
            .fill_until(self.capacity, deadline, blank_line_end)
            .await
            .map_err(|stop| stop.reject(SLOW_BODY, ReadError::Reject(431, "trailers too large")))?;
        check_trailers(
            &self.buf[self.start..self.start + len],
            self.limits.max_headers,
        )?;
        self.start += len;
        Ok(body)
    }

    async fn send_continue(&mut self) -> Result<(), ReadError> {
        // A client that already sends its body is no longer waiting for the go-ahead.
        if self.start < self.end {
            return Ok(());
        }
        let continue_ = b"HTTP/1.1 100 Continue\r\n\r\n";
        write_all(
            &mut self.stream,
            &mut [IoSlice::new(continue_)],
            self.limits.idle_timeout,
        )
        .await
        .map_err(|_| ReadError::Closed)
    }

    async fn write_stream(
        &mut self,
        chunks: smol::channel::Receiver<Vec<u8>>,
        chunked: bool,
    ) -> io::Result<()> {
        let stall = self.limits.idle_timeout;
        // `out` holds the head; chunks are batched behind it while more are ready at once, and
        // written before waiting for the next.
        loop {
            let chunk = match chunks.try_recv() {
                Ok(chunk) => Some(chunk),
                Err(smol::channel::TryRecvError::Closed) => None,
                Err(smol::channel::TryRecvError::Empty) => {
                    write_all(&mut self.stream, &mut [IoSlice::new(&self.out)], stall).await?;
                    self.out.clear();
                    chunks.recv().await.ok()
                }
            };
            match chunk {
                // An empty chunk would end the chunked body.
                Some(chunk) if chunk.is_empty() => continue,
                Some(chunk) if chunked => {
                    let _ =
                        io::Write::write_fmt(&mut self.out, format_args!("{:x}\r\n", chunk.len()));
                    self.out.extend_from_slice(&chunk);
                    self.out.extend_from_slice(b"\r\n");
                }
                Some(chunk) => self.out.extend_from_slice(&chunk),
                None => break,
            }
            if self.out.len() >= STREAM_BATCH {
                write_all(&mut self.stream, &mut [IoSlice::new(&self.out)], stall).await?;
                self.out.clear();
            }
        }
        if chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        write_all(&mut self.stream, &mut [IoSlice::new(&self.out)], stall).await
    }
}

const TOO_LARGE_HEAD: ReadError = ReadError::Reject(431, "request head too large");
const TOO_LARGE_BODY: ReadError = ReadError::Reject(413, "request body too large");
const BAD_CHUNK: ReadError = ReadError::Reject(400, "malformed chunked body");
const SLOW_BODY: &str = "request body not received in time";

fn body_stop(stop: Stop) -> ReadError {
    stop.reject(SLOW_BODY, BAD_CHUNK)
}

/// One read, given up at `deadline`. End of input reads as `Ok(0)`.
async fn read_by(stream: &mut Stream, buf: &mut [u8], deadline: Instant) -> Result<usize, Stop> {
    let read = async { stream.read(buf).await.map_err(|_| Stop::Closed) };
    future::or(read, async {
        Timer::at(deadline).await;
        Err(Stop::TimedOut)
    })
    .await
}

/// Writes all of `bufs`, usually in one syscall. A client that takes none of it for `stall`
/// (it stopped reading) is given up on.
async fn write_all(
    stream: &mut Stream,
    mut bufs: &mut [IoSlice<'_>],
    stall: Duration,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let write = stream.write_vectored(bufs);
        let n = future::or(write, async {
            Timer::after(stall).await;
            Err(io::ErrorKind::TimedOut.into())
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    if stream.is_tls() {
        let flush = stream.flush();
        future::or(flush, async {
            Timer::after(stall).await;
            Err(io::ErrorKind::TimedOut.into())
        })
        .await?;
    }
    Ok(())
}

/// Whether a handler's header can be written as is: a token name, and no byte in the value
/// that could end the field early (which would let a handler forge headers or a response).
fn is_field(name: &str, value: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty()
        && name.bytes().all(token)
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

/// Appends the `Date` header. It changes once a second, so the text is formatted once a second
/// per thread rather than per response.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, heapless::String<29>)> =
            const { std::cell::RefCell::new((u64::MAX, heapless::String::new())) };
    }
    let now = SystemTime::now();
    // httpdate panics outside 1970..=9999, and a server without a sane clock must not send a
    // Date anyway (RFC 9110 §6.6.1).
    let Some(secs) = now.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()) else {
        return;
    };
    if secs >= 253_402_300_800 {
        return;
    }
    CACHE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            text.clear();
            // IMF-fixdate is always 29 bytes, so this cannot overflow.
            let _ = write!(text, "{}", httpdate::HttpDate::from(now));
            *at = secs;
        }
        for part in [&b"Date: "[..], text.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    });
}
