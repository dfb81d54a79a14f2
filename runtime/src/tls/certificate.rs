//! The server's certificate and key: the device's own, made at first start in the data folder
//! (`tls/key.pem`, mode 0600, and `tls/cert.pem`), or the operator's files. Either pair is read
//! again on [`Certificate::reload`] (`SIGHUP`): new handshakes get the new pair, those already
//! done keep theirs, and a pair that does not load leaves the old one serving.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{Fingerprint, provider};
use crate::registry::sync_dir;

/// Where the pair comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The device's own, in this folder (`DATA/tls`), made when missing.
    Device(PathBuf),
    /// The operator's files (`--tls-cert`, `--tls-key`), never written.
    Operator { cert: PathBuf, key: PathBuf },
}

impl Source {
    fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            Source::Device(dir) => (dir.join("cert.pem"), dir.join("key.pem")),
            Source::Operator { cert, key } => (cert.clone(), key.clone()),
        }
    }
}

/// The certificate the TLS listener serves, and its settings.
pub struct Certificate {
    source: Source,
    current: Arc<Current>,
    config: Arc<ServerConfig>,
    /// It was made at this start.
    pub created: bool,
}

/// The pair handed to each handshake.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Certificate {
    /// Loads the pair of `source`; for the device's own, makes one first if there is none,
    /// naming `names` (host names and addresses) in it.
    pub fn open(source: Source, names: &[String]) -> Result<Certificate, String> {
        let mut created = false;
        if let Source::Device(dir) = &source
            && !(dir.join("cert.pem").exists() && dir.join("key.pem").exists())
        {
            create(dir, names).map_err(|e| {
                format!("cannot create a TLS certificate in {}: {e}", dir.display())
            })?;
            created = true;
        }
        let key = load(&source)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Certificate {
            source,
            current,
            config: Arc::new(config),
            created,
        })
    }

    /// The settings for the TLS listener; they follow [`Certificate::reload`].
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The certificate file.
    pub fn path(&self) -> PathBuf {
        self.source.paths().0
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let current = self.current.0.read().unwrap_or_else(|e| e.into_inner());
        Fingerprint::of(&current.cert[0])
    }

    /// Reads the pair again. On error the pair that served keeps serving.
    pub fn reload(&self) -> Result<Fingerprint, String> {
        let key = Arc::new(load(&self.source)?);
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(self.fingerprint())
    }
}

/// Reads and checks the pair: a certificate chain, and the private key of its first
/// certificate.
fn load(source: &Source) -> Result<CertifiedKey, String> {
    let (cert, key) = source.paths();
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| format!("cannot read the TLS key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        format!(
            "the TLS key {} does not go with the certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })
}

/// Makes a self-signed certificate for `names` and its key in `dir`: the key first, so that a
/// pair whose certificate is there is whole. Each file is written beside its place, synced and
/// renamed, as the rest of the data folder is.
fn create(dir: &Path, names: &[String]) -> io::Result<()> {
    let invalid = |e: rcgen::Error| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let key = rcgen::KeyPair::generate().map_err(invalid)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(invalid)?;
    let host = names.first().map_or("wisp", String::as_str);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("wisp device {host}"));
    // rcgen's defaults, 1975 to 4096: a device's own certificate is pinned, not renewed.
    let cert = params.self_signed(&key).map_err(invalid)?;
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    write_atomically(&dir.join("key.pem"), key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&dir.join("cert.pem"), cert.pem().as_bytes(), 0o644)
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&temporary);
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    // The mode given at open is masked by the umask; this one is not.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    sync_dir(dir)
}

/// The names a device's own certificate is made for: the host name (and its mDNS `.local`),
/// `localhost`, the loopback addresses, and the address it listens on when that is a specific
/// one.
pub fn names(host: &str, listen: Option<IpAddr>) -> Vec<String> {
    let mut names = vec![
        host.to_string(),
        format!("{host}.local"),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    if let Some(ip) = listen.filter(|ip| !ip.is_unspecified() && !ip.is_loopback()) {
        names.push(ip.to_string());
    }
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wisp-tls-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_device_makes_its_pair_once_and_keeps_it() {
        let data = temp_dir("device");
        let dir = data.join("tls");
        let names = names("pi", Some("192.168.1.7".parse().unwrap()));
        let first = Certificate::open(Source::Device(dir.clone()), &names).unwrap();
        assert!(first.created);
        let mode = |f: &str| fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("key.pem"), 0o600);
        assert_eq!(mode("."), 0o700);
        assert!(fs::read_dir(&dir).unwrap().all(|e| {
            let name = e.unwrap().file_name();
            !name.to_string_lossy().ends_with(".tmp")
        }));
        let pem = fs::read(dir.join("cert.pem")).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(first.fingerprint(), Fingerprint::of(&der));

        let again = Certificate::open(Source::Device(dir.clone()), &names).unwrap();
        assert!(!again.created);
        assert_eq!(again.fingerprint(), first.fingerprint());
        fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn a_reload_takes_a_new_pair_and_keeps_the_old_one_when_the_new_is_bad() {
        let dir = temp_dir("operator");
        create(&dir.join("a"), &names("a", None)).unwrap();
        create(&dir.join("b"), &names("b", None)).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let install = |from: &str| {
            fs::copy(dir.join(from).join("cert.pem"), &cert).unwrap();
            fs::copy(dir.join(from).join("key.pem"), &key).unwrap();
        };
        install("a");
        let source = Source::Operator {
            cert: cert.clone(),
            key: key.clone(),
        };
        let served = Certificate::open(source, &[]).unwrap();
        assert!(!served.created);
        let a = served.fingerprint();

        install("b");
        let b = served.reload().unwrap();
        assert_ne!(a, b);
        assert_eq!(served.fingerprint(), b);

        // A key that is not the certificate's, then a file that is no certificate.
        fs::copy(dir.join("a/key.pem"), &key).unwrap();
        let why = served.reload().unwrap_err();
        assert!(why.contains("does not go with"), "{why}");
        fs::write(&cert, "not a certificate").unwrap();
        let why = served.reload().unwrap_err();
        assert!(why.contains("no certificate in"), "{why}");
        assert_eq!(served.fingerprint(), b);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_names_of_a_device() {
        let all = names("pi", Some("10.0.0.2".parse().unwrap()));
        assert_eq!(
            all,
            [
                "pi",
                "pi.local",
                "localhost",
                "127.0.0.1",
                "::1",
                "10.0.0.2"
            ]
        );
        assert_eq!(names("pi", Some("0.0.0.0".parse().unwrap())).len(), 5);
        assert_eq!(names("pi", None).len(), 5);
    }
}
