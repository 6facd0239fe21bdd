//! Bounded connectors on the real PostgreSQL server and apiserver: a Role naming
//! privileged entitlements — a SUPERUSER role, a role that reaches CREATEROLE through
//! membership, a login role, `cluster-admin`, a ClusterRole allowing `escalate` — grants
//! only the ordinary ones; the rest are refused with a condition and an Event, and the
//! servers show nothing else changed. Naming one exactly in `allowedEntitlements` lets it
//! through; a pattern does not. Outside the patterns, the Role itself says so.

use k8s_openapi::api::{
    events::v1::Event,
    rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule},
};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use roster::api::{Connector, Role, conditions};
use serde_json::{Value, json};

use crate::{
    four_connectors::the_other_three,
    harness::{apps::make_cluster_role, postgres},
    lifecycle::{Scenario, condition},
};

const STEM: &str = "bnd";

/// The groups `username` is a member of in PostgreSQL, sorted.
async fn pg_groups(username: &str) -> Vec<String> {
    let pg = postgres::server().superuser().await;
    let rows = pg
        .query(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1 ORDER BY 1",
            &[&username],
        )
        .await
        .expect("memberships");
    rows.iter().map(|r| r.get(0)).collect()
}

/// The ClusterRoles bound to user `username`, sorted.
async fn bound(s: &Scenario, username: &str) -> Vec<String> {
    let mut roles: Vec<String> = Api::<ClusterRoleBinding>::all(s.client.clone())
        .list(&ListParams::default())
        .await
        .expect("bindings")
        .items
        .into_iter()
        .filter(|b| {
            b.subjects
                .iter()
                .flatten()
                .any(|x| x.kind == "User" && x.name == username)
        })
        .map(|b| b.role_ref.name)
        .collect();
    roles.sort();
    roles
}

/// Sets the Connector `name`'s `allowedEntitlements`, as an admin would.
async fn allow(s: &Scenario, name: &str, allowed: Value) {
    Api::<Connector>::namespaced(s.client.clone(), &s.ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowedEntitlements": allowed}})),
        )
        .await
        .expect("bounds");
}

#[tokio::test]
async fn privileged_entitlements_are_refused_unless_named_and_nothing_else_changes() {
    let pg = postgres::server().superuser().await;
    pg.batch_execute(&format!(
        "CREATE ROLE {STEM}_read NOLOGIN; CREATE ROLE {STEM}_super NOLOGIN SUPERUSER;
         CREATE ROLE {STEM}_cr NOLOGIN CREATEROLE; CREATE ROLE {STEM}_via NOLOGIN;
         GRANT {STEM}_cr TO {STEM}_via; CREATE ROLE \"{STEM}.someone\" LOGIN"
    ))
    .await
    .expect("PostgreSQL roles");
    let s = Scenario::new(STEM, json!({})).await;
    make_cluster_role(&s.client, "bnd-reader").await;
    let escalating = ClusterRole {
        metadata: ObjectMeta {
            name: Some("bnd-escalator".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["rbac.authorization.k8s.io".into()]),
            resources: Some(vec!["clusterroles".into()]),
            verbs: vec!["escalate".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(s.client.clone())
        .create(&PostParams::default(), &escalating)
        .await
        .expect("escalating ClusterRole");
    the_other_three(&s, &json!({})).await;
    let entitlements = json!([
        {"connector": "pg", "name": format!("{STEM}_read")},
        {"connector": "pg", "name": format!("{STEM}_super")},
        {"connector": "pg", "name": format!("{STEM}_via")},
        {"connector": "pg", "name": format!("{STEM}.someone")},
        {"connector": "k8s", "name": "ClusterRole/bnd-reader"},
        {"connector": "k8s", "name": "ClusterRole/cluster-admin"},
        {"connector": "k8s", "name": "ClusterRole/bnd-escalator"},
    ]);
    s.apply::<Role>(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
        "metadata": {"name": "wide"}, "spec": {"entitlements": entitlements}}))
        .await;
    s.binding(
        "wide",
        json!({"role": "wide", "subjects": {"identities": ["bnd-ada"]}}),
    )
    .await;
    s.identity("bnd-ada", json!({"username": "bnd.ada"})).await;

    s.eventually("only the ordinary grants are made", || async {
        pg_groups("bnd.ada").await == [format!("{STEM}_read")]
            && bound(&s, "bnd.ada").await == ["bnd-reader"]
            && condition(&s.get("bnd-ada").await, conditions::READY)
                .is_some_and(|(_, reason)| reason == "OutsideConnectorBounds")
    })
    .await;
    let ada = s.get("bnd-ada").await;
    let errors: Vec<String> = ada
        .status
        .iter()
        .flat_map(|st| &st.accounts)
        .filter_map(|a| a.error.clone())
        .collect();
    let all = errors.join("\n");
    for why in [
        "\"bnd_super\" has SUPERUSER",
        "\"bnd_via\" through membership of \"bnd_cr\", which has CREATEROLE",
        "\"bnd.someone\" can log in",
        "ClusterRole/cluster-admin is cluster-admin",
        "ClusterRole/bnd-escalator allows verb \"escalate\"",
    ] {
        assert!(all.contains(why), "no {why:?} in:\n{all}");
    }
    let events = Api::<Event>::namespaced(s.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("GrantRefused")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bnd-ada")),
        "no GrantRefused Event on the Identity"
    );

    // Named exactly, a privileged entitlement goes through; a pattern lets through only
    // what is not privileged. (A named SUPERUSER role would still meet PostgreSQL's own
    // refusal: only a superuser may grant one.)
    allow(
        &s,
        "pg",
        json!([format!("{STEM}_*"), format!("{STEM}_via")]),
    )
    .await;
    s.eventually(
        "the named role is granted, the rest still refused",
        || async { pg_groups("bnd.ada").await == [format!("{STEM}_read"), format!("{STEM}_via")] },
    )
    .await;

    // Outside the patterns, the Role says so and no one gets it.
    allow(&s, "k8s", json!(["ClusterRole/view"])).await;
    s.eventually("the Role names what is outside the bounds", || async {
        let role = Api::<Role>::namespaced(s.client.clone(), &s.ns)
            .get("wide")
            .await
            .expect("role");
        role.status
            .and_then(|st| {
                let c = conditions::find(&st.conditions, conditions::READY)?;
                Some(
                    c.reason == "OutsideConnectorBounds"
                        && c.message.contains("k8s/ClusterRole/bnd-reader"),
                )
            })
            .unwrap_or(false)
    })
    .await;
}
