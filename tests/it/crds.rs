//! The CRDs install, are Established, and read well with kubectl.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use roster::api::Identity;

use crate::harness::control_plane;

#[tokio::test]
async fn crds_install_and_become_established() {
    let cp = control_plane();
    let client = cp.client().await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for expected in roster::api::crds() {
        let name = expected.metadata.name.expect("name");
        let crd = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        for type_ in ["Established", "NamesAccepted"] {
            let c = conditions.iter().find(|c| c.type_ == type_);
            assert_eq!(
                c.map(|c| c.status.as_str()),
                Some("True"),
                "{name} {type_}: {conditions:?}"
            );
        }
    }
    let listed = api.list(&ListParams::default()).await.expect("list CRDs");
    let roster_crds = listed
        .items
        .iter()
        .filter(|c| c.spec.group == roster::api::GROUP)
        .count();
    assert_eq!(roster_crds, roster::api::crds().len());
}

#[tokio::test]
async fn kubectl_shows_printer_columns_short_names_and_category() {
    let cp = control_plane();
    let client = cp.client().await;
    let identity: Identity = serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
        "metadata": {"name": "columns-check"},
        "spec": {"username": "columns.check", "state": "Suspended"}
    }))
    .expect("identity");
    Api::<Identity>::all(client)
        .create(&PostParams::default(), &identity)
        .await
        .expect("create identity");

    let out = cp.kubectl(&["get", "identities", "columns-check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "USERNAME", "KIND", "STATE", "READY", "SYNCED", "DRIFTED", "AGE"
        ]
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..4],
        ["columns-check", "columns.check", "Person", "Suspended"],
        "{stdout}"
    );

    for short in ["ident", "rrole", "rrb", "conn"] {
        let out = cp.kubectl(&["get", short, "-A"]);
        assert!(
            out.status.success(),
            "short name {short}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cp.kubectl(&["get", "roster", "-A"]);
    assert!(
        out.status.success(),
        "category roster: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("identity.roster.dev/columns-check"));
}
