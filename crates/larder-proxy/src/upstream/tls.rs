//! The TLS settings of an `https://` origin: which certificates are trusted (the system store
//! and the bundled roots, a private CA file, or none at all) and the ALPN protocols offered.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::options::UpstreamOptions;
use crate::error::Error;

/// The rustls client settings `options` ask for, with `h2` offered in ALPN (before
/// `http/1.1`) when `options.http2`.
pub(super) fn client_config(options: &UpstreamOptions) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::ConfigInvalid(format!("upstream TLS: {e}")))?;
    let mut config = if options.insecure_skip_verify {
        tracing::warn!(
            "upstream certificate verification is OFF (insecure_skip_verify): any server can \
             pose as the origin; use ca_file for a private CA instead"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let roots = match &options.ca_file {
            Some(path) => private_roots(path)?,
            None => public_roots(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = if options.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// The CAs in the PEM file at `path`: all of them, and nothing else.
fn private_roots(path: &Path) -> Result<RootCertStore, Error> {
    let invalid = |why: &dyn std::fmt::Display| {
        Error::ConfigInvalid(format!("upstream ca_file {}: {why}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    if certs.is_empty() {
        return Err(invalid(&"no PEM certificate in the file"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| invalid(&e))?;
    }
    Ok(roots)
}

/// The system's trusted CAs (as `SSL_CERT_FILE` / `SSL_CERT_DIR` or the platform say) and the
/// bundled Mozilla roots (`webpki-roots`), so a host without a CA store still verifies.
fn public_roots() -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system CA certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system CA certificates loaded");
    roots
}

/// `insecure_skip_verify`: any certificate is accepted for any name. The handshake signatures
/// are still checked, so the peer holds the key of the certificate it sent; only who it is
/// goes unchecked.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_with_ca(path: &Path) -> UpstreamOptions {
        UpstreamOptions {
            ca_file: Some(path.to_owned()),
            ..UpstreamOptions::default()
        }
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_config_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("larder-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        for path in [&empty, &missing] {
            let err = client_config(&options_with_ca(path)).unwrap_err();
            assert!(matches!(err, Error::ConfigInvalid(_)), "{err}");
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn alpn_follows_http2() {
        let h2 = client_config(&UpstreamOptions::default()).unwrap();
        assert_eq!(h2.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        let options = UpstreamOptions {
            http2: false,
            insecure_skip_verify: true,
            ..UpstreamOptions::default()
        };
        let h1 = client_config(&options).unwrap();
        assert_eq!(h1.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
