//! `fetch?url=URL&method=M&body_kb=K&times=N&header=NAME:VALUE`: outbound HTTP through the SDK,
//! for the runtime's tests. Makes the call N times (default 1) and answers 200 with a line per
//! call, `status=<code> len=<body bytes> type=<content-type>` or `error=<code> <why>`, then
//! `body:` and the last response's body.

use wisp_sdk::http::{self, HttpError};
use wisp_sdk::{Request, Response};

pub fn fetch(req: &Request) -> Response {
    let Some(url) = req.query("url") else {
        return Response::text(400, "give ?url=\n");
    };
    let method = req.query("method").unwrap_or_else(|| "GET".into());
    let body_kb: usize = req
        .query("body_kb")
        .and_then(|k| k.parse().ok())
        .unwrap_or(0);
    let times: u32 = req.query("times").and_then(|n| n.parse().ok()).unwrap_or(1);
    let mut request = http::Request::new(&method, &url).body(vec![b'x'; body_kb << 10]);
    if let Some((name, value)) = req
        .query("header")
        .as_deref()
        .and_then(|h| h.split_once(':'))
    {
        request = request.header(name, value);
    }
    let mut out = String::new();
    let mut last = Vec::new();
    for _ in 0..times {
        match request.send() {
            Ok(r) => {
                let kind = r.header("content-type").unwrap_or("-");
                out.push_str(&format!(
                    "status={} len={} type={kind}\n",
                    r.status(),
                    r.body().len()
                ));
                last = r.body().to_vec();
            }
            Err(e @ HttpError::Unexpected(_)) => out.push_str(&format!("error=? {e}\n")),
            Err(e) => out.push_str(&format!("error={e:?} {e}\n")),
        }
    }
    out.push_str("body:\n");
    out.push_str(&String::from_utf8_lossy(&last));
    Response::text(200, out)
}
