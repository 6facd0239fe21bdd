//! `/Users`: list and search with filters and paging, create, read, replace, PATCH and
//! delete, with ETags (`If-Match`) and `userName` kept unique per source.

use axum::{
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{
    Refusal, Request, error, json_answer,
    store::{Kept, Store},
    unavailable,
};
use crate::lifecycle::source::scim::{
    filter::Filter,
    patch, path,
    resource::{normalize, project, render},
    schema::{self, MAX_RESULTS},
};

/// How often a write whose user changed underneath is tried again, when the pushing
/// system sent no `If-Match` (it asked for last-writer-wins).
const TRIES: usize = 3;

/// What a list or search asks for.
struct Query {
    filter: Option<Filter>,
    start: usize,
    count: usize,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn names(text: Option<&str>) -> Vec<String> {
    text.into_iter()
        .flat_map(|t| t.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Query {
    fn of(get: impl Fn(&str) -> Option<String>) -> Result<Self, Refusal> {
        let filter = match get("filter") {
            Some(f) => {
                Some(Filter::parse(&f).map_err(|e| Refusal::bad("invalidFilter", e.to_string()))?)
            }
            None => None,
        };
        let number = |name: &str, default: usize| match get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| Refusal::bad("invalidValue", format!("{name} must be a number"))),
        };
        Ok(Self {
            filter,
            start: number("startIndex", 1)?.max(1),
            count: number("count", 100)?.min(MAX_RESULTS),
            attributes: names(get("attributes").as_deref()),
            excluded: names(get("excludedAttributes").as_deref()),
        })
    }
}

/// `GET /Users`.
pub(super) async fn list(store: &Store, req: &Request) -> Response {
    match Query::of(|k| req.query.get(k).cloned()) {
        Ok(q) => answer_list(store, req, &q).await,
        Err(refused) => refused.into_response(),
    }
}

/// `POST /.search` and `POST /Users/.search`.
pub(super) async fn search(store: &Store, req: &Request) -> Response {
    let body = match parse(&req.body) {
        Ok(b) => b,
        Err(refused) => return refused.into_response(),
    };
    let get = |k: &str| {
        path::get(&body, k).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        })
    };
    match Query::of(get) {
        Ok(q) => answer_list(store, req, &q).await,
        Err(refused) => refused.into_response(),
    }
}

async fn answer_list(store: &Store, req: &Request, q: &Query) -> Response {
    let by_name = q.filter.as_ref().and_then(|f| f.equality_on("userName"));
    let by_external = q.filter.as_ref().and_then(|f| f.equality_on("externalId"));
    let kept = match store.list(by_name, by_external).await {
        Ok(k) => k,
        Err(e) => return unavailable(&e.to_string()),
    };
    let matching: Vec<Value> = kept
        .iter()
        .map(|k| render(k.resource(), &k.id(), &k.meta(&req.base)))
        .filter(|u| q.filter.as_ref().is_none_or(|f| f.matches(u)))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(q.start - 1)
        .take(q.count)
        .map(|u| project(&u, &q.attributes, &q.excluded))
        .collect();
    json_answer(StatusCode::OK, &schema::list(page, total, q.start), None)
}

/// `POST /Users`.
pub(super) async fn create(store: &Store, req: &Request) -> Response {
    let user = match parse(&req.body).and_then(|b| checked(&b)) {
        Ok(u) => u,
        Err(refused) => return refused.into_response(),
    };
    let user_name = user_name(&user);
    match store.taken(&user_name, None).await {
        Ok(true) => return Refusal::taken(&user_name).into_response(),
        Ok(false) => {}
        Err(e) => return unavailable(&e.to_string()),
    }
    match store.create(user).await {
        Ok(kept) => {
            let mut r = served(&kept, req, StatusCode::CREATED);
            if let Ok(v) = kept.meta(&req.base).location.parse() {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => unavailable(&e.to_string()),
    }
}

/// `GET`, `PUT`, `PATCH` and `DELETE` on `/Users/{id}`.
pub(super) async fn one(store: &Store, req: &Request, id: &str) -> Response {
    let method = req.method.clone();
    if ![Method::GET, Method::PUT, Method::PATCH, Method::DELETE].contains(&method) {
        return super::not_allowed();
    }
    let body = if method == Method::PUT || method == Method::PATCH {
        match parse(&req.body) {
            Ok(b) => Some(b),
            Err(refused) => return refused.into_response(),
        }
    } else {
        None
    };
    for _ in 0..TRIES {
        let kept = match store.get(id).await {
            Ok(Some(k)) => k,
            Ok(None) => return error(StatusCode::NOT_FOUND, None, &format!("no User {id:?}")),
            Err(e) => return unavailable(&e.to_string()),
        };
        if method == Method::GET {
            return shown(&kept, req);
        }
        if let Some(refused) = precondition(&req.headers, &kept) {
            return refused;
        }
        let outcome = match &body {
            None => store.delete(&kept).await.map(|()| None),
            Some(b) => match next(store, &kept, method == Method::PUT, b).await {
                Ok(n) => store.replace(&kept, n).await.map(Some),
                Err(refused) => return refused.into_response(),
            },
        };
        match outcome {
            Ok(None) => return StatusCode::NO_CONTENT.into_response(),
            Ok(Some(written)) => return served(&written, req, StatusCode::OK),
            // Changed since it was read: read again, unless the client pinned a version.
            Err(kube::Error::Api(s))
                if s.code == 409 && req.headers.contains_key(header::IF_MATCH) =>
            {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    None,
                    "the User changed since that version",
                );
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return error(StatusCode::NOT_FOUND, None, &format!("no User {id:?}"));
            }
            Err(e) => return unavailable(&e.to_string()),
        }
    }
    error(
        StatusCode::CONFLICT,
        None,
        "the User kept changing while it was written; retry",
    )
}

/// `GET /Users/{id}`: the user, with the attributes asked for.
fn shown(kept: &Kept, req: &Request) -> Response {
    let user = render(kept.resource(), &kept.id(), &kept.meta(&req.base));
    let (attributes, excluded) = (
        names(req.query.get("attributes").map(String::as_str)),
        names(req.query.get("excludedAttributes").map(String::as_str)),
    );
    let shown = project(&user, &attributes, &excluded);
    json_answer(StatusCode::OK, &shown, Some(&kept.version()))
}

/// What `kept` becomes under a PUT of `body` (`put`) or a PATCH: checked, and its
/// `userName` still its own in the source.
async fn next(store: &Store, kept: &Kept, put: bool, body: &Value) -> Result<Value, Refusal> {
    let next = if put {
        checked(body)?
    } else {
        let patched = patch::apply(kept.resource(), body)
            .map_err(|e| Refusal::bad(e.scim_type(), e.to_string()))?;
        checked(&patched)?
    };
    let name = user_name(&next);
    // The lookup is an apiserver request: only a new userName needs it.
    if name.eq_ignore_ascii_case(&user_name(kept.resource())) {
        return Ok(next);
    }
    match store.taken(&name, Some(&kept.id())).await {
        Ok(false) => Ok(next),
        Ok(true) => Err(Refusal::taken(&name)),
        Err(e) => Err(Refusal::unavailable(&e.to_string())),
    }
}

/// `If-Match` against the kept version: `412` when it differs.
fn precondition(headers: &HeaderMap, kept: &Kept) -> Option<Response> {
    let wanted = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    let have = kept.version();
    let fits = wanted == "*" || wanted.split(',').any(|w| w.trim() == have);
    (!fits).then(|| {
        error(
            StatusCode::PRECONDITION_FAILED,
            None,
            &format!("the User is at version {have}, not {wanted}"),
        )
    })
}

fn served(kept: &Kept, req: &Request, status: StatusCode) -> Response {
    let user = render(kept.resource(), &kept.id(), &kept.meta(&req.base));
    json_answer(status, &user, Some(&kept.version()))
}

fn parse(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal::bad("invalidSyntax", format!("the body is not JSON: {e}")))
}

fn checked(pushed: &Value) -> Result<Value, Refusal> {
    normalize(pushed).map_err(|e| Refusal::bad(e.scim_type(), e.to_string()))
}

fn user_name(user: &Value) -> String {
    path::get(user, "userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
