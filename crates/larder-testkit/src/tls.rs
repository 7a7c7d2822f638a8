//! Certificates for TLS tests, made in the test: a throwaway CA and leaf certificates it signs,
//! as PEM text and as files in a temporary directory.

use std::path::PathBuf;

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
