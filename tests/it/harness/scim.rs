//! A real scim2-server (PyPI) on loopback, started once per test binary with dynamic
//! tenants: each test gets a tenant of its own, so tests do not see each other's users.

use std::{
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use super::process;

/// The bearer token the server accepts.
pub const TOKEN: &str = "roster-it-scim-token";

static SERVER: OnceLock<String> = OnceLock::new();
static CAPPED: OnceLock<String> = OnceLock::new();

/// Pages the capped server returns at most, whatever `count` asks: as SaaS apps do.
pub const CAPPED_PAGE: u64 = 40;

/// The server's root URL, e.g. `http://127.0.0.1:PORT`.
fn server() -> &'static str {
    SERVER.get_or_init(|| start(None))
}

/// A second server whose pages hold at most [`CAPPED_PAGE`] resources.
fn capped_server() -> &'static str {
    CAPPED.get_or_init(|| {
        let config = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": CAPPED_PAGE},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": []
        });
        start(Some(config))
    })
}

fn start(config: Option<serde_json::Value>) -> String {
    let bin = std::env::var_os("ROSTER_SCIM2_SERVER").unwrap_or_else(|| {
        panic!(
            "ROSTER_SCIM2_SERVER is not set. Install the test SCIM server and point at it:\n  \
             export ROSTER_SCIM2_SERVER=$(hack/scim2-server-bin.sh)\n\
             (the README's test command, hack/test.sh, does this)"
        )
    });
    let port = process::free_port();
    let dir = process::temp_dir("roster-scim-");
    let log = dir.join("scim2-server.log");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--hostname",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--bearer-token",
        TOKEN,
        "--dynamic-tenants",
    ]);
    if let Some(config) = config {
        let file = dir.join("service-provider-config.json");
        std::fs::write(&file, config.to_string()).expect("write the server's config");
        cmd.arg("--service-provider-config").arg(file);
    }
    let pid = process::spawn(cmd, &log);
    let url = format!("http://127.0.0.1:{port}");
    let probe = format!("{url}/probe/v2/ServiceProviderConfig");
    std::thread::spawn(move || {
        let http = reqwest::blocking::Client::new();
        process::wait_until("scim2-server", Duration::from_secs(30), &log, pid, || {
            http.get(&probe)
                .bearer_auth(TOKEN)
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    url
}

/// A fresh tenant on the server whose pages are capped at [`CAPPED_PAGE`].
pub fn capped_tenant(prefix: &str) -> String {
    format!("{}/{prefix}-{}/v2", capped_server(), next_tenant())
}

fn next_tenant() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh tenant's SCIM base URL (`…/TENANT/v2`).
pub fn tenant(prefix: &str) -> String {
    format!("{}/{prefix}-{}/v2", server(), next_tenant())
}

/// Test-side access to a tenant, as a person or another system would change it out of
/// band: plain HTTP, nothing of Roster's.
pub struct Direct {
    http: reqwest::Client,
    pub base: String,
}

impl Direct {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.try_post(path, body)
            .await
            .unwrap_or_else(|status| panic!("POST {path}: {status}"))
    }

    /// `POST`, whose refusal is an answer, not a failure of the test.
    pub async fn try_post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, reqwest::StatusCode> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        if !resp.status().is_success() {
            return Err(resp.status());
        }
        Ok(resp.json().await.expect("json"))
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET");
        resp.json().await.expect("json")
    }

    pub async fn patch(&self, path: &str, ops: serde_json::Value) {
        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let resp = self
            .http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("PATCH");
        assert!(
            resp.status().is_success(),
            "PATCH {path}: {}",
            resp.status()
        );
    }

    /// Creates a group; returns its id.
    pub async fn group(&self, name: &str) -> String {
        let g = self
            .post("/Groups", serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}))
            .await;
        g["id"].as_str().expect("group id").to_owned()
    }

    /// Creates a user nobody marked; returns its id.
    pub async fn user(&self, name: &str) -> String {
        let u = self
            .post("/Users", serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}))
            .await;
        u["id"].as_str().expect("user id").to_owned()
    }

    /// `GET /Users` with `params` (a filter, a count), as JSON.
    async fn users(&self, params: &[(&str, &str)]) -> serde_json::Value {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/Users", self.base), params).expect("url");
        self.http
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json")
    }

    /// The user named `name`, if any.
    pub async fn find_user(&self, name: &str) -> Option<serde_json::Value> {
        let filter = format!("userName eq {}", serde_json::Value::String(name.into()));
        let list = self.users(&[("filter", &filter)]).await;
        list["Resources"]
            .as_array()
            .and_then(|r| r.first().cloned())
    }

    /// The user named `name` and the names of the groups holding it, sorted.
    pub async fn user_with_groups(&self, name: &str) -> Option<(serde_json::Value, Vec<String>)> {
        let user = self.find_user(name).await?;
        let id = user["id"].as_str()?.to_owned();
        let groups = self.get("/Groups").await;
        let mut names: Vec<String> = groups["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                g["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|v| v["value"] == id.as_str()))
            })
            .filter_map(|g| g["displayName"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Some((user, names))
    }

    /// How many groups hold the user with SCIM id `id`; `None` if the server's answer is
    /// not a list (so a refused filter never reads as "in no group").
    #[allow(dead_code)] // the benchmark's
    pub async fn groups_holding(&self, id: &str) -> Option<u64> {
        let filter = format!("members.value eq {}", serde_json::Value::String(id.into()));
        let url = reqwest::Url::parse_with_params(
            &format!("{}/Groups", self.base),
            &[("filter", filter.as_str()), ("attributes", "displayName")],
        )
        .ok()?;
        let resp = self.http.get(url).bearer_auth(TOKEN).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json::<serde_json::Value>().await.ok()?["totalResults"].as_u64()
    }

    /// Every user whose userName starts with `prefix`, page by page.
    pub async fn all_users(&self, prefix: &str) -> Vec<serde_json::Value> {
        let filter = format!("userName sw {}", serde_json::Value::String(prefix.into()));
        let mut out = Vec::new();
        // Bounded: a page at most per user the first page announced, and one more.
        for _ in 0..=self.users_named(prefix).await {
            let start = (out.len() + 1).to_string();
            let page = self
                .users(&[
                    ("filter", &filter),
                    ("startIndex", &start),
                    ("count", "100"),
                ])
                .await;
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0);
            let done = items.is_empty();
            out.extend(items);
            if done || out.len() as u64 >= total {
                break;
            }
        }
        out
    }

    /// How many users have a userName starting with `prefix`.
    pub async fn users_named(&self, prefix: &str) -> usize {
        let filter = format!("userName sw {}", serde_json::Value::String(prefix.into()));
        let list = self.users(&[("filter", &filter), ("count", "1")]).await;
        list["totalResults"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }
}
