//! Downloading a file a feed publishes (an HR export): one GET through the policy-bound
//! client, the whole body or an error. A body that is cut short, too large, not text, or
//! an HTML page (a sign-in page answered with 200) is an error, never a shorter file:
//! the caller reads what it gets as the truth about who works here.

use std::time::Duration;

use reqwest::{StatusCode, Url, header};

use super::{build, describe, policy_error, read_capped};
use crate::connector::{ConnectorError, target::TargetPolicy, truncate_body};

/// The largest export read: 64 MiB is some 500,000 rows of a wide export.
pub const MAX_EXPORT: usize = 64 * 1024 * 1024;
/// How long one download may take, transfer included.
const TIMEOUT: Duration = Duration::from_secs(120);

/// How the download proves who is asking.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
            Self::Basic { username, .. } => write!(f, "Basic({username:?}, [redacted])"),
        }
    }
}

impl Credentials {
    /// The secret part, to blot out of anything the server echoes.
    fn secret(&self) -> &str {
        match self {
            Self::Bearer(token) => token,
            Self::Basic { password, .. } => password,
        }
    }
}

/// One download.
pub struct Download<'a> {
    /// What to fetch (already checked for scheme and embedded credentials).
    pub url: &'a Url,
    /// How to sign in, if at all.
    pub credentials: Option<&'a Credentials>,
    /// A CA bundle to trust besides the system roots.
    pub ca_pem: Option<&'a [u8]>,
    /// The operator's address policy.
    pub policy: &'a TargetPolicy,
}

/// The URL without its query and fragment, for messages: a query may carry a report's
/// parameters or a signature.
pub fn shown(url: &Url) -> String {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    bare.to_string()
}

/// The file at `d.url`, as text.
pub async fn fetch(d: &Download<'_>) -> Result<String, ConnectorError> {
    let result = fetch_raw(d).await;
    match d.credentials {
        Some(c) => result.map_err(|e| e.redacted(c.secret())),
        None => result,
    }
}

async fn fetch_raw(d: &Download<'_>) -> Result<String, ConnectorError> {
    let target = shown(d.url);
    let http = build(d.url, d.ca_pem, d.policy)?;
    let mut req = http.get(d.url.clone()).timeout(TIMEOUT).header(
        header::ACCEPT,
        "text/csv, application/json;q=0.9, */*;q=0.5",
    );
    req = match d.credentials {
        Some(Credentials::Bearer(token)) => req.bearer_auth(token),
        Some(Credentials::Basic { username, password }) => req.basic_auth(username, Some(password)),
        None => req,
    };
    let resp = req.send().await.map_err(|e| {
        policy_error(&e).unwrap_or_else(|| ConnectorError::Unreachable {
            target: target.clone(),
            reason: describe(&e),
        })
    })?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let body = read_capped(resp, &target, MAX_EXPORT).await?;
    judge(status, content_type.as_deref(), body)
}

/// The body as the export's text, or why it is not one. Pure.
pub fn judge(
    status: StatusCode,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<String, ConnectorError> {
    let start = || truncate_body(&String::from_utf8_lossy(&body));
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(ConnectorError::Unauthorized {
            detail: format!("HTTP {}", status.as_u16()),
        });
    }
    if !status.is_success() || status == StatusCode::NO_CONTENT {
        return Err(ConnectorError::Http {
            status: status.as_u16(),
            body: start(),
        });
    }
    if content_type.is_some_and(|t| t.starts_with("text/html")) {
        return Err(ConnectorError::Malformed(format!(
            "the server answered with an HTML page, not an export (a sign-in page?); it starts {:?}",
            start()
        )));
    }
    String::from_utf8(body)
        .map_err(|e| ConnectorError::Malformed(format!("the export is not UTF-8 text: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_page_is_not_an_export() {
        let page = b"<html><body>Sign in</body></html>".to_vec();
        let err = judge(StatusCode::OK, Some("text/html; charset=utf-8"), page).unwrap_err();
        assert_eq!(err.reason(), "MalformedResponse");
        assert!(err.to_string().contains("sign-in page"), "{err}");
    }

    #[test]
    fn errors_and_empty_answers_are_errors_not_empty_exports() {
        let err = judge(StatusCode::NOT_FOUND, None, b"gone".to_vec()).unwrap_err();
        assert_eq!(err.reason(), "DownstreamError");
        let err = judge(StatusCode::NO_CONTENT, None, Vec::new()).unwrap_err();
        assert_eq!(err.reason(), "DownstreamError");
        let err = judge(StatusCode::SERVICE_UNAVAILABLE, None, Vec::new()).unwrap_err();
        assert_eq!(err.reason(), "DownstreamError");
        let err = judge(StatusCode::UNAUTHORIZED, None, Vec::new()).unwrap_err();
        assert_eq!(err.reason(), "Unauthorized");
    }

    #[test]
    fn a_csv_or_json_body_is_the_export() {
        let csv = b"Username\nada\n".to_vec();
        assert_eq!(
            judge(StatusCode::OK, Some("text/csv"), csv).unwrap(),
            "Username\nada\n"
        );
        assert_eq!(judge(StatusCode::OK, None, b"[]".to_vec()).unwrap(), "[]");
        let err = judge(StatusCode::OK, None, vec![0xff, 0xfe]).unwrap_err();
        assert_eq!(err.reason(), "MalformedResponse");
    }

    #[test]
    fn messages_leave_out_the_query() {
        let url = Url::parse("https://hr.example.com/ccx/report?token=abc&format=csv").unwrap();
        assert_eq!(shown(&url), "https://hr.example.com/ccx/report");
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials::Basic {
            username: "isu".into(),
            password: "hunter22".into(),
        };
        assert!(!format!("{c:?}").contains("hunter22"));
        assert!(!format!("{:?}", Credentials::Bearer("tok-123".into())).contains("tok-123"));
    }
}
