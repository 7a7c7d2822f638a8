//! TLS for the listener: certificates loaded from PEM files, chosen by SNI.
//!
//! [`server_config`] loads each [`CertPair`] once (a reload calls it again and hands the new
//! configuration to [`serve_with`](crate::server::serve_with) through its
//! [`TlsSource`](crate::server::TlsSource)). For each handshake the certificate is the first
//! pair whose leaf certificate is valid for the client's SNI name (wildcards as RFC 6125 has
//! them, checked by webpki), or the first pair when the client sends no name or no pair covers
//! it: a client that reaches the server by address still gets an answer, and its own
//! verification decides whether to go on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};

use crate::error::Error;

/// The ALPN protocols the listener offers, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// One certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A server configuration serving `pairs`, the certificate for each handshake chosen by SNI
/// (the first pair when the client sends no name or a name no certificate covers), ALPN `h2`
/// and `http/1.1`, TLS 1.2 and 1.3 only, with the ring provider.
///
/// # Errors
///
/// [`Error::ConfigInvalid`] naming the file that cannot be read or parsed: a missing or
/// unreadable file, a certificate file with no certificate or a leaf that is not X.509, a key
/// file with no private key or a key of a kind the provider cannot use, a key that does not
/// belong to its certificate, or no pair at all.
pub fn server_config(pairs: &[CertPair]) -> Result<Arc<rustls::ServerConfig>, Error> {
    if pairs.is_empty() {
        return Err(Error::ConfigInvalid(
            "a TLS listener needs at least one certificate".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let keys = pairs
        .iter()
        .map(|pair| load_pair(pair, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::ConfigInvalid(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { keys }));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Reads and checks one pair.
fn load_pair(
    pair: &CertPair,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, Error> {
    let invalid = |path: &Path, what: String| {
        Error::ConfigInvalid(format!("tls certificate {}: {what}", path.display()))
    };
    let cert_pem = read(&pair.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&pair.cert, format!("invalid PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(&pair.cert, "no certificate in the file".into()));
    };
    webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        invalid(
            &pair.cert,
            format!("the first certificate is not a valid X.509 certificate: {e}"),
        )
    })?;

    let key_pem = read(&pair.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Error::ConfigInvalid(format!(
            "tls key {}: no private key in the file (PKCS#8, PKCS#1 or SEC1 PEM expected)",
            pair.key.display()
        )),
        e => Error::ConfigInvalid(format!("tls key {}: invalid PEM: {e}", pair.key.display())),
    })?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        Error::ConfigInvalid(format!(
            "tls key {}: unusable private key: {e}",
            pair.key.display()
        ))
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        Error::ConfigInvalid(format!(
            "tls key {} does not belong to certificate {}: {e}",
            pair.key.display(),
            pair.cert.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::ConfigInvalid(format!("cannot read {}: {e}", path.display())))
}

/// Chooses a certificate by SNI: the first whose leaf is valid for the name, else the first.
struct SniResolver {
    /// Never empty ([`server_config`] refuses an empty list).
    keys: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = sni
            .and_then(|n| DnsName::try_from(n).ok())
            .map(|n| ServerName::DnsName(n.to_owned()));
        let covering = name.and_then(|name| {
            self.keys.iter().find(|key| {
                key.end_entity_cert()
                    .ok()
                    .and_then(|leaf| webpki::EndEntityCert::try_from(leaf).ok())
                    .is_some_and(|leaf| leaf.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        covering.or_else(|| self.keys.first()).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certificates", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_testkit::tls::TestCa;

    fn pair(cert: &larder_testkit::tls::TestCert) -> CertPair {
        CertPair {
            cert: cert.cert_file.clone(),
            key: cert.key_file.clone(),
        }
    }

    fn leaf_der(cert: &larder_testkit::tls::TestCert) -> Vec<u8> {
        CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn message(result: Result<Arc<rustls::ServerConfig>, Error>) -> String {
        match result {
            Ok(_) => panic!("the configuration was accepted"),
            Err(Error::ConfigInvalid(m)) => m,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn chooses_by_sni_with_wildcards_and_falls_back_to_the_first() {
        let ca = TestCa::new("resolver CA");
        let a = ca.leaf(&["a.example"]);
        let b = ca.leaf(&["b.example", "*.w.example"]);
        let mut keys = Vec::new();
        let provider = rustls::crypto::ring::default_provider();
        for cert in [&a, &b] {
            keys.push(load_pair(&pair(cert), &provider).unwrap());
        }
        let resolver = SniResolver { keys };
        let chosen = |sni: Option<&str>| {
            let key = resolver.choose(sni).unwrap();
            key.end_entity_cert().unwrap().as_ref().to_vec()
        };
        assert_eq!(chosen(Some("a.example")), leaf_der(&a));
        assert_eq!(chosen(Some("b.example")), leaf_der(&b));
        assert_eq!(chosen(Some("x.w.example")), leaf_der(&b));
        // A wildcard covers one label only.
        assert_eq!(chosen(Some("y.x.w.example")), leaf_der(&a));
        assert_eq!(chosen(Some("c.example")), leaf_der(&a));
        assert_eq!(chosen(None), leaf_der(&a));
    }

    #[test]
    fn offers_h2_then_http1() {
        let ca = TestCa::new("versions CA");
        let a = ca.leaf(&["a.example"]);
        let config = server_config(&[pair(&a)]).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn errors_name_the_file_and_the_fault() {
        let ca = TestCa::new("errors CA");
        let a = ca.leaf(&["a.example"]);
        let b = ca.leaf(&["b.example"]);
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("missing.pem");
        let m = message(server_config(&[CertPair {
            cert: missing.clone(),
            key: a.key_file.clone(),
        }]));
        assert!(
            m.contains("missing.pem") && m.contains("cannot read"),
            "{m}"
        );

        let m = message(server_config(&[CertPair {
            cert: a.key_file.clone(),
            key: a.key_file.clone(),
        }]));
        assert!(
            m.contains(&a.key_file.display().to_string()) && m.contains("no certificate"),
            "{m}"
        );

        let m = message(server_config(&[CertPair {
            cert: a.cert_file.clone(),
            key: a.cert_file.clone(),
        }]));
        assert!(
            m.contains(&a.cert_file.display().to_string()) && m.contains("no private key"),
            "{m}"
        );

        let m = message(server_config(&[CertPair {
            cert: a.cert_file.clone(),
            key: b.key_file.clone(),
        }]));
        assert!(m.contains("does not belong"), "{m}");
        assert!(m.contains(&b.key_file.display().to_string()), "{m}");

        let m = message(server_config(&[]));
        assert!(m.contains("at least one certificate"), "{m}");
    }
}
