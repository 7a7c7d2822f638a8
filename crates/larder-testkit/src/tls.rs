//! Certificates for TLS tests, made in the test: a throwaway CA and leaf certificates it signs,
//! as PEM text and as files in a temporary directory; and [`local`], one CA and server
//! configuration per test process for the TLS [`Transport`](crate::Transport)s.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use larder_proxy::tls::{CertPair, server_config};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

/// A leaf certificate signed by a [`TestCa`]: PEM text and the files holding it.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// A file holding `cert_pem`.
    pub cert_file: PathBuf,
    /// A file holding `key_pem`.
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, with its files in a fresh temporary directory.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        Self { issuer, dir }
    }

    /// The CA certificate, PEM: what a client trusts.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A file holding [`TestCa::cert_pem`] (a `ca_file`).
    pub fn cert_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, self.cert_pem()).expect("write the CA file");
        path
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), signed by this CA, its files
    /// named after the first name.
    pub fn leaf(&self, names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let stem = names
            .first()
            .map_or("leaf", String::as_str)
            .replace('*', "star");
        let cert_file = self.dir.path().join(format!("{stem}.crt"));
        let key_file = self.dir.path().join(format!("{stem}.key"));
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        std::fs::write(&cert_file, &cert_pem).expect("write the certificate");
        std::fs::write(&key_file, &key_pem).expect("write the key");
        TestCert {
            cert_pem,
            key_pem,
            cert_file,
            key_file,
        }
    }
}

/// The names [`local`]'s server certificate covers: what a test connects to.
pub const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

impl TestCert {
    /// A server configuration serving this certificate (ALPN `h2` and `http/1.1`, TLS 1.2 and
    /// 1.3), loaded from its files the way the proxy loads an operator's: for test origins.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        server_config(&[CertPair {
            cert: self.cert_file.clone(),
            key: self.key_file.clone(),
        }])
        .expect("the test certificate loads")
    }
}

/// A CA and a server configuration for [`LOCAL_NAMES`], made once per test process, so a
/// client made before the server it talks to can trust it.
#[derive(Debug)]
pub struct LocalTls {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

/// The test process's [`LocalTls`], made on first use.
pub fn local() -> &'static LocalTls {
    static LOCAL: OnceLock<LocalTls> = OnceLock::new();
    LOCAL.get_or_init(|| {
        let ca = TestCa::new("larder local test CA");
        let leaf = ca.leaf(&LOCAL_NAMES);
        // Loaded the way the proxy loads an operator's files; the CA's directory goes with it.
        let server = server_config(&[CertPair {
            cert: leaf.cert_file,
            key: leaf.key_file,
        }])
        .expect("the local test certificate loads");
        LocalTls {
            ca_pem: ca.cert_pem(),
            server,
        }
    })
}

impl LocalTls {
    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The proxy's server configuration (ALPN `h2` and `http/1.1`).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.server)
    }

    /// A client configuration trusting this CA only and offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        client_config(&self.ca_pem, alpn)
    }
}

/// A client configuration (ring provider, TLS 1.2 and 1.3) trusting only the CA in `ca_pem`
/// and offering `alpn`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_files_hold_pem() {
        let ca = TestCa::new("larder test CA");
        let leaf = ca.leaf(&["a.example", "127.0.0.1"]);
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            std::fs::read_to_string(&leaf.cert_file).unwrap(),
            leaf.cert_pem
        );
        assert!(
            std::fs::read_to_string(&leaf.key_file)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert_ne!(leaf.cert_pem, ca.cert_pem());
    }
}
