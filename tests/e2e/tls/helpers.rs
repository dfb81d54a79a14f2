//! What the TLS tests drive: a `wisp serve` whose banner and stderr they keep, a TLS client that
//! trusts exactly one certificate, connections from a chosen local address, and the CLI with
//! its own config folder.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::support::{Reply, TOKEN, WISP};

/// A `wisp serve` whose stdout banner and stderr the test keeps.
pub(super) struct Device {
    child: Child,
    pub http: SocketAddr,
    https: Option<SocketAddr>,
    /// The fingerprint it printed.
    fingerprint: Option<String>,
    pub banner: Vec<String>,
    pub stderr: Arc<Mutex<String>>,
}

impl Device {
    pub fn start(data: &Path, args: &[&str]) -> Device {
        let mut child = crate::support::serve_command(data)
            .args(args)
            .env("WISP_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wisp");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut banner, mut https, mut fingerprint) = (Vec::new(), None, None);
        let http = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                std::thread::sleep(Duration::from_millis(200));
                panic!("wisp exited before listening: {}", stderr.lock().unwrap());
            }
            let line = line.trim_end().to_string();
            if let Some(addr) = line.strip_prefix("wisp: listening on https://") {
                https = Some(addr.parse().unwrap());
            }
            if let Some(print) = line.strip_prefix("wisp: TLS certificate SHA256 fingerprint: ") {
                fingerprint = Some(print.to_string());
            }
            if let Some(addr) = line.strip_prefix("wisp: listening on http://") {
                break addr.parse().unwrap();
            }
            banner.push(line);
        };
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Device {
            child,
            http,
            https,
            fingerprint,
            banner,
            stderr,
        }
    }

    pub fn https(&self) -> SocketAddr {
        self.https.expect("an https listener")
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone().expect("a fingerprint printed")
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.https())
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uppercase hex pairs joined by colons: how the server prints a fingerprint.
pub(super) fn fingerprint_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

pub(super) fn certificate_file(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// The test client's trust: exactly one certificate, or any (to see which one is served).
#[derive(Debug)]
pub(super) struct Trust {
    only: Option<Vec<u8>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Trust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.only {
            Some(only) if only.as_slice() != end_entity.as_ref() => Err(rustls::Error::General(
                "not the device's certificate".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS session over `tcp` that trusts `only` (or any certificate).
pub(super) fn tls_client(
    tcp: TcpStream,
    only: Option<Vec<u8>>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let trust = Arc::new(Trust {
        only,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(trust)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(session, tcp)
}

/// The certificate a TLS listener serves now.
pub(super) fn served_certificate(addr: SocketAddr) -> Vec<u8> {
    let mut tls = tls_client(TcpStream::connect(addr).unwrap(), None);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// One request with `Connection: close` over `tcp`, over TLS trusting exactly `certificate`
/// when given.
pub(super) fn exchange(tcp: TcpStream, certificate: Option<&[u8]>, request: &str) -> Reply {
    let mut raw = Vec::new();
    match certificate {
        Some(der) => {
            let mut tls = tls_client(tcp, Some(der.to_vec()));
            tls.write_all(request.as_bytes()).unwrap();
            tls.read_to_end(&mut raw).unwrap();
        }
        None => {
            let mut tcp = tcp;
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            tcp.write_all(request.as_bytes()).unwrap();
            tcp.read_to_end(&mut raw).unwrap();
        }
    }
    Reply::parse(&String::from_utf8_lossy(&raw))
}

pub(super) fn get(path: &str, token: bool) -> String {
    let auth = match token {
        true => format!("Authorization: Bearer {TOKEN}\r\n"),
        false => String::new(),
    };
    format!("GET {path} HTTP/1.1\r\nHost: device\r\nConnection: close\r\n{auth}\r\n")
}

/// A connection to `to` from the local address `from`: 127.0.0.2 stands for another machine.
pub(super) fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// What a `wisp` command did.
#[derive(Debug)]
pub(super) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI with its config folder in `config` and the admin token, nothing else of the
/// test's environment that would change it.
pub(super) fn cli(config: &Path, args: &[&str]) -> Run {
    let out = Command::new(WISP)
        .args(args)
        .env_remove("WISP_SERVER")
        .env_remove("WISP_FINGERPRINT")
        .env("WISP_TOKEN", TOKEN)
        .env("XDG_CONFIG_HOME", config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
