//! An approval of held removals is made in the approver's own name, on the real
//! apiserver: Roster's admission policy admits a Connector's approval annotations only
//! with `roster.dev/approved-by` set to the requester's username, so the approver the
//! audit records name is the apiserver's word.

use std::time::{Duration, Instant};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use roster::api::Connector;
use serde_json::{Value, json};

use crate::{
    escalation::{as_user, grant, rule},
    harness::{apply, control_plane},
};

async fn annotate(client: &Client, ns: &str, annotations: Value) -> Result<(), String> {
    Api::<Connector>::namespaced(client.clone(), ns)
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn approvals_are_made_in_the_approvers_own_name() {
    let cp = control_plane();
    let admin = cp.client().await;
    let ns = cp.namespace(&admin, "approval").await;
    apply(
        &admin,
        &ns,
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
            "metadata": {"name": "app"}, "spec": {"mode": "Observe", "kubernetes": {}}}),
    )
    .await;
    let user = "u-approver";
    grant(
        &admin,
        &ns,
        user,
        vec![rule("connectors", &["get", "patch"], &["app"])],
    )
    .await;
    let alice = as_user(cp, user).await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();

    // The policies take effect a moment after they are installed.
    let anonymous = json!({"roster.dev/approve-removals": now});
    let start = Instant::now();
    let refused = loop {
        match annotate(&alice, &ns, anonymous.clone()).await {
            Err(e) => break e,
            Ok(()) if start.elapsed() < Duration::from_secs(30) => {
                annotate(&admin, &ns, json!({"roster.dev/approve-removals": null}))
                    .await
                    .expect("clear");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(()) => panic!("an approval without a name was admitted for 30 s"),
        }
    };
    assert!(
        refused.contains("only in their own name")
            && refused.contains("roster.dev/approved-by=u-approver"),
        "{refused}"
    );
    let cases = [
        (
            "in another's name",
            json!({"roster.dev/approve-removals": now, "roster.dev/approved-by": "bob"}),
            false,
        ),
        (
            "leavers only, unnamed",
            json!({"roster.dev/approve-leavers": now}),
            false,
        ),
        (
            "in one's own name",
            json!({"roster.dev/approve-removals": now, "roster.dev/approved-by": user}),
            true,
        ),
        (
            "renaming the approver of a standing approval",
            json!({"roster.dev/approved-by": "bob"}),
            false,
        ),
        (
            "an unrelated annotation beside a standing approval",
            json!({"team": "payments"}),
            true,
        ),
        (
            "clearing the approval",
            json!({"roster.dev/approve-removals": null}),
            true,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, annotations, admitted) in cases {
        let got = annotate(&alice, &ns, annotations).await;
        if got.is_ok() != admitted {
            wrong.push(format!("{what}: expected admitted={admitted}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let c = Api::<Connector>::namespaced(admin.clone(), &ns)
        .get("app")
        .await
        .expect("get");
    assert_eq!(
        c.metadata
            .annotations
            .unwrap_or_default()
            .get("roster.dev/approved-by")
            .map(String::as_str),
        Some(user),
        "the approver on record is the one who approved"
    );
}
