//! A SaaS-like limit in front of scim2-server: a proxy on loopback that lets through at
//! most 180 writes a minute (a short burst allowed) and answers any write beyond that
//! with `429 Too Many Requests`, as Slack's and others' APIs do. It counts both, so the
//! benchmark can show Roster's achieved write rate against the limit and that it was
//! never refused.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Writes a minute the proxy lets through.
pub const WRITES_PER_MINUTE: u32 = 180;
/// Writes it lets through at once after a quiet spell.
const BURST: u32 = 10;
/// The largest request body forwarded.
const MAX_BODY: usize = 1 << 20;

/// What the proxy saw.
#[derive(Default)]
pub struct Counts {
    pub writes: AtomicUsize,
    pub reads: AtomicUsize,
    pub refused: AtomicUsize,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    writes: DefaultDirectRateLimiter,
    counts: Arc<Counts>,
}

/// Starts the proxy in front of `upstream` (a SCIM base URL such as
/// `http://127.0.0.1:P/tenant/v2`); returns its own base URL and its counts.
pub async fn start(upstream: &str) -> Result<(String, Arc<Counts>), String> {
    let per_minute = NonZeroU32::new(WRITES_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
    let counts = Arc::new(Counts::default());
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        writes: RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst)),
        counts: counts.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the SaaS proxy: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the SaaS proxy's address: {e}"))?;
    let app = Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), counts))
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let write = req.method() != Method::GET;
    if write {
        if p.writes.check().is_err() {
            p.counts.refused.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
        }
        p.counts.writes.fetch_add(1, Ordering::Relaxed);
    } else {
        p.counts.reads.fetch_add(1, Ordering::Relaxed);
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let Ok(body) = to_bytes(req.into_body(), MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut out = p
        .http
        .request(method, format!("{}{path}", p.upstream))
        .body(body);
    for name in ["authorization", "content-type", "if-match", "accept"] {
        if let Some(v) = headers.get(name) {
            out = out.header(name, v);
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            let mut back = Response::builder().status(status.as_u16());
            for name in ["content-type", "etag", "location"] {
                if let Some(v) = resp.headers().get(name) {
                    back = back.header(name, v);
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            back.body(Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// The SaaS-limited scenario's figures.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Saas {
    /// The proxy's limit, and the Connector's `rateLimit` in front of it.
    pub writes_per_minute_limit: u32,
    pub connector_requests_per_second: u32,
    /// Joiners applied just before the first leaver, and how long they took to drain.
    pub joiners: usize,
    pub drained_seconds: f64,
    /// Writes the proxy let through a minute while the joiners drained.
    pub achieved_writes_per_minute: f64,
    /// Writes it refused with 429, and the reads it forwarded, over the whole scenario.
    pub refused: usize,
    pub reads: usize,
    /// Leavers timed while the joiners drained, until SCIM read directly showed them
    /// disabled and in no group.
    pub leavers: Option<crate::figures::Latency>,
    /// Of the joiners, those on SCIM when the last leaver was gone.
    pub joiners_done_when_leavers_done: usize,
}

/// A namespace whose one Connector reaches a fresh SCIM tenant through the proxy, at a
/// `rateLimit` of three requests a second (180 a minute, reads included); `leavers`
/// people join and are provisioned, then `joiners` more are applied and, while they
/// drain, the first ones leave one after another.
pub async fn scenario(
    client: &kube::Client,
    leavers: usize,
    joiners: usize,
    limit: std::time::Duration,
) -> Result<Saas, String> {
    use std::time::Instant;

    use kube::{Api, api::Patch, api::PatchParams};
    use roster::api::Identity;
    use serde_json::json;

    use crate::harness::{self, apps, control_plane, scim};

    const RATE: u32 = WRITES_PER_MINUTE / 60;
    let ns = control_plane().namespace(client, "saas").await;
    let tenant = scim::tenant("saas");
    let (root, path) = split_root(&tenant).ok_or("the SCIM tenant's URL has no path")?;
    let (proxy, counts) = start(root).await?;
    let direct = scim::Direct::new(&tenant);
    direct.group("saas-staff").await;
    let extra = json!({"rateLimit": {"requestsPerSecond": RATE, "burst": RATE},
        "pollIntervalSeconds": 300});
    let [secret, connector] = apps::scim_connector(&format!("{proxy}{path}"), &extra);
    harness::apply(client, &ns, secret).await;
    harness::apply(client, &ns, connector).await;
    harness::apply(
        client,
        &ns,
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
        "metadata": {"name": "staff"}, "spec": {"entitlements": [
            {"connector": "scim", "name": "saas-staff"}]}}),
    )
    .await;
    harness::apply(
        client,
        &ns,
        json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "RoleBinding", "metadata": {"name": "staff"}, "spec": {"role": "staff",
        "subjects": {"expression": "identity.username.startsWith(\"saas.\")"}}}),
    )
    .await;

    let people = |kind: char, n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("saas-{kind}{i:05}"), format!("saas.{kind}{i:05}")))
            .collect()
    };
    let early = people('l', leavers);
    crate::world::apply_pairs(client, early.clone().into_iter()).await?;
    wait_for(&direct, "saas.l", leavers, limit).await?;

    let started = Instant::now();
    let writes_before = counts.writes.load(Ordering::Relaxed);
    let applying = {
        let (client, later) = (client.clone(), people('j', joiners));
        tokio::spawn(async move { crate::world::apply_pairs(&client, later.into_iter()).await })
    };
    let api = Api::<Identity>::all(client.clone());
    let mut took = Vec::new();
    for (name, username) in &early {
        let at = Instant::now();
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "Terminated"}})),
        )
        .await
        .map_err(|e| format!("terminate {name}: {e}"))?;
        while !crate::leavers::scim_gone(&direct, username).await {
            if at.elapsed() > limit {
                return Err(format!("{username} still has access after {limit:?}"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        took.push(at.elapsed());
    }
    let joiners_done_when_leavers_done = direct.users_named("saas.j").await;
    applying
        .await
        .map_err(|e| format!("applying the SaaS joiners: {e}"))??;
    wait_for(&direct, "saas.j", joiners, limit).await?;
    let drained = started.elapsed().as_secs_f64();
    let written = counts.writes.load(Ordering::Relaxed) - writes_before;
    Ok(Saas {
        writes_per_minute_limit: WRITES_PER_MINUTE,
        connector_requests_per_second: RATE,
        joiners,
        drained_seconds: drained,
        achieved_writes_per_minute: written as f64 * 60.0 / drained.max(f64::EPSILON),
        refused: counts.refused.load(Ordering::Relaxed),
        reads: counts.reads.load(Ordering::Relaxed),
        leavers: crate::figures::Latency::of(&took),
        joiners_done_when_leavers_done,
    })
}

/// `http://host:port` and the rest of `url`.
fn split_root(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let slash = url[after_scheme..].find('/')? + after_scheme;
    Some((&url[..slash], &url[slash..]))
}

/// Waits until `want` users named `prefix…` are in the tenant's staff group, read
/// directly (not through the proxy).
async fn wait_for(
    direct: &crate::harness::scim::Direct,
    prefix: &str,
    want: usize,
    limit: std::time::Duration,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        let users = direct.all_users(prefix).await;
        let ids: Vec<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
        let groups = direct.get("/Groups").await;
        let members = groups["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["displayName"] == "saas-staff")
            .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
            .filter(|m| m["value"].as_str().is_some_and(|v| ids.contains(&v)))
            .count();
        if members >= want {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(format!(
        "{prefix}…: not {want} in the group within {limit:?}"
    ))
}

/// The pure parts' checks.
pub fn check() {
    assert_eq!(
        split_root("http://127.0.0.1:8080/t-1/v2"),
        Some(("http://127.0.0.1:8080", "/t-1/v2"))
    );
    assert_eq!(split_root("http://127.0.0.1:8080"), None);
}
