//! TLS for the device's own endpoints: the server's certificate ([`Certificate`]: the device's
//! own, made at first start, or the operator's, reloaded on `SIGHUP`) and the fingerprints that
//! name a certificate, which the CLI pins instead of trusting an authority (a device on a LAN
//! has no name an authority would sign).

mod certificate;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};

pub use certificate::{Certificate, Source, names};

/// The one set of algorithms, both sides: ring's.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 of a certificate (DER): what a user compares, and what the CLI pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Reads a fingerprint as printed (`AB:CD:...`), and as people copy it: any case, with or
    /// without the colons, after an optional `SHA256:` or `SHA256 `.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let text = text.trim();
        let text = ["SHA256:", "SHA256 ", "SHA-256:"]
            .iter()
            .find_map(|prefix| {
                text.get(..prefix.len())
                    .filter(|head| head.eq_ignore_ascii_case(prefix))
                    .map(|_| &text[prefix.len()..])
            })
            .unwrap_or(text);
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        // from_str_radix would take a sign.
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Fingerprint(bytes))
    }

    /// The fingerprint of the first certificate in a PEM file.
    pub fn of_pem_file(path: &Path) -> Result<Fingerprint, String> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let der = CertificateDer::from_pem_file(path)
            .map_err(|e| format!("cannot read the certificate {}: {e}", path.display()))?;
        Ok(Fingerprint::of(&der))
    }
}

/// Uppercase hex in pairs joined by colons, the way browsers and `openssl x509 -fingerprint`
/// show it.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256 {self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse() {
        let print = Fingerprint::of(b"a certificate");
        let text = print.to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        assert!(
            text.bytes()
                .all(|b| b == b':' || b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        let bare = text.replace(':', "").to_ascii_lowercase();
        for written in [
            text.clone(),
            bare.clone(),
            format!("SHA256:{bare}"),
            format!("sha256 {text}"),
            format!("  {text}\n"),
        ] {
            assert_eq!(Fingerprint::parse(&written), Some(print), "{written}");
        }
        for bad in [
            "",
            &text[..text.len() - 3],
            &format!("{bare}00"),
            &format!("g{}", &bare[1..]),
            &format!("+{}", &bare[1..]),
            "MD5:00",
        ] {
            assert_eq!(Fingerprint::parse(bad), None, "{bad}");
        }
    }
}
