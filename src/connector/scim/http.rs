//! One SCIM request with the manners a shared service expects: a bearer token, timeouts,
//! bounded retries on 429/5xx honouring `Retry-After`, and errors that never carry the
//! token and only the start of a body.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::connector::{ConnectorError, truncate_body, web};

/// Attempts per request, the first included.
const ATTEMPTS: u32 = 4;
/// Longest wait between attempts, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// The first back-off; doubled per attempt.
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// Media type of SCIM bodies (RFC 7644 §3.1).
pub const SCIM_JSON: &str = "application/scim+json";
/// The largest response body read: a page of 100 users with every attribute is tens of
/// kilobytes.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A response worth reading.
pub struct Response {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::Malformed(format!(
                "{e}; body starts {:?}",
                truncate_body(&String::from_utf8_lossy(&self.body))
            ))
        })
    }
}

/// Sends one request, retrying what is worth retrying. Statuses other than 2xx, 404, 409
/// and 412 become errors; those three are returned for the caller to interpret.
pub async fn send(
    http: &reqwest::Client,
    token: &str,
    method: Method,
    url: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
    if_match: Option<&str>,
) -> Result<Response, ConnectorError> {
    let mut wait = FIRST_WAIT;
    let mut attempt = 1;
    loop {
        let mut req = http
            .request(method.clone(), url)
            .bearer_auth(token)
            .header(header::ACCEPT, SCIM_JSON)
            .query(query);
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, SCIM_JSON)
                .body(b.to_string());
        }
        if let Some(v) = if_match {
            req = req.header(header::IF_MATCH, v);
        }
        let outcome = req.send().await;
        let retry_after = match outcome {
            Err(err) => {
                // A refused address or redirect stays refused: retrying it is pointless.
                if let Some(refused) = web::policy_error(&err) {
                    return Err(refused);
                }
                if attempt >= ATTEMPTS {
                    return Err(ConnectorError::Unreachable {
                        target: url.to_owned(),
                        reason: web::describe(&err),
                    });
                }
                None
            }
            Ok(resp) => {
                let status = resp.status();
                let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                if retryable && attempt < ATTEMPTS {
                    retry_after(resp.headers())
                } else {
                    let body = web::read_capped(resp, url, MAX_BODY).await?;
                    return classify(status, body);
                }
            }
        };
        let pause = retry_after.unwrap_or(wait).min(MAX_WAIT);
        tracing::debug!(url, attempt, ?pause, "retrying SCIM request");
        tokio::time::sleep(pause).await;
        wait *= 2;
        attempt += 1;
    }
}

fn classify(status: StatusCode, body: Vec<u8>) -> Result<Response, ConnectorError> {
    if status.is_success()
        || matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED
        )
    {
        return Ok(Response { status, body });
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(ConnectorError::Unauthorized {
            detail: format!("HTTP {}", status.as_u16()),
        });
    }
    Err(ConnectorError::Http {
        status: status.as_u16(),
        body: scim_detail(&body),
    })
}

/// The `detail` of a SCIM error body when there is one, else the start of the body.
pub fn scim_detail(body: &[u8]) -> String {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned));
    truncate_body(&detail.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()))
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_scim_detail_truncated() {
        let long = format!(r#"{{"detail": "{}"}}"#, "x".repeat(1000));
        let err = classify(StatusCode::BAD_REQUEST, long.into_bytes())
            .err()
            .unwrap();
        let ConnectorError::Http { status, body } = err else {
            panic!()
        };
        assert_eq!(status, 400);
        assert!(body.len() <= crate::connector::BODY_LIMIT);
        assert_eq!(scim_detail(b"not json"), "not json");
    }

    #[test]
    fn credentials_refused_is_its_own_error() {
        for s in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
            assert!(matches!(
                classify(s, vec![]),
                Err(ConnectorError::Unauthorized { .. })
            ));
        }
        for s in [
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::PRECONDITION_FAILED,
            StatusCode::NO_CONTENT,
        ] {
            assert!(classify(s, vec![]).is_ok());
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = header::HeaderMap::new();
        h.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
