//! Receipts that cannot be fooled: access is judged by the username, whoever owns the
//! account, on the real scim2-server.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::lifecycle::Scenario;

#[tokio::test]
async fn a_leaver_whose_mark_was_removed_downstream_is_not_verified_gone() {
    let s = Scenario::new("receipt", json!({})).await;
    let staff = s.scim.group("staff").await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["rc-ada"]}}),
    )
    .await;
    s.identity("rc-ada", json!({"username": "rc.ada"})).await;
    s.eventually("ada provisioned", || async {
        s.scim_user("rc.ada")
            .await
            .is_some_and(|(_, g)| g == ["staff"])
    })
    .await;

    // Someone downstream re-keys the account to the HR system: Roster's mark is gone, the
    // account still works.
    let (user, _) = s.scim_user("rc.ada").await.expect("user");
    let id = user["id"].as_str().expect("id").to_owned();
    s.scim
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "externalId", "value": "hr-4711"}]),
        )
        .await;
    s.identities()
        .patch(
            "rc-ada",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "Terminated"}})),
        )
        .await
        .expect("terminate");

    let key = format!("{}/scim", s.ns);
    s.eventually("the receipt names the exception, unverified", || async {
        let i = s.get("rc-ada").await;
        let receipt = i.status.and_then(|st| st.deprovisioning);
        receipt.is_some_and(|r| {
            r.connectors.iter().any(|c| {
                c.connector == key
                    && c.verified_at.is_none()
                    && c.exception
                        .as_deref()
                        .is_some_and(|e| e.contains("still has access"))
            })
        })
    })
    .await;
    let (user, groups) = s.scim_user("rc.ada").await.expect("user");
    assert_eq!(
        (user["active"].clone(), groups, user["externalId"].clone()),
        (json!(true), vec!["staff".to_owned()], json!("hr-4711")),
        "an account Roster does not own is left alone"
    );

    // A person disables it and takes the group away: the next look verifies the receipt.
    s.scim
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    s.scim
        .patch(
            &format!("/Groups/{staff}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
        )
        .await;
    // It is looked at every 20 s; generous, for a shared operator under load.
    s.eventually_within(
        "verified once the person acted",
        Duration::from_secs(90),
        || async {
            let i = s.get("rc-ada").await;
            i.status.and_then(|st| st.deprovisioning).is_some_and(|r| {
                r.connectors
                    .iter()
                    .any(|c| c.connector == key && c.verified_at.is_some() && c.exception.is_none())
            })
        },
    )
    .await;
}
