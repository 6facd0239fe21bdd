//! Crash points on all four connectors: a debug build aborts where `ROSTER_CRASH_AT`
//! says — after a create, between a leaver's revokes and the disable, after a disable,
//! after a grant — before the status records the write. A fresh operator then finishes
//! the work, and every server, read directly, shows nothing duplicated, nothing lost and
//! no leaver with access.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    self,
    apps::{self, Apps, Census},
    isolated_control_plane,
    operator::Operator,
    scim,
};

const PEOPLE: usize = 3;
const LIMIT: Duration = Duration::from_secs(90);
/// These tests are about crashes, not elections: no Lease wait after an abort.
const ALONE: (&str, &str) = ("ROSTER_LEADER_ELECT", "false");

/// The four Connectors, the entitlement `{stem}-staff` on each app, a Role granting it
/// and a binding for `{stem}.*`, in a namespace of their own; returns the namespace and
/// direct access to the apps.
async fn four_apps(cp: &harness::ControlPlane, stem: &str) -> (String, Apps) {
    let client = cp.client().await;
    let ns = cp.namespace(&client, stem).await;
    let base = scim::tenant(stem);
    let apps = Apps::new(scim::Direct::new(&base), client.clone()).await;
    let entitlements = apps::make_staff(stem, &apps.scim, &client).await;
    let objects = apps::scim_connector(&base, &json!({}))
        .into_iter()
        .chain(apps::other_three(&json!({})));
    for obj in objects {
        harness::apply(&client, &ns, obj).await;
    }
    harness::apply(
        &client,
        &ns,
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
        "metadata": {"name": "staff"}, "spec": {"entitlements": entitlements}}),
    )
    .await;
    harness::apply(&client, &ns, json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "staff"},
        "spec": {"role": "staff", "subjects": {"expression": format!("identity.username.startsWith(\"{stem}.\")")}}}))
    .await;
    (ns, apps)
}

async fn people(cp: &harness::ControlPlane, stem: &str, state: &str) {
    let client = cp.client().await;
    for i in 0..PEOPLE {
        let person: Value = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
            "metadata": {"name": format!("{stem}-{i}")},
            "spec": {"username": format!("{stem}.{i}"), "state": state}});
        harness::apply(&client, "", person).await;
    }
}

/// Runs an operator that aborts at `point`, then a plain one until the apps show `want`
/// and every Identity's status agrees (`leaving`: receipts verified on all four).
async fn crash_then_converge(
    cp: &harness::ControlPlane,
    apps: &Apps,
    (stem, point): (&str, &str),
    want: Census,
    leaving: bool,
) {
    let mut crashing = Operator::start_with(
        &cp.kubeconfig,
        "info",
        &[ALONE, (roster::crashpoint::VARIABLE, point)],
    );
    let status = crashing
        .wait(LIMIT)
        .unwrap_or_else(|| panic!("never reached {point}:\n{}", crashing.log()));
    assert!(
        crashing.log().contains(&format!("crash point {point}")),
        "exited otherwise ({status:?}):\n{}",
        crashing.log()
    );
    let mut after = Operator::start_with(&cp.kubeconfig, "info", &[ALONE]);
    after
        .eventually(
            &format!("converged after a crash at {point}"),
            LIMIT,
            || async {
                let seen = apps.census(stem).await;
                if seen != want {
                    eprintln!("{point}: {seen:?}");
                    return false;
                }
                statuses(cp, stem, leaving).await
            },
        )
        .await;
    assert_eq!(after.terminate().code(), Some(0));
}

/// Every Identity `{stem}-*` has an account on each of the four connectors, none a
/// Conflict (an account a crash left unmarked), and if `leaving` a receipt verified on
/// all four.
async fn statuses(cp: &harness::ControlPlane, stem: &str, leaving: bool) -> bool {
    let client = cp.client().await;
    let list = kube::Api::<roster::api::Identity>::all(client)
        .list(&Default::default())
        .await
        .expect("list");
    let ours: Vec<_> = list
        .items
        .iter()
        .filter(|i| i.spec.username.starts_with(&format!("{stem}.")))
        .collect();
    ours.len() == PEOPLE
        && ours.iter().all(|i| {
            let st = i.status.clone().unwrap_or_default();
            let clean = st.accounts.len() == 4
                && st
                    .accounts
                    .iter()
                    .all(|a| a.state != roster::api::AccountState::Conflict && a.error.is_none());
            let receipt = st.deprovisioning.is_some_and(|r| {
                r.connectors.len() == 4 && r.connectors.iter().all(|c| c.verified_at.is_some())
            });
            clean && (receipt || !leaving)
        })
}

/// Every `{stem}-*` Identity has a receipt, verified on every connector it lists, and
/// at least one lists a connector (the account the crash left).
async fn receipts_verified(cp: &harness::ControlPlane, stem: &str) -> bool {
    let list = kube::Api::<roster::api::Identity>::all(cp.client().await)
        .list(&Default::default())
        .await
        .expect("list");
    let receipts: Vec<_> = list
        .items
        .iter()
        .filter(|i| i.spec.username.starts_with(&format!("{stem}.")))
        .map(|i| i.status.clone().and_then(|s| s.deprovisioning))
        .collect();
    receipts.len() == PEOPLE
        && receipts.iter().all(|r| {
            r.as_ref()
                .is_some_and(|r| r.connectors.iter().all(|c| c.verified_at.is_some()))
        })
        && receipts.iter().flatten().any(|r| !r.connectors.is_empty())
}

#[tokio::test]
async fn a_crash_after_each_dangerous_write_loses_and_duplicates_nothing() {
    let cp = isolated_control_plane("crash");
    let gone = Census {
        scim: (0, 0),
        ldap: (0, 0),
        pg: (0, 0),
        k8s: 0,
    };
    // Joiners: a crash right after an account is created, and right after a grant.
    for (stem, point) in [("cpc", "after-create"), ("cpg", "after-grant")] {
        let (_, apps) = four_apps(cp, stem).await;
        people(cp, stem, "Active").await;
        crash_then_converge(cp, &apps, (stem, point), Census::all(PEOPLE), false).await;
    }
    // A crash after a create, and the person leaves before Roster is back: the account no
    // status recorded must not keep its access.
    let (_, apps) = four_apps(cp, "cpl").await;
    people(cp, "cpl", "Active").await;
    let mut crashing = Operator::start_with(
        &cp.kubeconfig,
        "info",
        &[ALONE, (roster::crashpoint::VARIABLE, "after-create")],
    );
    crashing.wait(LIMIT).expect("the crash");
    people(cp, "cpl", "Terminated").await;
    let mut after = Operator::start_with(&cp.kubeconfig, "info", &[ALONE]);
    // The census may already read zero (the one account made may be the Kubernetes
    // record, which it does not count): wait for the receipts, which only a pass writes.
    after
        .eventually("the half-created leaver has no access", LIMIT, || async {
            apps.census("cpl").await == gone && receipts_verified(cp, "cpl").await
        })
        .await;
    assert_eq!(after.terminate().code(), Some(0));

    // Leavers: provisioned first, then terminated with no operator running, then a crash
    // between the revokes and the disable, and right after the disable.
    for (stem, point) in [("cpr", "after-revoke"), ("cpd", "after-disable")] {
        let (_, apps) = four_apps(cp, stem).await;
        people(cp, stem, "Active").await;
        let mut op = Operator::start_with(&cp.kubeconfig, "info", &[ALONE]);
        op.eventually("provisioned", LIMIT, || async {
            apps.census(stem).await == Census::all(PEOPLE)
        })
        .await;
        assert_eq!(op.terminate().code(), Some(0));
        people(cp, stem, "Terminated").await;
        crash_then_converge(cp, &apps, (stem, point), gone.clone(), true).await;
    }
}
