//! Connecting, binding and calling an LDAP directory, and turning LDAP result codes
//! into [`ConnectorError`]s a person can act on.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, ResultEntry, SearchEntry,
    StdStream,
    controls::{PagedResults, RawControl},
};

use crate::connector::{ConnectorError, target::Network, tls, transport, truncate_body};

/// How long connecting (TCP, TLS, StartTLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one operation may take.
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// The Paged Results control's OID (RFC 2696).
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Where and as whom to connect, and the directory's layout.
#[derive(Clone)]
pub struct Settings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    pub start_tls: bool,
    /// The DN Roster binds as.
    pub bind_dn: String,
    /// Its password (kept out of every message).
    pub password: String,
    /// PEM CA bundle for TLS, if the Connector names one.
    pub ca_pem: Option<Vec<u8>>,
    /// Where enabled user entries live.
    pub users_dn: String,
    /// Where group entries live.
    pub groups_dn: String,
    /// Where disabled user entries are kept.
    pub disabled_users_dn: String,
    /// What may be connected to, and whether plain `ldap://` is allowed.
    pub network: Network,
}

impl Settings {
    /// Opens a connection, drives it in the background and binds.
    pub async fn connect(&self) -> Result<Ldap, ConnectorError> {
        if self.password.is_empty() {
            // An empty password is an unauthenticated bind (RFC 4513 §5.1.2): it would
            // "succeed" and every write would then be refused.
            return Err(ConnectorError::Config(
                "the bind password is empty; an empty password binds anonymously".into(),
            ));
        }
        let endpoint =
            transport::ldap_endpoint(&self.url, self.start_tls, self.network.allow_plaintext)?;
        // Roster opens the socket itself, at an address the policy allows; ldap3 then
        // speaks LDAP (and TLS, with the URL's host name) over it.
        let stream = self
            .network
            .policy
            .connect(&endpoint.host, endpoint.port, CONNECT_TIMEOUT)
            .await?
            .into_std()
            .map_err(|e| ConnectorError::Unreachable {
                target: self.url.clone(),
                reason: e.to_string(),
            })?;
        let mut conn = LdapConnSettings::new()
            .set_conn_timeout(CONNECT_TIMEOUT)
            .set_starttls(self.start_tls)
            .set_std_stream(StdStream::Tcp(stream));
        if self.start_tls || self.url.starts_with("ldaps://") {
            conn = conn.set_config(Arc::new(tls::client_config(self.ca_pem.as_deref())?));
        }
        let (driver, mut ldap) = LdapConnAsync::with_settings(conn, &self.url)
            .await
            .map_err(|e| self.failed(e).redacted(&self.password))?;
        tokio::spawn(async move {
            if let Err(e) = driver.drive().await {
                tracing::debug!(error = %e, "LDAP connection closed");
            }
        });
        let bound = ldap
            .with_timeout(OP_TIMEOUT)
            .simple_bind(&self.bind_dn, &self.password)
            .await
            .map_err(|e| self.failed(e).redacted(&self.password))?;
        if bound.rc != 0 {
            return Err(result_error(&bound).redacted(&self.password));
        }
        Ok(ldap)
    }

    /// A transport or protocol failure, with the server named and no credentials.
    pub fn failed(&self, e: LdapError) -> ConnectorError {
        match e {
            LdapError::LdapResult { result } => result_error(&result),
            LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => {
                ConnectorError::Config(format!("the URL {:?} is not usable: {e}", self.url))
            }
            // A filter is configuration (an IdentitySource's), not a server that is down.
            LdapError::FilterParsing => {
                ConnectorError::Config("a search filter is not valid RFC 4515 text".into())
            }
            other => ConnectorError::Unreachable {
                target: self.url.clone(),
                reason: truncate_body(&other.to_string()),
            },
        }
    }
}

/// The name of an LDAP result code (RFC 4511 appendix A).
fn code_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        _ => "other",
    }
}

/// A non-success LDAP result as an error.
pub fn result_error(r: &LdapResult) -> ConnectorError {
    let mut text = format!("{} ({})", code_name(r.rc), r.rc);
    if !r.text.trim().is_empty() {
        text = format!("{text}: {}", truncate_body(&r.text));
    }
    match r.rc {
        48 | 49 => ConnectorError::Unauthorized { detail: text },
        13 => ConnectorError::Config(format!(
            "the directory requires TLS; use ldaps:// or startTls: {text}"
        )),
        50 => ConnectorError::Config(format!(
            "the bind DN may not do this; grant it write access (see the LDAP connector docs): {text}"
        )),
        51 | 52 => ConnectorError::Unreachable {
            target: "the directory".into(),
            reason: text,
        },
        68 => ConnectorError::Conflict(text),
        _ => ConnectorError::Rejected(text),
    }
}

/// Parses search entries. `ldap3` panics on malformed BER in an entry; a directory's
/// bad answer becomes an error here instead of taking down the reconcile task.
pub fn entries(raw: Vec<ResultEntry>) -> Result<Vec<SearchEntry>, ConnectorError> {
    raw.into_iter()
        .map(|re| {
            std::panic::catch_unwind(AssertUnwindSafe(|| SearchEntry::construct(re)))
                .map_err(|_| ConnectorError::Malformed("a search entry did not parse".into()))
        })
        .collect()
}

/// The request control asking for one page after `cookie`.
pub fn page_control(size: i32, cookie: Vec<u8>) -> RawControl {
    PagedResults { size, cookie }.into()
}

/// The cookie for the next page from a search result's controls; empty on the last page
/// (and when the server ignored paging and sent everything).
pub fn next_cookie(result: &LdapResult) -> Result<Vec<u8>, ConnectorError> {
    let Some(ctrl) = result
        .ctrls
        .iter()
        .find(|c| c.1.ctype == PAGED_RESULTS_OID && c.1.val.is_some())
    else {
        return Ok(Vec::new());
    };
    std::panic::catch_unwind(AssertUnwindSafe(|| ctrl.1.parse::<PagedResults>()))
        .map(|p| p.cookie)
        .map_err(|_| ConnectorError::Malformed("the paged-results control did not parse".into()))
}

/// The first value of `attr` (attribute names are case-insensitive).
pub fn first(entry: &SearchEntry, attr: &str) -> Option<String> {
    values(entry, attr).first().cloned()
}

/// Every value of `attr`, in the server's order.
pub fn values<'e>(entry: &'e SearchEntry, attr: &str) -> &'e [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn result_codes_become_errors_a_person_can_act_on() {
        assert!(matches!(
            result_error(&result(49, "")),
            ConnectorError::Unauthorized { detail } if detail == "invalidCredentials (49)"
        ));
        assert!(matches!(
            result_error(&result(68, "")),
            ConnectorError::Conflict(_)
        ));
        let schema = result_error(&result(
            65,
            "object class 'inetOrgPerson' requires attribute 'sn'",
        ));
        assert_eq!(schema.reason(), "DownstreamRejected");
        assert!(
            schema
                .to_string()
                .contains("objectClassViolation (65): object class")
        );
        assert_eq!(result_error(&result(50, "")).reason(), "InvalidConfig");
    }

    #[test]
    fn no_paging_control_means_the_last_page() {
        assert_eq!(next_cookie(&result(0, "")).unwrap(), Vec::<u8>::new());
    }
}
