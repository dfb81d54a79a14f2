//! The certificate authorities outbound HTTPS trusts.
//!
//! The device's own bundle when it has one, so that an operator who adds a company CA to the
//! system (`update-ca-certificates`) reaches its services; else the Mozilla set compiled into
//! the binary (webpki-roots), so that a bare device still reaches public APIs. `SSL_CERT_FILE`
//! names another bundle, as it does for OpenSSL, curl and Go.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Where distributions keep their bundle: Debian, Raspberry Pi OS, Ubuntu and Alpine first,
/// then Fedora and RHEL, then the BSDs' and others' `cert.pem`.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The client configuration every outbound HTTPS call shares; its roots are read once, at the
/// first call.
pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = roots();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// The trusted roots: the first bundle that holds any, else the built-in set.
fn roots() -> RootCertStore {
    let named = std::env::var_os("SSL_CERT_FILE");
    let candidates = named
        .iter()
        .map(Path::new)
        .chain(BUNDLES.iter().map(Path::new));
    for path in candidates {
        let mut store = RootCertStore::empty();
        let Ok(certs) = CertificateDer::pem_file_iter(path) else {
            continue;
        };
        let (added, _) = store.add_parsable_certificates(certs.flatten());
        if added > 0 {
            return store;
        }
    }
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}
