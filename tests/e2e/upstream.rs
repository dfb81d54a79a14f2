//! Loopback services for functions to call: plain HTTP, and HTTPS with a certificate from a
//! certificate authority the test makes (trusted by the server through `SSL_CERT_FILE`), or a
//! self-signed one that nothing trusts.
//!
//! Paths: `/ok` (JSON), `/echo` (method, a header and the body's length), `/to?URL` (a 302 to
//! URL), `/slow` (answers after 5 s), `/big` (5 MiB), `/big-chunked` (5 MiB, chunked),
//! `/hold` (answers when [`Upstream::release`] is called), `/weather` (a stand-in weather
//! service).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Upstream {
    pub port: u16,
    /// Requests on `/hold` waiting now.
    pub holding: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    /// Every request line received, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

/// A certificate authority, and a server certificate for `localhost` and 127.0.0.1 it signed.
pub struct TestCa {
    pub ca_pem: String,
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wisp test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let leaf = CertificateParams::new(names).unwrap();
        let cert = leaf.signed_by(&key, &ca).unwrap();
        TestCa {
            ca_pem: ca.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// A certificate for the same names that no authority signed.
    pub fn self_signed() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        TestCa {
            ca_pem: String::new(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).unwrap();
    }
}

impl Upstream {
    /// Plain HTTP.
    pub fn http() -> Upstream {
        Upstream::start(None)
    }

    /// HTTPS with `ca`'s server certificate.
    pub fn https(ca: &TestCa) -> Upstream {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(ca.key.clone_key());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ca.cert.clone()], key)
            .unwrap();
        Upstream::start(Some(Arc::new(config)))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Upstream {
            port,
            holding: Arc::default(),
            released: Arc::default(),
            seen: Arc::default(),
        };
        let (holding, released, seen) = (
            upstream.holding.clone(),
            upstream.released.clone(),
            upstream.seen.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (holding, released, seen) = (holding.clone(), released.clone(), seen.clone());
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let context = Context {
                        port,
                        holding,
                        released,
                        seen,
                    };
                    match tls {
                        None => context.serve(stream),
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            context.serve(rustls::StreamOwned::new(conn, stream));
                        }
                    }
                });
            }
        });
        upstream
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Lets every `/hold` request, now and later, answer.
    pub fn release(&self) {
        self.released.store(true, SeqCst);
    }
}

struct Context {
    port: u16,
    holding: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Context {
    fn serve<S: Read + Write>(&self, stream: S) {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        let mut test_header = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((&header, ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
            if name.eq_ignore_ascii_case("x-test") {
                test_header = value.trim().to_string();
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        self.seen.lock().unwrap().push(line.trim().to_string());
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let stream = reader.get_mut();
        let reply = |stream: &mut S, status: &str, kind: &str, body: &[u8]| {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
            let _ = stream.flush();
        };
        match path {
            "/ok" => reply(stream, "200 OK", "application/json", br#"{"ok":true}"#),
            "/echo" => {
                let text = format!("{method} x-test={test_header} body={}", body.len());
                reply(stream, "200 OK", "text/plain", text.as_bytes());
            }
            "/to" => {
                let head =
                    format!("HTTP/1.1 302 Found\r\nLocation: {query}\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.write_all(head.as_bytes());
            }
            "/slow" => {
                std::thread::sleep(Duration::from_secs(5));
                reply(stream, "200 OK", "text/plain", b"slow");
            }
            "/big" => reply(stream, "200 OK", "text/plain", &vec![b'b'; 5 << 20]),
            "/big-chunked" => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                let chunk = vec![b'c'; 64 << 10];
                for _ in 0..80 {
                    let _ = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
                    let _ = stream.write_all(&chunk);
                    if stream.write_all(b"\r\n").is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n");
            }
            "/hold" => {
                self.holding.fetch_add(1, SeqCst);
                while !self.released.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                self.holding.fetch_sub(1, SeqCst);
                reply(stream, "200 OK", "text/plain", b"held");
            }
            "/weather" => {
                let city = query.strip_prefix("city=").unwrap_or("all");
                let body = format!(r#"{{"city":"{city}","source":"stand-in:{}"}}"#, self.port);
                reply(stream, "200 OK", "application/json", body.as_bytes());
            }
            _ => reply(stream, "404 Not Found", "text/plain", b"no such path"),
        }
    }
}
