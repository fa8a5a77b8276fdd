//! TLS to the ScyllaDB nodes (`scylla.tls`), through rustls.
//!
//! The driver names each node by its IP address when it checks the node's
//! certificate (scylla 1.x, rustls backend), so node certificates must
//! carry their addresses as IP subject alternative names. Certificates are
//! checked against `ca_file` (PEM) when given, else against the system's
//! roots; verification is never turned off. A client certificate and key
//! (PEM) add mutual TLS for clusters that require it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Where the TLS material comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM bundle of the certificate authorities that signed the nodes'
    /// certificates; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and private key of this client, for clusters
    /// that require client certificates; both or neither.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl TlsOptions {
    /// Checks what can be checked without reading files.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err("scylla TLS: a client certificate needs its key, and the reverse".into());
        }
        Ok(())
    }

    /// The rustls configuration: the roots, and the client's certificate if
    /// any. Fails with a message naming the file that could not be used.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        self.validate()?;
        let roots = match &self.ca_file {
            Some(path) => roots_from(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("scylla TLS: {error}"))?
            .with_root_certificates(roots);
        let config = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
                    format!("scylla TLS: no private key in {}: {error}", key.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| format!("scylla TLS: client certificate refused: {error}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let read = |error: &dyn std::fmt::Display| {
        format!(
            "scylla TLS: cannot read certificates from {}: {error}",
            path.display()
        )
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| read(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read(&error))?;
    if certificates.is_empty() {
        return Err(read(&"no certificate in the file"));
    }
    Ok(certificates)
}

/// The authorities of a PEM bundle.
fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path)? {
        roots.add(certificate).map_err(|error| {
            format!(
                "scylla TLS: unusable certificate in {}: {error}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// The system's certificate authorities.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "scylla TLS: no system certificate authority found ({:?}); set scylla.tls_ca_file",
            found.errors
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test CA and a client certificate and key it signed (made with
    /// openssl for these tests only; see tests/fixtures/tls/README.md).
    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn a_ca_file_gives_a_config_and_a_bad_one_a_clear_error() {
        let options = TlsOptions {
            ca_file: Some(fixture("ca.pem")),
            ..TlsOptions::default()
        };
        let config = options.client_config().unwrap();
        assert!(!config.client_auth_cert_resolver.has_certs());

        let missing = TlsOptions {
            ca_file: Some(fixture("no-such.pem")),
            ..TlsOptions::default()
        };
        let error = missing.client_config().unwrap_err();
        assert!(error.contains("no-such.pem"), "{error}");

        // A key is no certificate.
        let not_a_ca = TlsOptions {
            ca_file: Some(fixture("client-key.pem")),
            ..TlsOptions::default()
        };
        let error = not_a_ca.client_config().unwrap_err();
        assert!(error.contains("client-key.pem"), "{error}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let half = TlsOptions {
            ca_file: Some(fixture("ca.pem")),
            client_cert_file: Some(fixture("client.pem")),
            client_key_file: None,
        };
        assert!(half.validate().is_err());
        assert!(half.client_config().is_err());
        let whole = TlsOptions {
            client_key_file: Some(fixture("client-key.pem")),
            ..half
        };
        let config = whole.client_config().unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        // A key that is not the certificate's is refused.
        let mismatched = TlsOptions {
            client_key_file: Some(fixture("other-key.pem")),
            ..whole
        };
        assert!(mismatched.client_config().is_err());
    }
}
