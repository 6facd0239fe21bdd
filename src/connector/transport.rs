//! Which transports a Connector may use: encrypted and verified by default, plain text
//! only when the Connector says `allowPlaintext`. These are checked before any
//! connection is made, so a refused Connector is never sent its credentials.

use reqwest::Url;

use super::ConnectorError;
use crate::api::PostgresSslMode;

/// A host and port to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address as written (IPv6 in brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

fn refused(what: String) -> ConnectorError {
    ConnectorError::InsecureTransport(format!(
        "{what}; set allowPlaintext: true only for a loopback demo or test"
    ))
}

/// Parses `raw` and takes its host; user information in a URL is refused, because URLs
/// appear in messages and credentials must not.
fn parse(raw: &str, field: &str) -> Result<(Url, String), ConnectorError> {
    // Not echoed: a URL that does not parse may still hold a password.
    let url = Url::parse(raw)
        .map_err(|e| ConnectorError::Config(format!("{field} is not a usable URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConnectorError::Config(format!(
            "{field} carries credentials; put them in the Secret the Connector names"
        )));
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => return Err(ConnectorError::Config(format!("{field} names no host"))),
    };
    Ok((url, host))
}

/// The SCIM base URL: `https`, or `http` with `allowPlaintext`.
pub fn scim_url(raw: &str, allow_plaintext: bool) -> Result<Url, ConnectorError> {
    https_url(raw, "scim.baseUrl", allow_plaintext)
}

/// An `https` URL, or `http` with `allowPlaintext`; `field` names it in messages.
pub fn https_url(raw: &str, field: &str, allow_plaintext: bool) -> Result<Url, ConnectorError> {
    let (url, _) = parse(raw, field)?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_plaintext => Ok(url),
        "http" => Err(refused(format!(
            "{field} {raw:?} is plain http, which would send credentials and data unencrypted"
        ))),
        other => Err(ConnectorError::Config(format!(
            "{field} has scheme {other:?}; Roster speaks https"
        ))),
    }
}

/// The directory's host and port: `ldaps://`, or `ldap://` upgraded with StartTLS, or
/// `ldap://` alone with `allowPlaintext`. Other schemes (`ldapi://`, a local socket) are
/// refused.
pub fn ldap_endpoint(
    raw: &str,
    start_tls: bool,
    allow_plaintext: bool,
) -> Result<Endpoint, ConnectorError> {
    let (url, host) = parse(raw, "ldap.url")?;
    let default_port = match url.scheme() {
        "ldaps" => 636,
        "ldap" if start_tls || allow_plaintext => 389,
        "ldap" => {
            return Err(refused(format!(
                "ldap.url {raw:?} is plain ldap without startTls, which would send the \
                 bind password unencrypted"
            )));
        }
        other => {
            return Err(ConnectorError::Config(format!(
                "ldap.url has scheme {other:?}; use ldaps:// or ldap:// with startTls"
            )));
        }
    };
    Ok(Endpoint {
        host,
        port: url.port().unwrap_or(default_port),
    })
}

/// PostgreSQL's `sslMode`: `Require` or `VerifyFull`, or the others with
/// `allowPlaintext`.
pub fn postgres_mode(mode: PostgresSslMode, allow_plaintext: bool) -> Result<(), ConnectorError> {
    if mode.may_be_plaintext() && !allow_plaintext {
        return Err(refused(format!(
            "postgres.sslMode {mode:?} may send the password unencrypted; use VerifyFull"
        )));
    }
    Ok(())
}

/// A kubeconfig's cluster URL and TLS setting: `https` with verification, or otherwise
/// with `allowPlaintext`.
pub fn kubernetes_server(
    server: &str,
    skips_verification: bool,
    allow_plaintext: bool,
) -> Result<Endpoint, ConnectorError> {
    let (url, host) = parse(server, "the kubeconfig's cluster server")?;
    if !allow_plaintext && url.scheme() != "https" {
        return Err(refused(format!(
            "the kubeconfig's cluster server {server:?} is not https"
        )));
    }
    if !allow_plaintext && skips_verification {
        return Err(refused(
            "the kubeconfig sets insecure-skip-tls-verify, so any server could answer".into(),
        ));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(Endpoint { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_needs_https_unless_plaintext_is_allowed() {
        assert!(scim_url("https://scim.example.com/v2", false).is_ok());
        let err = scim_url("http://scim.example.com/v2", false).unwrap_err();
        assert_eq!(err.reason(), "InsecureTransport");
        assert!(err.to_string().contains("allowPlaintext"), "{err}");
        assert!(scim_url("http://127.0.0.1:8080/v2", true).is_ok());
        assert_eq!(
            scim_url("file:///etc/passwd", true).unwrap_err().reason(),
            "InvalidConfig"
        );
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_echoing_them() {
        for url in [
            "https://admin:hunter2@scim.example.com/v2",
            "http://admin:hunter2@scim.example.com/v2",
            "https://admin:hunter2@[not-a-host/v2",
        ] {
            let err = scim_url(url, false).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert_eq!(err.reason(), "InvalidConfig");
        }
    }

    #[test]
    fn ldap_needs_ldaps_or_start_tls_unless_plaintext_is_allowed() {
        let ep = ldap_endpoint("ldaps://dir.example.com", false, false).unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("dir.example.com", 636));
        let ep = ldap_endpoint("ldap://dir.example.com", true, false).unwrap();
        assert_eq!(ep.port, 389);
        let err = ldap_endpoint("ldap://dir.example.com", false, false).unwrap_err();
        assert_eq!(err.reason(), "InsecureTransport");
        let ep = ldap_endpoint("ldap://127.0.0.1:1389", false, true).unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("127.0.0.1", 1389));
        for bad in ["ldapi:///var/run/slapd", "ldap:no-host", "ldap://", "x"] {
            assert!(ldap_endpoint(bad, false, true).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn postgres_needs_verified_tls_unless_plaintext_is_allowed() {
        for mode in [PostgresSslMode::Require, PostgresSslMode::VerifyFull] {
            assert!(postgres_mode(mode, false).is_ok());
        }
        for mode in [PostgresSslMode::Disable, PostgresSslMode::Prefer] {
            assert_eq!(
                postgres_mode(mode, false).unwrap_err().reason(),
                "InsecureTransport"
            );
            assert!(postgres_mode(mode, true).is_ok());
        }
        assert_eq!(PostgresSslMode::default(), PostgresSslMode::VerifyFull);
    }

    #[test]
    fn a_kubeconfig_needs_verified_https_unless_plaintext_is_allowed() {
        let ep = kubernetes_server("https://k8s.example.com", false, false).unwrap();
        assert_eq!(ep.port, 443);
        assert!(kubernetes_server("http://k8s.example.com", false, false).is_err());
        assert!(kubernetes_server("https://k8s.example.com", true, false).is_err());
        assert!(kubernetes_server("https://127.0.0.1:6443", true, true).is_ok());
    }
}
