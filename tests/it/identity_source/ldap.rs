//! IdentitySources reading the harness's slapd: people below an HR container join,
//! move and leave through every app, and a filter that matches nobody, or does not
//! parse, deprovisions nobody.

use std::collections::HashSet;

use ldap3::Mod;
use roster::api::{IdentitySource, LifecycleState, conditions};
use serde_json::{Value, json};

use super::{active_downstream, all_joined, condition_is, scim_scenario, state_of, status, users};
use crate::{
    four_connectors::{Feed, joiner_mover_leaver_from},
    harness::ldap,
    lifecycle::Scenario,
};

/// The container of the HR people of the test `stem` in the harness's slapd, made on
/// first use.
async fn hr_ou(stem: &str) -> String {
    let ou = format!("ou=hr-{stem},{}", ldap::SUFFIX);
    let mut admin = ldap::server().admin().await;
    let res = admin
        .add(
            &ou,
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from([format!("hr-{stem}").as_str()])),
            ],
        )
        .await
        .expect("add the HR container");
    // 68: it exists already.
    assert!(res.rc == 0 || res.rc == 68, "add {ou}: {res:?}");
    ou
}

/// Writes `user`'s entry below the HR container of `stem`, as the HR directory would:
/// in `department`, and `employeeType: terminated` once they left.
pub async fn directory_person(stem: &str, user: &str, department: &str, terminated: bool) {
    let ou = hr_ou(stem).await;
    let dn = format!("uid={},{ou}", ldap3::dn_escape(user));
    let kind = if terminated { "terminated" } else { "employee" };
    let mut admin = ldap::server().admin().await;
    let added = admin
        .add(
            &dn,
            vec![
                ("objectClass", HashSet::from(["inetOrgPerson"])),
                ("uid", HashSet::from([user])),
                ("cn", HashSet::from(["Ada Lovelace"])),
                ("sn", HashSet::from(["Lovelace"])),
                (
                    "mail",
                    HashSet::from([format!("{user}@example.com").as_str()]),
                ),
                ("departmentNumber", HashSet::from([department])),
                ("employeeType", HashSet::from([kind])),
            ],
        )
        .await
        .expect("add the person");
    if added.rc == 68 {
        let mods = vec![
            Mod::Replace("departmentNumber", HashSet::from([department])),
            Mod::Replace("employeeType", HashSet::from([kind])),
        ];
        let res = admin.modify(&dn, mods).await.expect("modify the person");
        assert_eq!(res.rc, 0, "modify {dn}: {res:?}");
    } else {
        assert_eq!(added.rc, 0, "add {dn}: {added:?}");
    }
}

/// The IdentitySource `hr` reading the people below the HR container of `stem`, and a
/// colleague there whose entry stays.
pub async fn directory_source(s: &Scenario, stem: &str) {
    directory_person(stem, &format!("{stem}.grace"), "sales", false).await;
    let ou = hr_ou(stem).await;
    source_of(
        s,
        "hr",
        directory(&ou, None),
        directory_mapping(),
        json!({}),
    )
    .await;
}

/// An `ldap` backend reading the people below `ou`, as Roster's bind DN (the Secret
/// `creds` the other three Connectors use).
fn directory(ou: &str, filter: Option<&str>) -> Value {
    json!({"url": ldap::server().url(), "allowPlaintext": true, "bindDn": ldap::ROSTER_DN,
        "bindPasswordSecretRef": {"name": "creds", "key": "ldap"}, "baseDn": ou,
        "filter": filter.unwrap_or("(objectClass=inetOrgPerson)"),
        "disabledFilter": "(employeeType=terminated)", "pageSize": 2})
}

fn directory_mapping() -> Value {
    json!({"username": "uid", "displayName": "cn", "familyName": "sn", "email": "mail",
        "attributes": {"department": "departmentNumber"}})
}

/// The IdentitySource `name` with the `ldap` backend `directory`.
async fn source_of(s: &Scenario, name: &str, directory: Value, mapping: Value, extra: Value) {
    let mut spec = json!({"ldap": directory, "pollSeconds": 5, "mapping": mapping});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    s.apply::<IdentitySource>(json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "IdentitySource", "metadata": {"name": name}, "spec": spec}))
        .await;
}

#[tokio::test]
async fn an_ldap_directory_takes_a_person_through_four_apps() {
    let s = Scenario::new("hrldap", json!({})).await;
    joiner_mover_leaver_from(&s, "hrldap", Feed::Directory).await;
    let st = status(&s, "hr").await;
    assert_eq!((st.rows, st.identities), (1, 2), "{st:?}");
}

#[tokio::test]
async fn an_ldap_filter_that_matches_nobody_deprovisions_nobody() {
    let s = scim_scenario("hrnobody").await;
    let workers = users("hrnobody", 3);
    for w in &workers {
        directory_person("hrnobody", w, "engineering", false).await;
    }
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"ldap": ldap::ROSTER_PASSWORD}});
    s.apply::<k8s_openapi::api::core::v1::Secret>(secret).await;
    let ou = hr_ou("hrnobody").await;
    let generous =
        json!({"safeguard": {"maxRemovals": 1000, "maxPercent": 100, "windowSeconds": 3600}});
    source_of(
        &s,
        "hr",
        directory(&ou, None),
        mapping_ldap(),
        generous.clone(),
    )
    .await;
    s.eventually("three joiners from the directory", || {
        all_joined(&s, &workers)
    })
    .await;

    // A filter with a typo matches no one: held, and nobody leaves.
    let typo = directory(&ou, Some("(objectClass=inetOrgPersn)"));
    source_of(&s, "hr", typo, mapping_ldap(), generous.clone()).await;
    s.eventually("the empty directory read is held", || {
        condition_is(&s, "hr", "Quarantined", ("True", "EmptySource"))
    })
    .await;
    for w in &workers {
        assert_eq!(state_of(&s, w).await, LifecycleState::Active, "{w}");
        assert!(active_downstream(&s, w).await, "{w} lost access");
    }

    // A filter that does not parse is refused as a read, and changes nothing either.
    let broken = directory(&ou, Some("(objectClass=inetOrgPerson"));
    source_of(&s, "hr", broken, mapping_ldap(), generous).await;
    s.eventually("the malformed filter is refused", || async {
        let st = status(&s, "hr").await;
        conditions::find(&st.conditions, conditions::SYNCED).is_some_and(|c| {
            (c.status.as_str(), c.reason.as_str()) == ("False", "InvalidConfig")
                && c.message.contains("filter")
        })
    })
    .await;
    assert!(all_joined(&s, &workers).await);
}

/// [`mapping`] in LDAP's attribute names.
fn mapping_ldap() -> Value {
    json!({"username": "uid", "attributes": {"department": "departmentNumber"}})
}
