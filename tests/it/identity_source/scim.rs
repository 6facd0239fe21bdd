//! A SCIM push source on the shared operator's endpoint, driven by real SCIM clients from
//! PyPI: `scim2-tester` holds the endpoint to RFC 7643/7644, and `scim2-cli`, acting as
//! the HR system, creates, moves, deactivates and deletes people.

use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use roster::api::{IdentitySource, LifecycleState, ScimUser};
use serde_json::{Value, json};

use crate::{
    four_connectors::{Feed, joiner_mover_leaver_from},
    harness::operator,
    lifecycle::Scenario,
};

/// The enterprise extension's URN, for PATCH paths.
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The bearer token the tests' HR system presents.
const TOKEN: &str = "it-hr-push-token";

/// The SCIM base URL of the source `name` in the scenario's namespace.
pub fn endpoint(s: &Scenario, name: &str) -> String {
    format!(
        "{}/sources/{}/{name}/scim/v2",
        operator::shared().scim,
        s.ns
    )
}

/// The IdentitySource `name` taking pushes with [`TOKEN`], mapping the SCIM attributes
/// `scim2-cli` sends; `extra` merged into its spec.
pub async fn push_source(s: &Scenario, name: &str, extra: Value) {
    s.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-token")}, "stringData": {"token": TOKEN}}))
        .await;
    let mut spec = json!({"scim": {"tokenSecretRef": {"name": format!("{name}-token"), "key": "token"}},
        "pollSeconds": 30,
        "mapping": {"username": "userName", "displayName": "displayName",
            "givenName": "name.givenName", "familyName": "name.familyName", "email": "emails",
            "state": "active", "attributes": {"department": "department", "employeeNumber": "employeeNumber"}}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    s.apply::<IdentitySource>(json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "IdentitySource", "metadata": {"name": name}, "spec": spec}))
        .await;
}

/// The bin directory of the venv holding `scim2` and `scim2-tester`.
fn tools() -> String {
    std::env::var("ROSTER_SCIM2_TOOLS").unwrap_or_else(|_| {
        panic!(
            "ROSTER_SCIM2_TOOLS is not set. Install the SCIM clients and point at them:\n  \
             export ROSTER_SCIM2_TOOLS=$(hack/scim2-tools-bin.sh)\n\
             (the README's test command, hack/test.sh, does this)"
        )
    })
}

/// Runs `scim2 ARGS` against the source `name`, `stdin` piped in, as the HR system;
/// returns what it printed, as JSON when it is.
pub async fn scim2(s: &Scenario, name: &str, args: &[&str], stdin: Option<Value>) -> Value {
    let (url, args) = (
        endpoint(s, name),
        args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(format!("{}/scim2", tools()))
            .args(&args)
            .env("SCIM_CLI_URL", &url)
            .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {TOKEN}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scim2");
        if let (Some(body), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(body.to_string().as_bytes())
                .expect("write to scim2");
        }
        let out = child.wait_with_output().expect("scim2");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "scim2 {args:?} failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    })
    .await
    .expect("scim2 thread")
}

/// The SCIM id of the pushed user `user_name`, if it was pushed.
async fn pushed_id(s: &Scenario, user_name: &str) -> Option<String> {
    Api::<ScimUser>::namespaced(s.client.clone(), &s.ns)
        .list(&Default::default())
        .await
        .expect("list ScimUsers")
        .items
        .into_iter()
        .find(|u| u.spec.resource["userName"] == user_name)
        .and_then(|u| u.metadata.name)
}

/// `scim2-cli` as the HR system: pushes `user` in `department` (with a colleague,
/// `{stem}.grace`, whose record stays, so the source is never empty), moves them by a
/// PATCH, or deletes them when `state` is `Terminated`.
pub async fn hr_person(s: &Scenario, stem: &str, user: &str, department: &str, state: &str) {
    let create = |name: &str, department: &str| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": name, "displayName": "Ada Lovelace", "active": true,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
            ENTERPRISE: {"department": department}})
    };
    let colleague = format!("{stem}.grace");
    if pushed_id(s, &colleague).await.is_none() {
        scim2(
            s,
            "hr",
            &["create", "user"],
            Some(create(&colleague, "sales")),
        )
        .await;
    }
    match (pushed_id(s, user).await, state) {
        (None, _) => {
            scim2(s, "hr", &["create", "user"], Some(create(user, department))).await;
        }
        (Some(id), "Terminated") => {
            scim2(s, "hr", &["delete", "user", &id], None).await;
        }
        (Some(id), _) => {
            let path = format!("{ENTERPRISE}:department");
            scim2(
                s,
                "hr",
                &["modify", "user", &id, "replace", &path, department],
                None,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_scim_push_takes_a_person_through_four_apps() {
    let s = Scenario::new("hrscim", json!({})).await;
    joiner_mover_leaver_from(&s, "hrscim", Feed::ScimPush).await;
}

#[tokio::test]
async fn a_standby_takes_pushes_over_tls_and_the_leader_applies_them() {
    use crate::harness::{certs, control_plane, operator::Operator, process};

    let s = Scenario::new("scimtls", json!({})).await;
    push_source(&s, "hr", json!({})).await;
    let dir = process::temp_dir("roster-scim-tls-");
    let ca = certs::loopback_server(&dir);
    let addr = format!("127.0.0.1:{}", process::free_port());
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    // A second operator on the shared cluster: the shared one holds the Lease, so this
    // one stands by, and still takes pushes.
    let standby = Operator::start_with(
        &control_plane().kubeconfig,
        "info",
        &[
            ("ROSTER_SCIM_ADDR", addr.as_str()),
            ("ROSTER_SCIM_TLS_CERT", &cert.display().to_string()),
            ("ROSTER_SCIM_TLS_KEY", &key.display().to_string()),
        ],
    );
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .build()
        .expect("client");
    let users = format!("https://{addr}/sources/{}/hr/scim/v2/Users", s.ns);
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "scimtls.cy", "active": true});
    s.eventually("the standby takes a push over TLS", || async {
        https
            .post(&users)
            .bearer_auth(TOKEN)
            .json(&user)
            .send()
            .await
            .is_ok_and(|r| r.status() == 201)
    })
    .await;
    s.eventually("the leader makes the pushed joiner an Identity", || async {
        s.identities()
            .get_opt("scimtls.cy")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let plain = reqwest::get(format!("http://{addr}/")).await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
    let log = standby.log();
    assert!(
        log.contains("waiting to lead")
            && !log.contains("\"leading\"")
            && !log.contains(" leading"),
        "the second operator stood by:\n{log}"
    );
}

#[tokio::test]
async fn a_scim_user_written_by_hand_needs_what_an_identity_needs() {
    use crate::escalation::{as_user, grant, rule};

    let cp = crate::harness::control_plane();
    let admin = cp.client().await;
    let ns = cp.namespace(&admin, "scimforge").await;
    // Rights on the store alone: not enough to mint a worker by writing into it.
    grant(
        &admin,
        &ns,
        "u-scim-forger",
        vec![rule("scimusers", &["create", "update"], &[])],
    )
    .await;
    let forger = as_user(cp, "u-scim-forger").await;
    let forged: ScimUser = serde_json::from_value(json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "ScimUser", "metadata": {"name": "forged"},
        "spec": {"source": "hr", "resource": {"userName": "mallory"}}}))
    .expect("a ScimUser");
    let api = Api::<ScimUser>::namespaced(forger, &ns);
    let start = std::time::Instant::now();
    let refused = loop {
        match api.create(&Default::default(), &forged).await {
            Err(e) if e.to_string().contains("may not write a ScimUser") => break e.to_string(),
            other if start.elapsed() > std::time::Duration::from_secs(30) => {
                panic!("the ScimUser policy did not refuse within 30 s: {other:?}")
            }
            // RBAC and the policy may still be on their way to the authorizer's cache.
            _ => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    };
    assert!(
        refused.contains("needs verb patch on identities.roster.dev"),
        "{refused}"
    );
}

/// Runs scim2-tester's `check_server` on the source `name`; returns each check's
/// (status, title, reason).
async fn tester(s: &Scenario, name: &str) -> Vec<(String, String, String)> {
    let url = endpoint(s, name);
    let script = r#"
import json, sys
from scim2_client.engines.httpx2 import SyncSCIMClient
from httpx2 import Client
from scim2_tester import check_server
client = SyncSCIMClient(Client(base_url=sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]}))
for r in check_server(client):
    print(json.dumps([r.status.name, r.title, str(r.reason or "")]))
"#;
    tokio::task::spawn_blocking(move || {
        let out = Command::new(format!("{}/python", tools()))
            .args(["-c", script, &url, TOKEN])
            .output()
            .expect("run scim2-tester");
        assert!(
            out.status.success(),
            "scim2-tester failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<(String, String, String)>(l).ok())
            .collect()
    })
    .await
    .expect("tester thread")
}

#[tokio::test]
async fn scim2_tester_finds_the_push_endpoint_compliant() {
    let s = Scenario::new("scimcheck", json!({})).await;
    // The checker pushes users with random names: mapped to a column it never sends, they
    // stay rows with a problem and become no Identities in the shared cluster.
    push_source(&s, "hr", json!({"mapping": {"username": "notPushed"}})).await;
    let results = tester(&s, "hr").await;
    for (status, title, reason) in &results {
        eprintln!("{status:8} {title}: {reason}");
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| !["SUCCESS", "SKIPPED"].contains(&status.as_str()))
        .collect();
    assert!(
        results.len() > 40,
        "scim2-tester ran {} checks",
        results.len()
    );
    assert!(failed.is_empty(), "not compliant: {failed:#?}");
}

#[tokio::test]
async fn a_wrong_token_or_another_source_is_refused() {
    let s = Scenario::new("scimauth", json!({})).await;
    push_source(&s, "hr", json!({})).await;
    let http = reqwest::Client::new();
    let users = format!("{}/Users", endpoint(&s, "hr"));
    for (url, token) in [
        (users.as_str(), "wrong"),
        (users.as_str(), ""),
        (&format!("{}/Users", endpoint(&s, "nosuchsource")), TOKEN),
    ] {
        let r = http.get(url).bearer_auth(token).send().await.expect("GET");
        assert_eq!(r.status(), 401, "{url} with {token:?}");
    }
    let r = http
        .get(&users)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn hr_deactivates_then_deletes_and_the_identity_follows() {
    let s = Scenario::new("scimlife", json!({})).await;
    push_source(&s, "hr", json!({})).await;
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "scimlife.bo", "displayName": "Bo", "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "sales"}});
    let created = scim2(&s, "hr", &["create", "user"], Some(user)).await;
    let id = created["id"].as_str().expect("an id").to_owned();
    s.eventually("the pushed joiner is an Identity", || async {
        s.identities()
            .get_opt("scimlife.bo")
            .await
            .ok()
            .flatten()
            .is_some_and(|i| {
                i.spec.state == LifecycleState::Active
                    && i.spec.attributes.get("department").map(String::as_str) == Some("sales")
            })
    })
    .await;
    scim2(
        &s,
        "hr",
        &["modify", "user", &id, "replace", "active", "false"],
        None,
    )
    .await;
    s.eventually("deactivated in HR: suspended", || async {
        s.get("scimlife.bo").await.spec.state == LifecycleState::Suspended
    })
    .await;
    scim2(&s, "hr", &["delete", "user", &id], None).await;
    s.eventually("deleted in HR: terminated", || async {
        s.get("scimlife.bo").await.spec.state == LifecycleState::Terminated
    })
    .await;
    let left = Api::<ScimUser>::namespaced(s.client.clone(), &s.ns)
        .get_opt(&id)
        .await
        .expect("get");
    assert!(left.is_none(), "the deleted user is gone from the store");
}
