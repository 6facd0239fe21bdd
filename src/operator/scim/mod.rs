//! Roster's SCIM 2.0 endpoint (RFC 7644), where an HR system or IdP pushes the people of
//! an `IdentitySource` with `spec.scim`: `/sources/<namespace>/<name>/scim/v2/…`. Each
//! request is authorised by the bearer token in the source's Secret; users are kept as
//! `ScimUser` objects ([`store`]), which the source reads as its rows. The endpoint
//! writes only those objects, never an Identity: the source's loop applies what was
//! pushed through its mapping and its safeguard, as for any other feed.
//!
//! It serves on every replica, leader or not: a push is kept in the apiserver, and the
//! leader's source loop watches the kept users.

mod store;
pub mod tls;
mod users;

use std::{collections::HashMap, future::Future, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    api::IdentitySource,
    lifecycle::source::scim::schema::{self, ERROR},
    provision::secrets,
};

/// The largest request body taken: a User is a few hundred bytes, a PATCH a few more.
const BODY_MAX: usize = 256 * 1024;
/// The media type of every answer (RFC 7644 section 3.1).
const SCIM_JSON: &str = "application/scim+json";

/// What every request needs.
struct Endpoint {
    client: Client,
    /// `https` when served with TLS: the scheme of the locations it answers with.
    scheme: &'static str,
}

/// How `roster run` serves the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Where.
    pub addr: std::net::SocketAddr,
    /// The PEM certificate chain and key files; `None`: plain HTTP, asked for.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Why the endpoint's flags do not make a setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    /// TLS files or plain HTTP without an address, or one TLS file without the other.
    #[error("{0}")]
    Incomplete(&'static str),
    /// An address with neither TLS nor an explicit `--scim-plaintext`.
    #[error(
        "--scim-addr needs --scim-tls-cert and --scim-tls-key (pushes carry bearer tokens), or --scim-plaintext when TLS ends in front of it"
    )]
    NoTransport,
}

impl Options {
    /// The setting the flags make: `None` when the endpoint is off.
    pub fn from_flags(
        addr: Option<std::net::SocketAddr>,
        cert: Option<std::path::PathBuf>,
        key: Option<std::path::PathBuf>,
        plaintext: bool,
    ) -> Result<Option<Self>, FlagError> {
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(FlagError::Incomplete(
                    "--scim-tls-cert and --scim-tls-key go together",
                ));
            }
        };
        match (addr, &tls, plaintext) {
            (None, None, false) => Ok(None),
            (None, _, _) => Err(FlagError::Incomplete(
                "the SCIM TLS and plaintext flags need --scim-addr",
            )),
            (Some(_), Some(_), true) => Err(FlagError::Incomplete(
                "--scim-plaintext and the SCIM TLS files exclude each other",
            )),
            (Some(_), None, false) => Err(FlagError::NoTransport),
            (Some(addr), _, _) => Ok(Some(Self { addr, tls })),
        }
    }
}

/// Serves the SCIM endpoint on `listener` until `shutdown`, over TLS when `tls`.
pub async fn serve(
    listener: TcpListener,
    client: Client,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let endpoint = Arc::new(Endpoint {
        client,
        scheme: if tls.is_some() { "https" } else { "http" },
    });
    let app = Router::new()
        .route("/sources/{namespace}/{name}/scim/v2/{*rest}", any(handle))
        .fallback(|| async { error(StatusCode::NOT_FOUND, None, "no such endpoint") })
        .layer(DefaultBodyLimit::max(BODY_MAX))
        .with_state(endpoint);
    match tls {
        Some(acceptor) => tls::serve(listener, acceptor, app, shutdown).await,
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// One request, as the handlers see it.
pub(crate) struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    /// The endpoint's base URL, for locations.
    pub base: String,
}

async fn handle(
    State(endpoint): State<Arc<Endpoint>>,
    Path((namespace, name, rest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(refused) = authorize(&endpoint.client, &namespace, &name, &headers).await {
        return refused;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let base = format!(
        "{}://{host}/sources/{namespace}/{name}/scim/v2",
        endpoint.scheme
    );
    let req = Request {
        method,
        headers,
        query,
        body,
        base,
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let store = store::Store::new(&endpoint.client, &namespace, &name);
    match segments.as_slice() {
        ["ServiceProviderConfig"] => discovery(&req, schema::service_provider_config(&req.base)),
        ["Schemas"] => discovery(&req, listed(schema::schemas(&req.base))),
        ["Schemas", id] => one_of(&req, schema::schemas(&req.base), id),
        ["ResourceTypes"] => discovery(&req, listed(schema::resource_types(&req.base))),
        ["ResourceTypes", id] => one_of(&req, schema::resource_types(&req.base), id),
        ["Users"] if req.method == Method::GET => users::list(&store, &req).await,
        ["Users"] if req.method == Method::POST => users::create(&store, &req).await,
        ["Users", ".search"] | [".search"] if req.method == Method::POST => {
            users::search(&store, &req).await
        }
        ["Users"] | ["Users", ".search"] | [".search"] => not_allowed(),
        ["Users", id] => users::one(&store, &req, id).await,
        _ => error(StatusCode::NOT_FOUND, None, "no such endpoint"),
    }
}

/// Checks the bearer token against the source's Secret. A source that does not exist,
/// or takes no pushes, is refused the same way as a wrong token: the answer tells a
/// stranger nothing about which sources exist.
async fn authorize(
    client: &Client,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let unauthorized = || {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid bearer token is required",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let source = Api::<IdentitySource>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| unavailable(&e.to_string()))?;
    let Some(push) = source.and_then(|s| s.spec.scim) else {
        return Err(unauthorized());
    };
    let token = secrets::read(client, namespace, &push.token_secret_ref)
        .await
        .map_err(|e| {
            tracing::warn!(source = %format!("{namespace}/{name}"), reason = e.reason(), error = %e, "SCIM push refused: the token cannot be read");
            unavailable("the source's token cannot be read")
        })?;
    let token = String::from_utf8_lossy(&token);
    if same(token.trim().as_bytes(), presented.as_bytes()) {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

/// Compares two secrets in time that depends on their length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn listed(items: Vec<Value>) -> Value {
    let total = items.len();
    schema::list(items, total, 1)
}

fn discovery(req: &Request, body: Value) -> Response {
    if req.method != Method::GET {
        return not_allowed();
    }
    json_answer(StatusCode::OK, &body, None)
}

fn one_of(req: &Request, items: Vec<Value>, id: &str) -> Response {
    if req.method != Method::GET {
        return not_allowed();
    }
    match items.into_iter().find(|i| i["id"] == id) {
        Some(item) => json_answer(StatusCode::OK, &item, None),
        None => error(StatusCode::NOT_FOUND, None, &format!("no {id:?} here")),
    }
}

fn not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this endpoint does not take that method",
    )
}

/// A SCIM answer: `body` as `application/scim+json`, with its ETag when it has one.
pub(crate) fn json_answer(status: StatusCode, body: &Value, etag: Option<&str>) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// A SCIM error (RFC 7644 section 3.12).
pub(crate) fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body =
        json!({"schemas": [ERROR], "status": status.as_u16().to_string(), "detail": detail});
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    json_answer(status, &body, None)
}

/// The apiserver failed: the pushing system should retry.
pub(crate) fn unavailable(why: &str) -> Response {
    Refusal::unavailable(why).into_response()
}

/// A request refused with a SCIM error: small enough to travel in a `Result`, made a
/// response at the edge.
pub(crate) struct Refusal {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl Refusal {
    /// `400` with `scim_type`.
    pub(crate) fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// `409 uniqueness`: `user_name` is another user's in the source.
    pub(crate) fn taken(user_name: &str) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            scim_type: Some("uniqueness"),
            detail: format!("userName {user_name:?} is taken in this source"),
        }
    }

    /// `503`: the apiserver failed (`why`, logged, never shown), the pusher should retry.
    pub(crate) fn unavailable(why: &str) -> Self {
        tracing::warn!(error = %why, "SCIM push: the apiserver failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            scim_type: None,
            detail: "Roster cannot reach its store now; retry".into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.scim_type, &self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_tls_or_an_explicit_plaintext() {
        let addr = Some("127.0.0.1:8443".parse().expect("addr"));
        let (c, k) = (Some("c.pem".into()), Some("k.pem".into()));
        assert_eq!(Options::from_flags(None, None, None, false), Ok(None));
        assert_eq!(
            Options::from_flags(addr, None, None, false),
            Err(FlagError::NoTransport),
            "pushes carry tokens: no plain HTTP unless asked for"
        );
        assert!(Options::from_flags(addr, c.clone(), None, false).is_err());
        assert!(Options::from_flags(None, c.clone(), k.clone(), false).is_err());
        assert!(Options::from_flags(addr, c.clone(), k.clone(), true).is_err());
        let tls = Options::from_flags(addr, c, k, false).expect("tls");
        assert!(tls.is_some_and(|o| o.tls.is_some()));
        let plain = Options::from_flags(addr, None, None, true).expect("plain");
        assert!(plain.is_some_and(|o| o.tls.is_none()));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
        assert!(!super::same(b"", b"a"));
    }
}
