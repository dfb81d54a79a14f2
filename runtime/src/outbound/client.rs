//! One HTTP/1.1 exchange: connect, send the request, read the response; a connection per
//! request (`Connection: close`), over TLS for `https://`.
//!
//! Everything the peer sends is capped: the head at [`MAX_HEAD`], the body at the caller's
//! `max_body`, however it is framed (`Content-Length`, chunked, or until the connection
//! closes). The caller bounds the time.

use futures_rustls::TlsConnector;
use rustls_pki_types::ServerName;
use smol::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use smol::net::TcpStream;

use super::roots::client_config;
use super::url::{Scheme, Url};
use super::{Failure, Request, Response};

/// The largest response head (status line and headers).
pub const MAX_HEAD: usize = 64 << 10;
/// The most response headers.
const MAX_HEADERS: usize = 100;

/// Sends `request` to `url` and reads the response.
pub async fn exchange(request: &Request, url: &Url, max_body: usize) -> Result<Response, Failure> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| Failure::Connect(format!("{}: {e}", url.authority())))?;
    let _ = tcp.set_nodelay(true);
    match url.scheme {
        Scheme::Http => over(tcp, request, url, max_body).await,
        Scheme::Https => {
            let name = ServerName::try_from(url.host.clone()).map_err(|_| {
                Failure::Invalid(format!("`{}` is not a TLS server name", url.host))
            })?;
            let tls = TlsConnector::from(client_config())
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Tls(format!("{}: {e}", url.authority())))?;
            over(tls, request, url, max_body).await
        }
    }
}

async fn over<S>(
    stream: S,
    request: &Request,
    url: &Url,
    max_body: usize,
) -> Result<Response, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    let head = request_head(request, url);
    let lost = |e: std::io::Error| Failure::Connect(format!("{}: {e}", url.authority()));
    let out = stream.get_mut();
    out.write_all(head.as_bytes()).await.map_err(lost)?;
    out.write_all(&request.body).await.map_err(lost)?;
    out.flush().await.map_err(lost)?;
    let (status, headers) = read_head(&mut stream).await?;
    let no_body = request.method.eq_ignore_ascii_case("HEAD")
        || status == 204
        || status == 304
        || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else {
        read_body(&mut stream, &headers, max_body).await?
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The request line and headers. The host frames the message itself (`Host`,
/// `Content-Length`, `Connection`); the guest's own values for those were dropped earlier.
fn request_head(request: &Request, url: &Url) -> String {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        request.method,
        url.target,
        url.authority()
    );
    let mut agent = false;
    for (name, value) in &request.headers {
        agent |= name.eq_ignore_ascii_case("user-agent");
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !agent {
        head.push_str(concat!(
            "User-Agent: wisp/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !request.body.is_empty() || !matches!(request.method.as_str(), "GET" | "HEAD") {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    head
}

/// Reads the status line and headers, skipping interim (1xx) responses.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
) -> Result<(u16, Vec<(String, String)>), Failure> {
    loop {
        let mut head = Vec::new();
        loop {
            let line = read_line(stream, &mut head, MAX_HEAD).await?;
            if line == 0 {
                return Err(Failure::Protocol(
                    "the connection closed before a response".into(),
                ));
            }
            if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") || head == b"\r\n" {
                break;
            }
        }
        if head == b"\r\n" {
            continue;
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(Failure::Protocol("a malformed response head".into())),
        }
        let status = parsed.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let headers = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        return Ok((status, headers));
    }
}

/// Appends one line (through its `\n`) to `into`, failing once `into` would pass `cap`.
async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    into: &mut Vec<u8>,
    cap: usize,
) -> Result<usize, Failure> {
    let start = into.len();
    loop {
        let available = stream.fill_buf().await.map_err(broken)?;
        if available.is_empty() {
            return Ok(into.len() - start);
        }
        let (take, done) = match memchr(available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if into.len() + take > cap {
            return Err(Failure::TooLarge);
        }
        into.extend_from_slice(&available[..take]);
        stream.consume(take);
        if done {
            return Ok(into.len() - start);
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn broken(e: std::io::Error) -> Failure {
    Failure::Protocol(format!("the response broke off: {e}"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    headers: &[(String, String)],
    max: usize,
) -> Result<Vec<u8>, Failure> {
    let chunked = header(headers, "transfer-encoding").is_some_and(|te| {
        te.rsplit(',')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("chunked")
    });
    if chunked {
        return read_chunked(stream, max).await;
    }
    if let Some(length) = header(headers, "content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| Failure::Protocol(format!("a bad Content-Length: `{length}`")))?;
        if length > max {
            return Err(Failure::TooLarge);
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.map_err(broken)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    let mut limited = (&mut *stream).take(max as u64 + 1);
    limited.read_to_end(&mut body).await.map_err(broken)?;
    if body.len() > max {
        return Err(Failure::TooLarge);
    }
    Ok(body)
}

async fn read_chunked<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    max: usize,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        read_line(stream, &mut line, 1024).await?;
        let text = String::from_utf8_lossy(&line);
        let size = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| Failure::Protocol(format!("a bad chunk size: `{size}`")))?;
        if size == 0 {
            // The trailer section, up to its empty line.
            let mut trailers = Vec::new();
            loop {
                let before = trailers.len();
                if read_line(stream, &mut trailers, MAX_HEAD).await? == 0 {
                    return Ok(body);
                }
                if matches!(&trailers[before..], b"\r\n" | b"\n") {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > max {
            return Err(Failure::TooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream
            .read_exact(&mut body[start..])
            .await
            .map_err(broken)?;
        let mut end = Vec::new();
        read_line(stream, &mut end, 2).await?;
        if !matches!(end.as_slice(), b"\r\n" | b"\n") {
            return Err(Failure::Protocol("a chunk longer than its size".into()));
        }
    }
}
