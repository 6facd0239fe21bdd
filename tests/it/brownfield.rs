//! Membership authority on a live directory and database: a member of a managed LDAP
//! group or PostgreSQL group role that Roster did not add stays under `Additive` and is
//! reported, and is removed under `Authoritative` with an Event naming it — on slapd and
//! PostgreSQL through the operator, as `drift` shows for SCIM.

use std::collections::HashSet;

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use ldap3::{Mod, Scope};
use roster::api::Role;
use serde_json::json;

use crate::{
    four_connectors::the_other_three,
    harness::{ldap, postgres},
    lifecycle::Scenario,
};

fn set(v: &[&str]) -> HashSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A namespace with LDAP and PostgreSQL Connectors scanning every 10 s under
/// `membership`, the group `{stem}-eng` / role `{stem}_eng` granted to one person, and a
/// stranger an admin added to both by hand. Returns the stranger's username.
async fn brownfield(stem: &str, membership: &str) -> (Scenario, String) {
    let group = format!("{stem}-eng");
    let pg_group = format!("{stem}_eng");
    let stranger = format!("{stem}.stranger");
    ldap::make_group(&group).await;
    let pg = postgres::server().superuser().await;
    pg.batch_execute(&format!(
        "CREATE ROLE {pg_group} NOLOGIN; CREATE ROLE \"{stranger}\" LOGIN; GRANT {pg_group} TO \"{stranger}\""
    ))
    .await
    .expect("PostgreSQL roles");
    let mut admin = ldap::server().admin().await;
    let stranger_dn = format!("uid={stranger},{}", ldap::PEOPLE);
    admin
        .add(
            &stranger_dn,
            vec![
                (
                    "objectClass".to_owned(),
                    set(&["inetOrgPerson", "organizationalPerson", "person"]),
                ),
                ("uid".to_owned(), set(&[&stranger])),
                ("cn".to_owned(), set(&["A Stranger"])),
                ("sn".to_owned(), set(&["Stranger"])),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("the stranger's entry");
    admin
        .modify(
            &format!("cn={group},{}", ldap::GROUPS),
            vec![Mod::Add("member".to_owned(), set(&[&stranger_dn]))],
        )
        .await
        .and_then(|r| r.success())
        .expect("the stranger in the group");

    let s = Scenario::new(stem, json!({})).await;
    the_other_three(
        &s,
        &json!({"pollIntervalSeconds": 10, "membership": membership}),
    )
    .await;
    s.apply::<Role>(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
        "metadata": {"name": "eng"}, "spec": {"entitlements": [
            {"connector": "ldap", "name": group}, {"connector": "pg", "name": pg_group}]}}))
        .await;
    let person = format!("{stem}-ada");
    s.binding(
        "eng",
        json!({"role": "eng", "subjects": {"identities": [person]}}),
    )
    .await;
    s.identity(&person, json!({"username": format!("{stem}.ada")}))
        .await;
    s.eventually("the joiner in both groups", || async {
        ldap_members(&group).await.contains(&format!("{stem}.ada"))
            && pg_members(&pg_group).await.contains(&format!("{stem}.ada"))
    })
    .await;
    (s, stranger)
}

/// The uids of the LDAP group's members.
async fn ldap_members(group: &str) -> HashSet<String> {
    let mut admin = ldap::server().admin().await;
    let (entries, _) = admin
        .search(
            &format!("cn={group},{}", ldap::GROUPS),
            Scope::Base,
            "(objectClass=*)",
            vec!["member"],
        )
        .await
        .expect("search the group")
        .success()
        .expect("the group");
    entries
        .into_iter()
        .map(ldap3::SearchEntry::construct)
        .flat_map(|e| e.attrs.get("member").cloned().unwrap_or_default())
        .filter_map(|dn| {
            dn.strip_prefix("uid=")
                .and_then(|r| r.split(',').next())
                .map(str::to_owned)
        })
        .collect()
}

/// The members of the PostgreSQL group role.
async fn pg_members(group: &str) -> HashSet<String> {
    postgres::server()
        .superuser()
        .await
        .query(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid
             JOIN pg_roles m ON m.oid = a.member WHERE g.rolname = $1",
            &[&group],
        )
        .await
        .expect("members")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test]
async fn additive_keeps_and_reports_unowned_members_on_ldap_and_postgres() {
    let (s, stranger) = brownfield("bfadd", "Additive").await;
    for (name, entitlement) in [("ldap", "bfadd-eng"), ("pg", "bfadd_eng")] {
        s.eventually(&format!("{name} reports the stranger"), || async {
            let st = s.connector_status(name).await;
            st.unowned_members
                .iter()
                .any(|m| m.username == stranger && m.entitlement == entitlement)
                && st.inventory.is_some_and(|i| i.unowned_members == 1)
        })
        .await;
    }
    // Two more scans of each later the stranger is still a member of both.
    let scans = |name: &str| {
        let key = format!("{}/{name}", s.ns);
        s.log()
            .lines()
            .filter(|l| l.contains("inventory scanned") && l.contains(&key))
            .count()
    };
    let before = (scans("ldap"), scans("pg"));
    s.eventually("two more scans of each", || async {
        scans("ldap") >= before.0 + 2 && scans("pg") >= before.1 + 2
    })
    .await;
    assert!(ldap_members("bfadd-eng").await.contains(&stranger));
    assert!(pg_members("bfadd_eng").await.contains(&stranger));
}

#[tokio::test]
async fn authoritative_removes_unowned_members_on_ldap_and_postgres() {
    let (s, stranger) = brownfield("bfauth", "Authoritative").await;
    s.eventually(
        "the stranger removed from both, the person kept",
        || async {
            let (l, p) = (
                ldap_members("bfauth-eng").await,
                pg_members("bfauth_eng").await,
            );
            !l.contains(&stranger)
                && !p.contains(&stranger)
                && l.contains("bfauth.ada")
                && p.contains("bfauth.ada")
        },
    )
    .await;
    let events: Api<Event> = Api::namespaced(s.client.clone(), &s.ns);
    s.eventually("a RevokedStray Event on each Connector", || async {
        let list = events.list(&Default::default()).await.expect("events");
        ["ldap", "pg"].iter().all(|c| {
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some("RevokedStray")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(c)
                    && e.note.as_deref().is_some_and(|n| n.contains(&stranger))
            })
        })
    })
    .await;
}
