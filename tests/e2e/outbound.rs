//! Outbound HTTP from functions: `hostile`'s `fetch` action calls loopback services
//! (`upstream.rs`) through the SDK's `wisp_sdk::http`, under the function's `allowed_hosts`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crate::support::{Reply, Server, TempDir, eventually};
use crate::upstream::{TestCa, Upstream};

/// The query for `fetch`: `url` percent-encoded, then `extra`.
fn fetch(server: &Server, url: &str, extra: &str) -> String {
    let url: String = url
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let reply = server.get(&format!("/f/fetch?url={url}{extra}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn serve_fetch(data: &TempDir, allow: &[&str], env: &[(&str, &str)], extra: &str) -> Server {
    let server = Server::serve_env(&data.0, &[], env);
    let allow: String = allow.iter().map(|a| format!("&allow_host={a}")).collect();
    let reply = server.deploy("fetch", "hostile", &format!("route=/f/...{allow}{extra}"));
    assert!(reply.status < 300, "{}", reply.body);
    server
}

#[test]
fn a_function_reaches_only_the_hosts_it_is_allowed() {
    let (allowed, other) = (Upstream::http(), Upstream::http());
    let data = TempDir::new();
    let origin = allowed.url("http", "");
    let server = serve_fetch(&data, &[&origin], &[], "");

    let ok = fetch(&server, &allowed.url("http", "/ok"), "");
    assert!(
        ok.starts_with("status=200 len=11 type=application/json\n"),
        "{ok}"
    );
    assert!(ok.ends_with(r#"{"ok":true}"#), "{ok}");
    let echo = fetch(
        &server,
        &allowed.url("http", "/echo"),
        "&method=POST&body_kb=2&header=X-Test:yes",
    );
    assert!(echo.ends_with("POST x-test=yes body=2048"), "{echo}");

    // Another port on the same host is another origin: refused before anything is sent.
    let denied = fetch(&server, &other.url("http", "/ok"), "");
    assert!(denied.starts_with("error=NotAllowed"), "{denied}");
    // A redirect is followed only to an allowed origin.
    let to = |target: &str| allowed.url("http", &format!("/to?{target}"));
    let followed = fetch(&server, &to(&allowed.url("http", "/ok")), "");
    assert!(followed.starts_with("status=200 len=11"), "{followed}");
    let redirected = fetch(&server, &to(&other.url("http", "/ok")), "");
    assert!(redirected.starts_with("error=NotAllowed"), "{redirected}");
    assert!(
        other.seen.lock().unwrap().is_empty(),
        "the other service was called"
    );
    let log = server.admin("GET", "/_wisp/functions/fetch/logs", b"");
    let refusals = log.body.matches("refused: not in allowed_hosts").count();
    assert_eq!(refusals, 2, "{}", log.body);

    // Caps: a response over 4 MiB however it is framed, and 32 calls per invocation.
    let big = fetch(&server, &allowed.url("http", "/big"), "");
    assert!(big.starts_with("error=TooLarge"), "{big}");
    let chunked = fetch(&server, &allowed.url("http", "/big-chunked"), "");
    assert!(chunked.starts_with("error=TooLarge"), "{chunked}");
    let many = fetch(&server, &allowed.url("http", "/ok"), "&times=34");
    assert_eq!(many.matches("status=200").count(), 32, "{many}");
    assert_eq!(many.matches("error=TooManyCalls").count(), 2, "{many}");
    let huge_body = fetch(
        &server,
        &allowed.url("http", "/echo"),
        "&method=POST&body_kb=1025",
    );
    assert!(huge_body.starts_with("error=TooLarge"), "{huge_body}");
    // The server is as healthy as before.
    let ok = fetch(&server, &allowed.url("http", "/ok"), "");
    assert!(ok.starts_with("status=200"), "{ok}");
}

#[test]
fn nothing_is_allowed_by_default_and_bad_origins_are_refused_at_deploy() {
    let upstream = Upstream::http();
    let data = TempDir::new();
    let server = serve_fetch(&data, &[], &[], "");
    let denied = fetch(&server, &upstream.url("http", "/ok"), "");
    assert!(denied.starts_with("error=NotAllowed"), "{denied}");
    assert!(upstream.seen.lock().unwrap().is_empty());
    for bad in ["127.0.0.1", "http://h/path", "ftp://h", "https://*"] {
        let reply = server.deploy(
            "fetch",
            "hostile",
            &format!("route=/f/...&allow_host={bad}"),
        );
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert!(reply.body.contains("allowed host"), "{}", reply.body);
    }
    // The version that serves still allows nothing.
    let info = server.admin("GET", "/_wisp/functions/fetch", b"");
    assert!(
        info.body.contains(r#""allowed_hosts": []"#),
        "{}",
        info.body
    );
}

#[test]
fn https_verifies_certificates_against_the_trusted_roots() {
    let ca = TestCa::new();
    let (good, untrusted) = (
        Upstream::https(&ca),
        Upstream::https(&TestCa::self_signed()),
    );
    let data = TempDir::new();
    let bundle = data.0.join("test-ca.pem");
    ca.write_ca(&bundle);
    let bundle = bundle.to_str().unwrap();
    let allow = [good.url("https", ""), untrusted.url("https", "")];
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let server = serve_fetch(&data, &allow, &[("SSL_CERT_FILE", bundle)], "");
    let ok = fetch(&server, &good.url("https", "/ok"), "");
    assert!(ok.starts_with("status=200 len=11"), "{ok}");
    let refused = fetch(&server, &untrusted.url("https", "/ok"), "");
    assert!(refused.starts_with("error=TlsFailed"), "{refused}");
    assert!(untrusted.seen.lock().unwrap().is_empty());
    // Plain HTTP to the TLS port is another origin, and not allowed.
    let plain = fetch(&server, &good.url("http", "/ok"), "");
    assert!(plain.starts_with("error=NotAllowed"), "{plain}");
}

#[test]
fn a_slow_upstream_meets_the_invocations_deadline() {
    let upstream = Upstream::http();
    let data = TempDir::new();
    let server = serve_fetch(&data, &[&upstream.url("http", "")], &[], "&timeout_ms=1000");
    let started = Instant::now();
    let url = upstream.url("http", "/slow");
    let reply = fetch(&server, &url, "");
    // The service answers after 5 s; the call ends at the invocation's 1 s deadline, and the
    // function gets its slice to say so (a second call would find the deadline passed).
    assert!(reply.starts_with("error=Timeout"), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let twice = server.get(&format!("/f/fetch?url={}&times=2", url.replace(':', "%3A")));
    assert_eq!(twice.status, 504, "{}", twice.body);
    let ok = fetch(&server, &upstream.url("http", "/ok"), "");
    assert!(ok.starts_with("status=200"), "{ok}");
}

#[test]
fn calls_waiting_on_the_network_hold_no_place_among_the_running() {
    let upstream = Upstream::http();
    let data = TempDir::new();
    // Two places among the running invocations: the waiting calls must give theirs back.
    let server = Server::serve_env(&data.0, &["--max-running", "2"], &[]);
    let allow = upstream.url("http", "");
    let reply = server.deploy(
        "fetch",
        "hostile",
        &format!("route=/f/...&allow_host={allow}"),
    );
    assert!(reply.status < 300, "{}", reply.body);
    assert!(server.deploy("trivial", "trivial", "route=/t").status < 300);
    let url = upstream.url("http", "/hold").replace(':', "%3A");
    let path = format!("/f/fetch?url={url}");
    let waiting: Vec<_> = (0..24)
        .map(|_| {
            let (addr, path) = (server.addr, path.clone());
            std::thread::spawn(move || get_at(addr, &path))
        })
        .collect();
    eventually(20, "24 calls held upstream", || {
        (upstream.holding.load(SeqCst) == 24).then_some(())
    });
    for _ in 0..20 {
        assert_eq!(server.get("/t").status, 200);
    }
    upstream.release();
    for call in waiting {
        let reply = call.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.starts_with("status=200 len=4"), "{}", reply.body);
    }
}

/// `GET path` on a connection of its own, from any thread.
fn get_at(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    Reply::parse(&String::from_utf8_lossy(&out))
}

#[test]
fn weather_asks_its_service_when_allowed_and_falls_back_to_its_own_data() {
    let service = Upstream::http();
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let url = service.url("http", "/weather");
    let env = format!("env=WEATHER_URL%3D{}", url.replace(':', "%3A"));
    let deploy = |allow: &str| {
        let config = format!("route=/api/weather&{env}{allow}");
        let reply = server.deploy("weather", "weather", &config);
        assert!(reply.status < 300, "{}", reply.body);
    };
    deploy(&format!("&allow_host={}", service.url("http", "")));
    let reply = server.get("/api/weather?city=Lisbon");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let expected = format!(
        r#"{{"city":"Lisbon","source":"stand-in:{}"}}"#,
        service.port
    );
    assert_eq!(reply.body, expected);
    assert_eq!(reply.header("x-weather-source"), Some("upstream"));
    assert_eq!(
        service.seen.lock().unwrap().as_slice(),
        ["GET /weather?city=Lisbon HTTP/1.1"]
    );

    // Not allowed: its own data, and the service never hears of it.
    deploy("");
    let reply = server.get("/api/weather?city=Lisbon");
    assert_eq!(reply.header("x-weather-source"), Some("built-in"));
    assert!(
        reply.body.contains(r#""condition":"Sunny""#),
        "{}",
        reply.body
    );
    assert_eq!(service.seen.lock().unwrap().len(), 1);

    // Allowed, but nobody listens there: its own data again.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = format!(
        "route=/api/weather&env=WEATHER_URL%3Dhttp%3A//127.0.0.1%3A{port}/&allow_host=http://127.0.0.1:{port}"
    );
    assert!(server.deploy("weather", "weather", &config).status < 300);
    let reply = server.get("/api/weather?city=Lisbon");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-weather-source"), Some("built-in"));
}
