//! Changes made directly in the SCIM app, found by the Connector's inventory scan: fixed
//! in `Enforce`, only reported in `Observe`; a member Roster did not add is removed only
//! where membership is `Authoritative`, and otherwise reported and left in place.

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use roster::api::{Connector, Identity, conditions};
use serde_json::json;

use crate::lifecycle::Scenario;

async fn connector(s: &Scenario) -> Connector {
    Api::<Connector>::namespaced(s.client.clone(), &s.ns)
        .get("scim")
        .await
        .expect("connector")
}

async fn set_mode(s: &Scenario, mode: &str) {
    Api::<Connector>::namespaced(s.client.clone(), &s.ns)
        .patch(
            "scim",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": mode}})),
        )
        .await
        .expect("set mode");
}

/// Group ids by name.
async fn group_id(s: &Scenario, name: &str) -> String {
    let groups = s.scim.get("/Groups").await;
    groups["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["displayName"] == name)
        .and_then(|g| g["id"].as_str().map(str::to_owned))
        .expect("group")
}

async fn setup(prefix: &str, person: &str, username: &str, membership: &str) -> (Scenario, String) {
    let s = Scenario::new(
        prefix,
        json!({"pollIntervalSeconds": 10, "membership": membership}),
    )
    .await;
    s.groups(&["eng"]).await;
    s.role("eng", &["eng"]).await;
    s.binding(
        "eng",
        json!({"role": "eng", "subjects": {"identities": [person]}}),
    )
    .await;
    s.identity(person, json!({"username": username})).await;
    s.eventually("the joiner in eng", || async {
        s.scim_user(username)
            .await
            .is_some_and(|(_, g)| g == ["eng"])
    })
    .await;
    let eng = group_id(&s, "eng").await;
    (s, eng)
}

#[tokio::test]
async fn enforce_removes_strangers_and_restores_removed_grants() {
    let (s, eng) = setup("drift-enforce", "de-ada", "de.ada", "Authoritative").await;
    let ada = s.scim.find_user("de.ada").await.expect("ada")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mallory = s.scim.user("de.mallory").await;
    s.scim
        .patch(
            &format!("/Groups/{eng}"),
            json!([
                {"op": "add", "path": "members", "value": [{"value": mallory}]},
                {"op": "remove", "path": format!("members[value eq \"{ada}\"]")}
            ]),
        )
        .await;
    s.eventually("the stranger removed and ada's grant restored", || async {
        let mallory_out = s
            .scim_user("de.mallory")
            .await
            .is_some_and(|(_, g)| g.is_empty());
        let ada_back = s
            .scim_user("de.ada")
            .await
            .is_some_and(|(_, g)| g == ["eng"]);
        mallory_out && ada_back
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(s.client.clone(), &s.ns);
    s.eventually("a RevokedStray Event on the Connector", || async {
        events.list(&Default::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some("RevokedStray")
                    && e.note.as_deref().is_some_and(|n| n.contains("de.mallory"))
            })
        })
    })
    .await;
}

#[tokio::test]
async fn observe_only_reports() {
    let (s, eng) = setup("drift-observe", "do-bob", "do.bob", "Authoritative").await;
    set_mode(&s, "Observe").await;
    let bob = s.scim.find_user("do.bob").await.expect("bob")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mallory = s.scim.user("do.mallory").await;
    s.scim
        .patch(
            &format!("/Groups/{eng}"),
            json!([
                {"op": "add", "path": "members", "value": [{"value": mallory}]},
                {"op": "remove", "path": format!("members[value eq \"{bob}\"]")}
            ]),
        )
        .await;
    s.eventually("the Connector reports both, Drifted", || async {
        let c = connector(&s).await;
        let st = c.status.unwrap_or_default();
        let drifted = conditions::find(&st.conditions, conditions::DRIFTED)
            .is_some_and(|c| c.status == "True");
        let stranger = st.drift.iter().any(|d| d.contains("do.mallory"));
        let lost = st.drift.iter().any(|d| d.contains("do-bob"));
        drifted && stranger && lost
    })
    .await;
    s.eventually("the identity reports the missing grant", || async {
        let i: Identity = s.get("do-bob").await;
        let st = i.status.unwrap_or_default();
        st.accounts
            .iter()
            .any(|a| a.drift.iter().any(|d| d.contains("lacks \"eng\"")))
            && conditions::find(&st.conditions, conditions::DRIFTED)
                .is_some_and(|c| c.status == "True")
    })
    .await;
    // Nothing was changed downstream.
    assert_eq!(
        s.scim_user("do.mallory").await.map(|(_, g)| g),
        Some(vec!["eng".to_owned()])
    );
    assert_eq!(s.scim_user("do.bob").await.map(|(_, g)| g), Some(vec![]));
}

#[tokio::test]
async fn additive_membership_keeps_a_member_roster_did_not_add_and_reports_it() {
    let (s, eng) = setup("drift-additive", "da-ada", "da.ada", "Additive").await;
    let carol = s.scim.user("da.carol").await;
    s.scim
        .patch(
            &format!("/Groups/{eng}"),
            json!([{"op": "add", "path": "members", "value": [{"value": carol}]}]),
        )
        .await;
    s.eventually(
        "the Connector reports the member it did not add",
        || async {
            let st = connector(&s).await.status.unwrap_or_default();
            let listed = st
                .unowned_members
                .iter()
                .any(|m| m.username == "da.carol" && m.entitlement == "eng");
            let counted = st.inventory.is_some_and(|i| i.unowned_members == 1);
            listed && counted
        },
    )
    .await;
    // Two more scans later the member is still there: nothing revoked it.
    let key = format!("{}/scim", s.ns);
    let scans = || {
        s.log()
            .lines()
            .filter(|l| l.contains("inventory scanned") && l.contains(&key))
            .count()
    };
    let before = scans();
    s.eventually("two more scans", || async { scans() >= before + 2 })
        .await;
    assert_eq!(
        s.scim_user("da.carol").await.map(|(_, g)| g),
        Some(vec!["eng".to_owned()]),
        "an unowned member of a managed group survives under Additive"
    );
}
