//! A keep-alive HTTP client of the soak's own: `support`'s helpers open a connection per
//! request, and a server that is soaked should also see connections that last (and end now
//! and then).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::support::TOKEN;

#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// One client on one keep-alive connection at a time. Every 500th request on a connection
/// says `Connection: close`, so connections come and go as well.
pub(super) struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    on_conn: u32,
}

impl Http {
    pub(super) fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            conn: None,
            on_conn: 0,
        }
    }

    pub(super) fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.call("GET", path, &[], b"")
    }

    pub(super) fn admin(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, String> {
        let auth = format!("Bearer {TOKEN}");
        self.call(method, path, &[("Authorization", &auth)], body)
    }

    pub(super) fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let answer = self.exchange(method, path, headers, body);
        if answer.is_err() {
            self.conn = None;
        }
        answer
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream.set_nodelay(true).unwrap();
            self.conn = Some(BufReader::new(stream));
            self.on_conn = 0;
        }
        self.on_conn += 1;
        let closing = self.on_conn >= 500;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: soak\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if closing {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let conn = self.conn.as_mut().unwrap();
        conn.get_mut()
            .write_all(&request)
            .map_err(|e| format!("send: {e}"))?;
        let answer = read_answer(conn, method == "HEAD").map_err(|e| format!("receive: {e}"))?;
        let close = answer
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if closing || close {
            self.conn = None;
        }
        Ok(answer)
    }
}

fn read_answer(conn: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Answer> {
    use std::io::{Error, ErrorKind};
    let bad = |what: String| Error::new(ErrorKind::InvalidData, what);
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(Error::new(
            ErrorKind::UnexpectedEof,
            "closed before answering",
        ));
    }
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "closed in the head"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (k, v) = trimmed
            .split_once(':')
            .ok_or_else(|| bad(format!("header {trimmed:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 || status < 200 {
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size =
                usize::from_str_radix(size, 16).map_err(|_| bad(format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            conn.read_exact(&mut body[start..])?;
            body.truncate(start + size);
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("Content-Length {length:?}")))?;
        body.resize(length, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.read_to_end(&mut body)?;
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
