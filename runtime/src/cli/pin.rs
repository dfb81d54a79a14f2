//! How the CLI trusts a device over HTTPS: by the SHA-256 fingerprint of its certificate, the
//! way ssh trusts host keys. A device's certificate is its own, signed by no authority, so the
//! CLI accepts exactly the certificate it was told of (`--fingerprint`), or the one it saw the
//! first time and wrote down in `known_devices` (trust on first use), and refuses loudly, before
//! sending anything, when a device shows another.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::Error;
use super::client::Url;
use crate::tls::{Fingerprint, provider};

/// Accepts the one certificate whose fingerprint is expected, or, with none expected, any
/// (first use); either way it notes the fingerprint shown. The handshake's signatures are still
/// checked, so the device proves it holds the certificate's key.
#[derive(Debug)]
struct Pinned {
    expected: Option<Fingerprint>,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
        match self.expected {
            Some(expected) if expected != seen => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
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

pub type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// Runs the TLS handshake with the device at `url` over `tcp`, trusting the certificate that
/// `fingerprint` names, else the one `known_devices` holds for the device, else (first use)
/// the one it shows, which is then written down.
pub fn connect(
    tcp: TcpStream,
    url: &Url,
    fingerprint: Option<Fingerprint>,
) -> Result<TlsStream, Error> {
    let device = url.device();
    let known = KnownDevices::load()?;
    // Trust on first use with nowhere to remember would trust every time.
    if known.is_none() && fingerprint.is_none() {
        return Err(Error(format!(
            "cannot pin the certificate of {device}: neither XDG_CONFIG_HOME nor HOME is set; \
             pass --fingerprint (the device prints its fingerprint when it starts)"
        )));
    }
    let pinned = known.as_ref().and_then(|k| k.find(&device));
    let expected = fingerprint.or(pinned.map(|(_, print)| print));
    let verifier = Arc::new(Pinned {
        expected,
        seen: Mutex::new(None),
        provider: provider(),
    });
    let tls_error = |e: rustls::Error| Error(format!("TLS with {url}: {e}"));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Error(format!("server URL {url}: {e}")))?;
    let session = ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
    let mut stream = rustls::StreamOwned::new(session, tcp);
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            let seen = *verifier.seen.lock().unwrap_or_else(|e| e.into_inner());
            return Err(match (expected, seen) {
                (Some(expected), Some(seen)) if expected != seen => {
                    let pin = match (fingerprint, pinned, &known) {
                        (None, Some((line, _)), Some(known)) => Pin::Known(&known.path, line),
                        _ => Pin::Given,
                    };
                    changed(&device, expected, seen, pin)
                }
                _ if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::TimedOut =>
                {
                    Error(format!("{url} did not complete a TLS handshake in time"))
                }
                _ => Error(format!("TLS handshake with {url} failed: {e}")),
            });
        }
    }
    let seen = verifier
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let (Some(seen), Some(known)) = (seen, known)
        && pinned.map(|(_, print)| print) != Some(seen)
    {
        record(
            known,
            &device,
            seen,
            pinned.map(|(line, _)| line),
            fingerprint.is_some(),
        );
    }
    Ok(stream)
}

/// Writes down the fingerprint the device showed: on first use, or when `--fingerprint` named
/// one that differs from the pin (which it replaces). Says so, once. A file that cannot be
/// written costs the pin, not the command (as with ssh's known_hosts).
fn record(
    mut known: KnownDevices,
    device: &str,
    seen: Fingerprint,
    replaced: Option<usize>,
    given: bool,
) {
    known.set(device, seen);
    let file = known.path.display();
    if let Err(e) = known.save() {
        eprintln!("wisp: warning: {device} (SHA256 {seen}) not pinned: cannot write {file}: {e}");
        return;
    }
    match (replaced, given) {
        (Some(line), _) => eprintln!(
            "wisp: {device}: replaced the pin on line {line} of {file} with the --fingerprint given, SHA256 {seen}"
        ),
        (None, true) => eprintln!("wisp: {device}: pinned SHA256 {seen} (--fingerprint) in {file}"),
        (None, false) => eprintln!(
            "wisp: {device}: trusting its certificate on first use, SHA256 {seen}; pinned in {file} \
             (compare it with the fingerprint the device prints when it starts)"
        ),
    }
}

/// Where the refused pin came from.
enum Pin<'a> {
    Given,
    Known(&'a Path, usize),
}

/// The refusal when a device shows another certificate than the one pinned: loud, as ssh's.
fn changed(device: &str, expected: Fingerprint, seen: Fingerprint, pin: Pin<'_>) -> Error {
    let headline = match pin {
        Pin::Known(..) => format!("THE CERTIFICATE OF DEVICE {device} HAS CHANGED!"),
        Pin::Given => format!("DEVICE {device} SHOWS ANOTHER CERTIFICATE THAN THE ONE PINNED!"),
    };
    let mut text = format!(
        "WARNING: {headline}\n\
         Someone may be impersonating the device to get your admin token, or the device has\n\
         a new certificate. Nothing was sent.\n  \
         pinned:    SHA256 {expected}\n  \
         presented: SHA256 {seen}\n"
    );
    match pin {
        Pin::Known(path, line) => {
            let _ = write!(
                text,
                "The pin is line {line} of {}.\n\
                 If the change is expected (compare with the fingerprint the device prints when it\n\
                 starts), remove that line, or pass --fingerprint with the new fingerprint.",
                path.display()
            );
        }
        Pin::Given => text.push_str(
            "The pin is the --fingerprint given (or WISP_FINGERPRINT). If the change is expected,\n\
             pass the fingerprint the device prints when it starts.",
        ),
    }
    Error(text)
}

/// The file of pinned devices: one `HOST:PORT FINGERPRINT` a line, `#` comments.
struct KnownDevices {
    path: PathBuf,
    lines: Vec<String>,
}

impl KnownDevices {
    /// `$XDG_CONFIG_HOME/wisp/known_devices`, else `~/.config/wisp/known_devices`.
    fn path() -> Option<PathBuf> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let config = var("XDG_CONFIG_HOME")
            .filter(|dir| dir.is_absolute())
            .or_else(|| var("HOME").map(|home| home.join(".config")))?;
        Some(config.join("wisp").join("known_devices"))
    }

    /// The file's pins; None when there is no folder for it (no `HOME`).
    fn load() -> Result<Option<KnownDevices>, Error> {
        let Some(path) = Self::path() else {
            return Ok(None);
        };
        let lines = match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(Some(KnownDevices { path, lines }))
    }

    /// The pin of `device` and its line number (from 1).
    fn find(&self, device: &str) -> Option<(usize, Fingerprint)> {
        self.lines.iter().enumerate().find_map(|(i, line)| {
            let (name, print) = parse_line(line)?;
            (name == device).then_some((i + 1, print?))
        })
    }

    /// Pins `device` to `print`, in place of its old pin if it had one.
    fn set(&mut self, device: &str, print: Fingerprint) {
        let line = format!("{device} {print}");
        let old = self
            .lines
            .iter()
            .position(|l| parse_line(l).is_some_and(|(name, _)| name == device));
        match old {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
    }

    /// Writes the file (mode 0600, its folder 0700) beside its place, then renames it.
    fn save(&self) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let temporary = dir.join(".known_devices.tmp");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        for line in &self.lines {
            writeln!(file, "{line}")?;
        }
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)
    }
}

/// A line's device and fingerprint (None for a fingerprint that does not parse); None for a
/// blank line or a comment.
fn parse_line(line: &str) -> Option<(&str, Option<Fingerprint>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (device, print) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    Some((device, Fingerprint::parse(print)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_devices_find_and_replace_their_pins() {
        let a = Fingerprint::of(b"a");
        let b = Fingerprint::of(b"b");
        let mut known = KnownDevices {
            path: PathBuf::from("/nonexistent/known_devices"),
            lines: vec![
                "# pinned by wisp".into(),
                String::new(),
                format!("pi.local:8443 {a}"),
                "broken:1 not-a-fingerprint".into(),
                format!("[::1]:8443   sha256:{}", b.to_string().replace(':', "")),
            ],
        };
        assert_eq!(known.find("pi.local:8443"), Some((3, a)));
        assert_eq!(known.find("[::1]:8443"), Some((5, b)));
        assert_eq!(known.find("broken:1"), None);
        assert_eq!(known.find("pi.local:443"), None);
        known.set("pi.local:8443", b);
        known.set("new:8443", a);
        assert_eq!(known.find("pi.local:8443"), Some((3, b)));
        assert_eq!(known.find("new:8443"), Some((6, a)));
        assert_eq!(known.lines[0], "# pinned by wisp");
    }

    #[test]
    fn the_refusal_names_both_fingerprints_and_the_line() {
        let (a, b) = (Fingerprint::of(b"a"), Fingerprint::of(b"b"));
        let path = Path::new("/home/u/.config/wisp/known_devices");
        let text = changed("pi:8443", a, b, Pin::Known(path, 7)).0;
        assert!(text.starts_with("WARNING: THE CERTIFICATE OF DEVICE pi:8443 HAS CHANGED!\n"));
        for part in [
            a.to_string(),
            b.to_string(),
            format!("line 7 of {}", path.display()),
        ] {
            assert!(text.contains(&part), "{part} in {text}");
        }
        let text = changed("pi:8443", a, b, Pin::Given).0;
        assert!(text.starts_with("WARNING: DEVICE pi:8443 SHOWS ANOTHER CERTIFICATE"));
        assert!(text.contains("--fingerprint"), "{text}");
    }
}
