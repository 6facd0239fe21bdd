//! Mass removals on the real scim2-server: a deleted Role, an emptied namespace and a
//! mass deletion of Identities are each held with `Quarantined=True` before the first
//! write past what the budget allows — none at all when the source is empty.

use std::time::Duration;

use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use roster::api::{Role, RoleBinding, conditions};
use serde_json::json;

use crate::lifecycle::Scenario;

const BUDGETS: &str = r#"{"deletionBudget": {"maxRemovals": 2, "maxPercent": 100, "windowSeconds": 3600},
    "revocationBudget": {"maxAccounts": 2, "maxPercent": 100, "windowSeconds": 3600}}"#;

/// Five people in the groups `staff` and `extra` through the Roles of those names, one
/// binding each; returns their usernames.
async fn five_in_staff(s: &Scenario, stem: &str) -> Vec<String> {
    s.groups(&["staff", "extra"]).await;
    s.role("staff", &["staff"]).await;
    s.role("extra", &["extra"]).await;
    let expr = format!("identity.username.startsWith(\"{stem}.\")");
    for role in ["staff", "extra"] {
        s.binding(
            role,
            json!({"role": role, "subjects": {"expression": expr}}),
        )
        .await;
    }
    let people: Vec<String> = (0..5).map(|i| format!("{stem}.{i}")).collect();
    for (i, username) in people.iter().enumerate() {
        s.identity(
            &format!("{stem}-{i}"),
            json!({"username": username, "attributes": {"suite": stem}}),
        )
        .await;
    }
    // Generous: the shared operator may be serving another test's burst of 1,000.
    s.eventually_within("everyone provisioned", Duration::from_secs(120), || async {
        census(s, &people).await == (5, 5, 5)
    })
    .await;
    people
}

/// (enabled accounts, accounts in `staff`, accounts in `extra`), read from the app.
async fn census(s: &Scenario, people: &[String]) -> (usize, usize, usize) {
    let mut seen = (0, 0, 0);
    for u in people {
        if let Some((user, groups)) = s.scim_user(u).await {
            seen.0 += usize::from(user["active"] != false);
            seen.1 += usize::from(groups.iter().any(|g| g == "staff"));
            seen.2 += usize::from(groups.iter().any(|g| g == "extra"));
        }
    }
    seen
}

async fn quarantined_holding(s: &Scenario, held: i32, says: &str) {
    s.eventually(
        &format!("Quarantined, {held} held, saying {says:?}"),
        || async {
            let st = s.connector_status("scim").await;
            conditions::find(&st.conditions, conditions::QUARANTINED)
                .is_some_and(|c| c.status == "True" && c.message.contains(says))
                && st.quarantine.is_some_and(|q| q.held_count == held)
        },
    )
    .await;
}

#[tokio::test]
async fn an_emptied_namespace_is_held_before_any_write() {
    let s = Scenario::new("emptied", serde_json::from_str(BUDGETS).expect("json")).await;
    let people = five_in_staff(&s, "em").await;

    // A pruned GitOps folder: every Role and RoleBinding of the namespace goes.
    let (roles, bindings) = (
        Api::<Role>::namespaced(s.client.clone(), &s.ns),
        Api::<RoleBinding>::namespaced(s.client.clone(), &s.ns),
    );
    let all = ListParams::default();
    bindings
        .delete_collection(&DeleteParams::default(), &all)
        .await
        .expect("delete bindings");
    roles
        .delete_collection(&DeleteParams::default(), &all)
        .await
        .expect("delete roles");
    quarantined_holding(&s, 5, "an empty list is held").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        census(&s, &people).await,
        (5, 5, 5),
        "not one account touched: the budget's first two are not spent on an empty source"
    );

    // A person who meant it approves: what was held goes, and its evidence names them.
    let approver = s.approve("scim", "roster.dev/approve-removals").await;
    s.eventually(
        "every account disabled and stripped after approval",
        || async { census(&s, &people).await == (0, 0, 0) },
    )
    .await;
    // The record is written after the read-back that follows the write, so the app can
    // show the last disable a moment before the log does.
    let connector = format!("connector={}/scim", s.ns);
    let disabled = || -> Vec<String> {
        s.log()
            .lines()
            .filter(|l| l.contains("roster::audit") && l.contains(&connector))
            .filter(|l| l.contains("action=\"Disabled\""))
            .map(str::to_owned)
            .collect()
    };
    s.eventually("one audit record per disable", || async {
        disabled().len() >= 5
    })
    .await;
    let released = disabled();
    assert_eq!(released.len(), 5, "one record per disable: {released:#?}");
    for line in &released {
        assert!(
            line.contains(&format!("approved_by=\"{approver}\"")) && line.contains("approved_at="),
            "the release names its approver: {line}"
        );
    }
}

#[tokio::test]
async fn a_deleted_role_strips_only_what_the_revocation_budget_allows() {
    let s = Scenario::new("delrole", serde_json::from_str(BUDGETS).expect("json")).await;
    let people = five_in_staff(&s, "dr").await;

    // One Role of two goes: everyone keeps the account and `staff`, and would lose `extra`.
    Api::<Role>::namespaced(s.client.clone(), &s.ns)
        .delete("extra", &Default::default())
        .await
        .expect("delete role");
    quarantined_holding(&s, 3, "accounts stripped of entitlements").await;
    s.eventually("two stripped of extra, three untouched", || async {
        census(&s, &people).await == (5, 5, 3)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(census(&s, &people).await, (5, 5, 3), "held, and stays held");
}

#[tokio::test]
async fn deleting_every_identity_disables_only_what_the_deletion_budget_allows() {
    let s = Scenario::new("delall", serde_json::from_str(BUDGETS).expect("json")).await;
    let people = five_in_staff(&s, "da").await;

    // `kubectl delete identities --all`, for this suite's people (the cluster is shared
    // with other tests; per Connector it is the same).
    let names: Vec<String> = (0..5).map(|i| format!("da-{i}")).collect();
    for name in &names {
        s.identities()
            .delete(name, &Default::default())
            .await
            .expect("delete identity");
    }
    quarantined_holding(&s, 3, "").await;
    // The breaker trips on the third while the second, within the budget, may still be
    // on its way downstream: wait for the two, then see that nothing more goes.
    s.eventually("two removed within the budgets", || async {
        census(&s, &people).await == (3, 3, 3)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        census(&s, &people).await,
        (3, 3, 3),
        "two removed within the budgets, three held before any write"
    );
    s.eventually(
        "the two removed are released, the three held wait with their finalizer",
        || async {
            let left = s
                .identities()
                .list(&ListParams::default())
                .await
                .expect("list")
                .items
                .into_iter()
                .filter(|i| names.contains(&kube::ResourceExt::name_any(i)))
                .count();
            left == 3
        },
    )
    .await;
}
