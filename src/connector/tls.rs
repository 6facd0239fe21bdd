//! TLS client settings shared by the backends that open their own connections
//! (PostgreSQL, LDAP). Roster verifies every TLS connection it makes — chain and host
//! name — against the Connector's CA bundle, or else the Mozilla roots; there is no
//! unverified mode.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::ConnectorError;

/// A verifying rustls client configuration trusting `ca_pem` (PEM, one or more
/// certificates) or, when `None`, the Mozilla roots.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, ConnectorError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    ConnectorError::Config(format!("the CA bundle is not valid PEM: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    ConnectorError::Config(format!(
                        "the CA bundle holds an unusable certificate: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(ConnectorError::Config(
                    "the CA bundle holds no certificate".into(),
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Config(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let err = client_config(Some(b"not a certificate")).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        assert!(client_config(None).is_ok());
    }
}
