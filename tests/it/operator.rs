//! `roster run` against the real API server: readiness, status writing, Events, metrics,
//! clean shutdown — and a clear refusal when the CRDs are missing.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use roster::api::{Connector, Role, RoleBinding, conditions};
use serde_json::json;

use crate::harness::{bare_control_plane, isolated_control_plane, operator::Operator};

/// The value of one counter series, as the operator's `/metrics` reports it (0 if absent).
async fn metric(http: &reqwest::Client, probe: &str, series: &str) -> u64 {
    let text = match http.get(format!("{probe}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn ready_reason(client: &Client, ns: &str, role: &str) -> Option<(String, String)> {
    let role = Api::<Role>::namespaced(client.clone(), ns)
        .get(role)
        .await
        .ok()?;
    let status = role.status?;
    let c = conditions::find(&status.conditions, conditions::READY)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn run_reports_ready_writes_status_and_stops_on_sigterm() {
    let cp = isolated_control_plane("isolated");
    let client = cp.client().await;
    let ns = cp.namespace(&client, "operator").await;
    let mut op = Operator::start(&cp.kubeconfig);

    let http = reqwest::Client::new();
    op.eventually("/readyz answers ok", Duration::from_secs(60), || async {
        let r = http.get(format!("{}/readyz", op.probe)).send().await;
        matches!(r, Ok(r) if r.status().is_success())
    })
    .await;
    let health = http
        .get(format!("{}/healthz", op.probe))
        .send()
        .await
        .expect("/healthz");
    assert!(health.status().is_success());

    // A Role naming a Connector that does not exist is reported, with an Event.
    let role: Role = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": "eng"},
        "spec": {"entitlements": [{"connector": "scim", "name": "engineers"}]}
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    op.eventually(
        "Role Ready=False ConnectorNotFound",
        Duration::from_secs(30),
        || async {
            ready_reason(&client, &ns, "eng").await
                == Some(("False".into(), "ConnectorNotFound".into()))
        },
    )
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    op.eventually(
        "a Warning Event for the Role",
        Duration::from_secs(30),
        || async {
            events.list(&ListParams::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some("ConnectorNotFound")
                        && e.type_.as_deref() == Some("Warning")
                })
            })
        },
    )
    .await;

    // Creating the Connector re-checks the Role through the secondary watch.
    let connector: Connector = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "scim"},
        "spec": {"allowPlaintext": true, "scim": {"baseUrl": "http://127.0.0.1:9/v2", "tokenSecretRef": {"name": "scim-token", "key": "token"}}}
    }))
    .unwrap();
    Api::<Connector>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &connector)
        .await
        .expect("create connector");
    op.eventually("Role Ready=True", Duration::from_secs(30), || async {
        ready_reason(&client, &ns, "eng")
            .await
            .is_some_and(|(s, _)| s == "True")
    })
    .await;
    // The Connector's missing Secret is named in its condition, never its content.
    op.eventually(
        "Connector Ready=False SecretNotFound",
        Duration::from_secs(30),
        || async {
            let c = Api::<Connector>::namespaced(client.clone(), &ns)
                .get("scim")
                .await
                .ok();
            c.and_then(|c| c.status).is_some_and(|s| {
                conditions::find(&s.conditions, conditions::READY)
                    .is_some_and(|c| c.reason == "SecretNotFound")
            })
        },
    )
    .await;

    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding", "metadata": {"name": "eng-ada"},
        "spec": {"role": "eng", "subjects": {"identities": ["ada"]}}
    }))
    .unwrap();
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &ns);
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
    op.eventually(
        "RoleBinding Ready=True",
        Duration::from_secs(30),
        || async {
            bindings
                .get("eng-ada")
                .await
                .ok()
                .and_then(|b| b.status)
                .is_some_and(|s| {
                    s.observed_generation == Some(1)
                        && conditions::find(&s.conditions, conditions::READY)
                            .is_some_and(|c| c.status == "True")
                })
        },
    )
    .await;

    // A reconcile that finds nothing new writes nothing: touch the Role's metadata (no
    // generation change), see the reconcile counted, and no status write sent.
    let roles = Api::<Role>::namespaced(client.clone(), &ns);
    let before = metric(
        &http,
        &op.probe,
        r#"roster_reconciliations_total{kind="Role",outcome="ok"}"#,
    )
    .await;
    let writes = metric(
        &http,
        &op.probe,
        r#"roster_status_writes_total{kind="Role"}"#,
    )
    .await;
    assert!(writes > 0, "the Role's status was written at least once");
    roles
        .patch(
            "eng",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"annotations": {"roster.dev/touched": "1"}}}),
            ),
        )
        .await
        .expect("annotate role");
    op.eventually(
        "the touched Role to be reconciled",
        Duration::from_secs(30),
        || async {
            metric(
                &http,
                &op.probe,
                r#"roster_reconciliations_total{kind="Role",outcome="ok"}"#,
            )
            .await
                > before
        },
    )
    .await;
    let writes_after = metric(
        &http,
        &op.probe,
        r#"roster_status_writes_total{kind="Role"}"#,
    )
    .await;
    assert_eq!(writes_after, writes, "an unchanged status was sent again");

    let status = op.terminate();
    assert!(
        status.success(),
        "exit after SIGTERM: {status:?}\n{}",
        op.log()
    );
    let log = op.log();
    assert!(
        log.contains("reconciled"),
        "no reconcile outcome logged:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn run_without_crds_exits_with_how_to_install_them() {
    let cp = bare_control_plane();
    let mut op = Operator::start(&cp.kubeconfig);
    let status = op
        .wait(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("roster run kept running without CRDs:\n{}", op.log()));
    assert!(!status.success());
    let log = op.log();
    assert!(
        log.contains("CustomResourceDefinitions are not installed"),
        "{log}"
    );
    assert!(log.contains("identities.roster.dev"), "{log}");
    assert!(
        log.contains("roster crds | kubectl apply --server-side -f -"),
        "{log}"
    );
}
