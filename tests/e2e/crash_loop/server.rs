//! The server under test and the way to it: the real `wisp` binary started on the loop's data
//! folder (and stopped with SIGTERM at the end), one-shot requests that tell an answer from a
//! request lost at the kill, and the checks' own requests, which must be answered.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Loop;
use super::clients::json;
use crate::support::{Reply, TOKEN};

/// A running server.
pub(super) struct Wisp {
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
    /// When it first answered.
    pub(super) ready: Instant,
    /// The checks' keep-alive connection.
    conn: RefCell<Option<BufReader<TcpStream>>>,
}

impl Wisp {
    /// A `GET` on the checks' keep-alive connection (a new one if it was closed); `None` when
    /// no whole answer comes back.
    fn get(&self, path: &str) -> Option<Reply> {
        for _ in 0..2 {
            let mut conn = self.conn.borrow_mut();
            if conn.is_none() {
                let stream = TcpStream::connect(self.addr).ok()?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .ok()?;
                *conn = Some(BufReader::new(stream));
            }
            let reply = kept_alive(conn.as_mut().unwrap(), path);
            if reply.is_none() {
                *conn = None;
            }
            if reply.is_some() {
                return reply;
            }
        }
        None
    }
}

/// One `GET` on a kept-alive connection: the answer, if it has a `Content-Length`.
fn kept_alive(conn: &mut BufReader<TcpStream>, path: &str) -> Option<Reply> {
    let auth = if path.starts_with("/_wisp/") {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n");
    conn.get_mut().write_all(request.as_bytes()).ok()?;
    let mut head = String::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length?];
    conn.read_exact(&mut body).ok()?;
    let raw = format!("{head}\r\n{}", String::from_utf8_lossy(&body));
    Some(Reply::parse(&raw))
}

impl Drop for Wisp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What became of one request.
pub(super) enum Outcome {
    /// A whole response came back.
    Answered(Reply),
    /// The connection was refused: nothing was sent.
    NotSent,
    /// Sent, at least in part, and no whole response came back: in flight at the kill.
    Lost,
}

/// One request with `Connection: close` (and the admin token on `/_wisp/` paths).
pub(super) fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Outcome {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return Outcome::NotSent;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    if path.starts_with("/_wisp/") {
        head.push_str(&format!("Authorization: Bearer {TOKEN}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    if stream.write_all(&raw).is_err() {
        return Outcome::Lost;
    }
    let mut out = Vec::new();
    // On an error, what was read before it is in `out`: a whole response still counts.
    let clean_end = stream.read_to_end(&mut out).is_ok();
    let text = String::from_utf8_lossy(&out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Lost;
    };
    if !head.starts_with("HTTP/1.1 ") {
        return Outcome::Lost;
    }
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    let whole = match length {
        Some(length) => body.len() >= length,
        None => clean_end,
    };
    if whole {
        Outcome::Answered(Reply::parse(&text))
    } else {
        Outcome::Lost
    }
}

impl Loop {
    /// Starts the server on the data folder; waits until `/healthz` answers.
    pub(super) fn start(&mut self, cycle: usize) -> Wisp {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(log, "=== crash_loop: cycle {cycle}").unwrap();
        let began = Instant::now();
        let mut child = crate::support::serve_command(&self.data)
            .env("WISP_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start wisp");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr: SocketAddr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                self.violation(
                    cycle,
                    format!("the server exited before listening ({status}); see server.log"),
                );
            }
            if let Some(addr) = line.trim().strip_prefix("wisp: listening on http://") {
                break addr.parse().unwrap();
            }
        };
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let mut wisp = Wisp {
            child,
            addr,
            ready: began,
            conn: RefCell::new(None),
        };
        loop {
            if let Outcome::Answered(r) = call(addr, "GET", "/healthz", &[], b"")
                && r.status == 200
            {
                break;
            }
            if began.elapsed() > Duration::from_secs(60) {
                self.violation(cycle, "the server did not answer /healthz within 60 s");
            }
            thread::sleep(Duration::from_millis(5));
        }
        wisp.ready = Instant::now();
        self.figures.restarts.push(wisp.ready - began);
        wisp
    }

    /// A request the checks make: it must be answered.
    pub(super) fn ask(
        &self,
        cycle: usize,
        wisp: &Wisp,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Reply {
        self.ask_with(cycle, wisp, method, path, &[], body)
    }

    pub(super) fn ask_with(
        &self,
        cycle: usize,
        wisp: &Wisp,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let answered = if method == "GET" && headers.is_empty() && body.is_empty() {
            wisp.get(path)
        } else {
            match call(wisp.addr, method, path, headers, body) {
                Outcome::Answered(reply) => Some(reply),
                _ => None,
            }
        };
        answered.unwrap_or_else(|| {
            self.violation(cycle, format!("{method} {path}: no answer from the server"))
        })
    }

    pub(super) fn ask_json(&self, cycle: usize, wisp: &Wisp, path: &str) -> Value {
        let reply = self.ask(cycle, wisp, "GET", path, b"");
        match (reply.status, json(&reply)) {
            (200, Some(value)) => value,
            _ => self.violation(cycle, format!("GET {path}: {reply:?}")),
        }
    }

    /// A clean stop: SIGTERM, exit 0, nothing panicked in any cycle. Then three starts and
    /// clean stops, for what a start costs on the same data without a crash to recover from.
    pub(super) fn stop(&mut self, cycle: usize, wisp: Wisp) {
        self.terminate(cycle, wisp);
        for _ in 0..3 {
            let wisp = self.start(cycle);
            let took = self.figures.restarts.pop().unwrap();
            self.figures.clean_starts.push(took);
            self.terminate(cycle, wisp);
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
            self.violation(cycle, format!("the server panicked: {line}"));
        }
    }

    fn terminate(&self, cycle: usize, mut wisp: Wisp) {
        let pid = wisp.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = wisp.child.wait().unwrap();
        if !status.success() {
            self.violation(cycle, format!("SIGTERM ended the server with {status}"));
        }
    }
}
