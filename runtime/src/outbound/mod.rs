//! Outbound HTTP from functions: a request goes only to an origin the function's
//! configuration allows (`allowed_hosts`; nothing by default), follows redirects only to
//! allowed origins, and meets a timeout and size caps. The guest waits suspended, holding no
//! thread (engine/outbound.rs).

mod client;
mod roots;
mod url;

use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::FutureExt as _;

use crate::metrics::FunctionStats;
pub use url::{AllowedHost, Url};

/// The longest one call may take, redirects included; never past the invocation's deadline.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body a guest gets.
pub const MAX_RESPONSE: usize = 4 << 20;
/// The largest request body a guest may send.
pub const MAX_REQUEST: usize = 1 << 20;
/// The most requests headers a guest may send, all together, in bytes.
pub const MAX_REQUEST_HEAD: usize = 16 << 10;
/// The most calls one invocation may make (the redirects a call follows are part of it).
pub const MAX_CALLS: u32 = 32;
/// The most redirects one call follows.
pub const MAX_REDIRECTS: u32 = 5;

/// A request as the guest asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A response, after any redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a call failed. Each is an error code for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The URL's origin is not in the function's `allowed_hosts` (or a redirect's is not).
    NotAllowed(String),
    /// A malformed URL, method or header.
    Invalid(String),
    /// The call took longer than its timeout or the invocation's deadline.
    Timeout,
    /// The response body, request body or head is over its cap.
    TooLarge,
    /// The invocation made [`MAX_CALLS`] calls already.
    TooManyCalls,
    /// The name did not resolve, the connection was refused or broke.
    Connect(String),
    /// The TLS handshake failed: most often, a certificate that does not verify.
    Tls(String),
    /// The peer's answer is not HTTP/1.x, or too many redirects.
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotAllowed(origin) => write!(f, "{origin} is not in allowed_hosts"),
            Failure::Invalid(why) => write!(f, "invalid request: {why}"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::TooLarge => f.write_str("over a size cap"),
            Failure::TooManyCalls => write!(f, "over {MAX_CALLS} calls in one invocation"),
            Failure::Connect(why) => write!(f, "could not connect: {why}"),
            Failure::Tls(why) => write!(f, "TLS failed: {why}"),
            Failure::Protocol(why) => write!(f, "bad response: {why}"),
        }
    }
}

/// What one function may call, and where its refusals are logged.
pub struct Outbound {
    allowed: Vec<AllowedHost>,
    function: String,
    stats: Arc<FunctionStats>,
}

impl Outbound {
    /// `allowed` as the configuration lists them (checked at deploy).
    pub fn new(allowed: &[String], function: &str, stats: Arc<FunctionStats>) -> Outbound {
        let allowed = allowed.iter().filter_map(|a| AllowedHost::parse(a).ok());
        Outbound {
            allowed: allowed.collect(),
            function: function.into(),
            stats,
        }
    }

    fn check(&self, url: &Url) -> Result<(), Failure> {
        if self.allowed.iter().any(|a| a.allows(url)) {
            return Ok(());
        }
        let origin = format!("{}://{}", url.scheme, url.authority());
        let line = format!("wisp: outbound request to {origin} refused: not in allowed_hosts");
        self.stats.log.push(&self.function, &line);
        Err(Failure::NotAllowed(origin))
    }

    /// Checks `request` and what it costs: the URL parses and is allowed, the caps hold, and
    /// `calls` (this invocation's count so far) leaves room. Nothing is sent yet.
    pub fn admit(&self, request: &Request, calls: u32) -> Result<Url, Failure> {
        if calls >= MAX_CALLS {
            return Err(Failure::TooManyCalls);
        }
        let url = Url::parse(&request.url).map_err(Failure::Invalid)?;
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !token(&request.method) {
            return Err(Failure::Invalid(format!("method `{}`", request.method)));
        }
        let head: usize = request
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        if request.body.len() > MAX_REQUEST || head > MAX_REQUEST_HEAD {
            return Err(Failure::TooLarge);
        }
        for (name, value) in &request.headers {
            if !token(name) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(Failure::Invalid(format!("header `{name}`")));
            }
        }
        self.check(&url)?;
        Ok(url)
    }

    /// Sends an admitted request, following redirects to allowed origins, within
    /// [`CALL_TIMEOUT`] and `deadline`.
    pub async fn send(
        self: Arc<Self>,
        mut request: Request,
        mut url: Url,
        deadline: Instant,
    ) -> Result<Response, Failure> {
        request.headers.retain(|(name, _)| !framing(name));
        let until = deadline.min(Instant::now() + CALL_TIMEOUT);
        let follow = async {
            let mut redirects = 0;
            loop {
                let response = client::exchange(&request, &url, MAX_RESPONSE).await?;
                let location = match response.status {
                    301 | 302 | 303 | 307 | 308 => response
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("location")),
                    _ => None,
                };
                let Some((_, location)) = location else {
                    return Ok(response);
                };
                if redirects == MAX_REDIRECTS {
                    return Err(Failure::Protocol(format!("over {MAX_REDIRECTS} redirects")));
                }
                redirects += 1;
                let next = url.join(location.trim()).map_err(Failure::Protocol)?;
                self.check(&next)?;
                // As browsers do: 303, and 301/302 after a POST, go on as a GET without a body.
                let post = request.method.eq_ignore_ascii_case("POST");
                if response.status == 303 || (post && matches!(response.status, 301 | 302)) {
                    if !request.method.eq_ignore_ascii_case("HEAD") {
                        request.method = "GET".into();
                    }
                    request.body.clear();
                }
                // Credentials go no further than the origin they were meant for.
                if (next.scheme, &next.host, next.port) != (url.scheme, &url.host, url.port) {
                    request.headers.retain(|(n, _)| {
                        !n.eq_ignore_ascii_case("authorization")
                            && !n.eq_ignore_ascii_case("cookie")
                    });
                }
                url = next;
            }
        };
        let timeout = async {
            smol::Timer::at(until).await;
            Err(Failure::Timeout)
        };
        follow.or(timeout).await
    }
}

/// The headers the host writes itself: the guest's values would let it frame a second request
/// inside the first.
fn framing(name: &str) -> bool {
    [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "trailer",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}
