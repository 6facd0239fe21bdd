//! HTTP clients for the apps and feeds Roster sends credentials to (SCIM connectors, HR
//! export downloads), built so that a token goes only where the policy allows: every name is resolved through the [`TargetPolicy`], a literal address
//! is checked before the first request, redirects stay on the same origin, and no proxy
//! stands between Roster and the address it checked.

use std::{sync::Arc, time::Duration};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};

use crate::connector::{ConnectorError, target::TargetPolicy, truncate_body};

pub mod download;

/// The most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Resolves host names for reqwest through the policy; a refused address fails the
/// connection with [`ConnectorError::TargetRefused`] as its source.
struct PolicyResolver(TargetPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            // reqwest sets the port itself; the policy is about addresses.
            let addrs = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether `next` is on the same scheme, host and port as `first`.
fn same_origin(first: &Url, next: &Url) -> bool {
    first.scheme() == next.scheme()
        && first.host_str() == next.host_str()
        && first.port_or_known_default() == next.port_or_known_default()
}

/// Follows redirects within the origin of the first URL only: a server that answers
/// "go to the metadata service" is refused, not followed with the token.
fn redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        match first {
            _ if attempt.previous().len() > MAX_REDIRECTS => {
                let error =
                    ConnectorError::Malformed(format!("more than {MAX_REDIRECTS} redirects"));
                attempt.error(error)
            }
            Some(first) if !same_origin(&first, attempt.url()) => {
                let error = ConnectorError::TargetRefused {
                    target: origin(&first),
                    reason: format!(
                        "it redirected to {}; Roster follows redirects only on the same \
                         scheme, host and port",
                        origin(attempt.url())
                    ),
                };
                attempt.error(error)
            }
            _ => attempt.follow(),
        }
    })
}

/// `scheme://host:port` of a URL, without path or query.
fn origin(url: &Url) -> String {
    match url.port_or_known_default() {
        Some(port) => format!(
            "{}://{}:{port}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
    }
}

/// A client for `base`, trusting `ca_pem` in addition to the system roots.
pub fn build(
    base: &Url,
    ca_pem: Option<&[u8]>,
    policy: &TargetPolicy,
) -> Result<reqwest::Client, ConnectorError> {
    // A literal address never reaches the resolver, so it is checked here; redirects
    // cannot change the host, so this holds for every request.
    let host = base.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse() {
        policy.check(host, ip)?;
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
        .redirect(redirects())
        .no_proxy();
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ConnectorError::Config(format!("the CA bundle is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(ConnectorError::Config(
                "the CA bundle holds no certificate".into(),
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ConnectorError::Config(format!("cannot build an HTTP client: {e}")))
}

/// The policy error a failed request carries, if it failed on the policy.
pub fn policy_error(err: &reqwest::Error) -> Option<ConnectorError> {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(e) = s.downcast_ref::<ConnectorError>() {
            return Some(e.clone());
        }
        source = s.source();
    }
    None
}

/// The body, read chunk by chunk up to `max` bytes: a server that answers with gigabytes
/// fails the call instead of the operator's memory.
pub async fn read_capped(
    mut resp: reqwest::Response,
    url: &str,
    max: usize,
) -> Result<Vec<u8>, ConnectorError> {
    let too_big = || {
        ConnectorError::Malformed(format!(
            "the response from {url} is larger than {max} bytes"
        ))
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| ConnectorError::Unreachable {
                target: url.to_owned(),
                reason: describe(&e),
            })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
}

/// A transport error in words, without the URL's query (reqwest includes the URL).
pub fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    let mut root = None;
    while let Some(s) = source {
        root = Some(s.to_string());
        source = s.source();
    }
    match root {
        Some(r) => format!("{kind}: {}", truncate_body(&r)),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redirects_stay_on_one_origin() {
        let first = url("https://scim.example.com/v2/Users");
        assert!(same_origin(
            &first,
            &url("https://scim.example.com:443/v2/x")
        ));
        for other in [
            "http://scim.example.com/v2/Users",
            "https://metadata.example.com/v2/Users",
            "https://scim.example.com:8443/v2/Users",
            "https://169.254.169.254/latest/meta-data",
        ] {
            assert!(!same_origin(&first, &url(other)), "{other} followed");
        }
    }

    #[test]
    fn a_literal_refused_address_fails_at_once() {
        let err = build(
            &url("http://169.254.169.254/latest"),
            None,
            &TargetPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "TargetRefused", "{err}");
        let err = build(&url("http://[::1]:80/v2"), None, &TargetPolicy::default()).unwrap_err();
        assert_eq!(err.reason(), "TargetRefused", "{err}");
        assert!(build(&url("https://10.1.2.3/v2"), None, &TargetPolicy::default()).is_ok());
    }
}
