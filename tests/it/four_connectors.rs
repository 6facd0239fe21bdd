//! One person across all four kinds of downstream app — SCIM, LDAP, PostgreSQL and
//! Kubernetes RBAC — driven by the shared operator from one Identity and two Roles. The
//! joiner, mover and leaver each end converged on all four, read back from each server
//! directly (not through Roster's connectors), and the leaver's receipt names every
//! connector.

use std::collections::BTreeSet;

use k8s_openapi::api::{core::v1::Secret, rbac::v1::ClusterRoleBinding};
use kube::{Api, api::ListParams};
use ldap3::{Scope, SearchEntry};
use roster::api::{Connector, Identity, Role, conditions};
use serde_json::{Value, json};

use crate::{
    harness::{
        apps::{self, make_cluster_role},
        ldap, postgres,
    },
    lifecycle::Scenario,
    postgres_connector::role_state,
};

/// What each app shows for a person: enabled or not, and the entitlements held (names
/// as each app spells them, mapped back to their short name, `four-eng` → `eng`).
/// `None`: no account.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    scim: Option<(bool, BTreeSet<String>)>,
    ldap: Option<(bool, BTreeSet<String>)>,
    pg: Option<(bool, BTreeSet<String>)>,
    k8s: BTreeSet<String>,
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The short name of an app's group or role: the test's prefix and a ClusterRole's
/// `-reader` go (`four-eng`, `four_eng`, `four-eng-reader` → `eng`).
fn short(name: &str) -> String {
    let name = name.split_once(['-', '_']).map_or(name, |(_, rest)| rest);
    name.trim_end_matches("-reader").to_owned()
}

/// What each app shows for `user`, read from each server directly.
pub async fn look(s: &Scenario, pg: &tokio_postgres::Client, user: &str) -> Seen {
    let scim = s.scim_user(user).await.map(|(u, groups)| {
        (
            u["active"] != false,
            groups.iter().map(|g| short(g)).collect(),
        )
    });
    let pg_seen = role_state(pg, user)
        .await
        .map(|(login, groups)| (login, groups.iter().map(|g| short(g)).collect()));
    let crbs = Api::<ClusterRoleBinding>::all(s.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list ClusterRoleBindings");
    let k8s = crbs
        .items
        .iter()
        .filter(|b| {
            b.subjects
                .iter()
                .flatten()
                .any(|sub| sub.kind == "User" && sub.name == user)
        })
        .map(|b| short(&b.role_ref.name))
        .collect();
    Seen {
        scim,
        ldap: ldap_look(user).await,
        pg: pg_seen,
        k8s,
    }
}

/// The person's entry (enabled when below the people container) and its groups.
async fn ldap_look(user: &str) -> Option<(bool, BTreeSet<String>)> {
    let mut admin = ldap::server().admin().await;
    let filter = format!("(uid={})", ldap3::ldap_escape(user));
    let mut found = None;
    for (base, active) in [(ldap::PEOPLE, true), (ldap::DISABLED, false)] {
        let res = admin
            .search(base, Scope::OneLevel, &filter, vec!["1.1"])
            .await
            .expect("search people");
        if let Some(e) = res.0.into_iter().next() {
            found = Some((SearchEntry::construct(e).dn, active));
        }
    }
    let (dn, active) = found?;
    let groups = admin
        .search(
            ldap::GROUPS,
            Scope::OneLevel,
            &format!("(member={dn})"),
            vec!["cn"],
        )
        .await
        .expect("search groups")
        .0
        .into_iter()
        .map(SearchEntry::construct)
        .filter_map(|g| g.attrs.get("cn").and_then(|v| v.first()).map(|c| short(c)))
        .collect();
    Some((active, groups))
}

/// What every app should show: enabled or not, holding `held`; Kubernetes has no
/// account, only bindings, so a disabled person there holds nothing.
pub fn expect(active: bool, held: &[&str]) -> Seen {
    let both = Some((active, set(held)));
    Seen {
        scim: both.clone(),
        ldap: both.clone(),
        pg: both,
        k8s: if active { set(held) } else { BTreeSet::new() },
    }
}

/// Who writes the person: a hand-written Identity, or an HR export that an
/// IdentitySource reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// The test applies the Identity itself.
    Identity,
    /// The test writes a CSV export into the ConfigMap `hr`, read by the IdentitySource
    /// `hr`; a leaver's row is taken out of the export, a colleague's stays.
    HrExport,
    /// The test writes the person's entry below `ou=hr-{stem}` of the harness's slapd,
    /// read by the IdentitySource `hr`; a leaver's entry is marked
    /// `employeeType: terminated`, which the source's disabled filter matches.
    Directory,
    /// `scim2-cli`, as the HR system, pushes the person to the IdentitySource `hr`'s
    /// SCIM endpoint: created, moved by a PATCH of the department, deleted as a leaver.
    ScimPush,
}

/// The person the scenario takes through: `{stem}.ada`, Identity `{stem}-ada` (from an
/// HR export: `{stem}.ada`, the name the source derives from the username).
struct Person<'a> {
    stem: &'a str,
    feed: Feed,
}

impl Person<'_> {
    fn user(&self) -> String {
        format!("{}.ada", self.stem)
    }

    fn identity(&self) -> String {
        match self.feed {
            Feed::Identity => format!("{}-ada", self.stem),
            Feed::HrExport | Feed::Directory | Feed::ScimPush => self.user(),
        }
    }
}

async fn person(s: &Scenario, p: &Person<'_>, department: &str, state: &str) {
    let user = p.user();
    match p.feed {
        Feed::Identity => {
            s.identity(
                &p.identity(),
                json!({"username": user, "displayName": "Ada Lovelace", "givenName": "Ada",
                "familyName": "Lovelace", "emails": [format!("{user}@example.com")],
                "attributes": {"department": department}, "state": state}),
            )
            .await
        }
        Feed::HrExport => {
            // A colleague whose row stays: an export with nobody left in it is held by
            // the safeguard, never read as everyone leaving.
            let stem = p.stem;
            let mut csv = format!(
                "user,name,given,family,mail,department\n{stem}.grace,Grace Hopper,Grace,Hopper,,sales\n"
            );
            if state != "Terminated" {
                csv.push_str(&format!(
                    "{user},Ada Lovelace,Ada,Lovelace,{user}@example.com,{department}\n"
                ));
            }
            crate::identity_source::export(s, "hr", &csv).await;
        }
        Feed::Directory => {
            let terminated = state == "Terminated";
            crate::identity_source::ldap::directory_person(p.stem, &user, department, terminated)
                .await;
        }
        Feed::ScimPush => {
            crate::identity_source::scim::hr_person(s, p.stem, &user, department, state).await;
        }
    }
}

/// The IdentitySource `hr` reading the ConfigMap `hr`, mapping the columns
/// [`person`] writes.
async fn hr_source(s: &Scenario) {
    crate::identity_source::export(s, "hr", "user,name,given,family,mail,department\n").await;
    crate::identity_source::source(
        s,
        "hr",
        json!({"username": "user", "displayName": "name", "givenName": "given",
            "familyName": "family", "email": "mail",
            "attributes": {"department": "department"}}),
        json!({}),
    )
    .await;
}

async fn converge(
    s: &Scenario,
    pg: &tokio_postgres::Client,
    p: &Person<'_>,
    what: &str,
    want: Seen,
) {
    // Each new state is printed, so a failure shows how far each app got.
    let last = std::sync::Mutex::new(String::new());
    let user = p.user();
    let took = s
        .eventually(what, || async {
            let seen = look(s, pg, &user).await;
            let shown = format!("{seen:?}");
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if *last != shown {
                eprintln!("{what}: {shown}");
                *last = shown;
            }
            seen == want
        })
        .await;
    eprintln!("{what}: converged on all four in {took:?}");
}

/// The LDAP, PostgreSQL and Kubernetes Connectors `ldap`, `pg` and `k8s` beside the
/// Scenario's `scim`, each with the spec fields of `extra` (budgets) merged in.
pub async fn the_other_three(s: &Scenario, extra: &Value) {
    let mut objects = apps::other_three(extra).into_iter();
    if let Some(secret) = objects.next() {
        s.apply::<Secret>(secret).await;
    }
    for connector in objects {
        s.apply::<Connector>(connector).await;
    }
}

#[tokio::test]
async fn one_person_across_scim_ldap_postgres_and_kubernetes() {
    let s = Scenario::new("four", json!({})).await;
    joiner_mover_leaver(&s, "four").await;
}

/// The ClusterRoles the scenario with `stem` grants through its `k8s` Connector.
pub fn cluster_roles(stem: &str) -> [String; 2] {
    ["eng", "fin"].map(|r| format!("{stem}-{r}-reader"))
}

/// One person, `{stem}.ada`, joins engineering, moves to finance and leaves, through
/// Roles that span all four apps; each step converges on every app, read from each
/// server directly, and the leaver's receipt verifies all four. `stem` (no `-` or `_`)
/// keeps the groups and roles of the shared LDAP and PostgreSQL servers apart.
pub async fn joiner_mover_leaver(s: &Scenario, stem: &str) {
    joiner_mover_leaver_from(s, stem, Feed::Identity).await;
}

/// [`joiner_mover_leaver`], the person written by `feed`.
pub async fn joiner_mover_leaver_from(s: &Scenario, stem: &str, feed: Feed) {
    // Downstream groups and roles, made as each app's admin would.
    let server = postgres::server();
    let pg = server.superuser().await;
    pg.batch_execute(&format!(
        "CREATE ROLE {stem}_eng NOLOGIN; CREATE ROLE {stem}_fin NOLOGIN"
    ))
    .await
    .expect("PostgreSQL group roles");
    ldap::make_group(&format!("{stem}-eng")).await;
    ldap::make_group(&format!("{stem}-fin")).await;
    s.groups(&[&format!("{stem}-eng"), &format!("{stem}-fin")])
        .await;
    for role in cluster_roles(stem) {
        make_cluster_role(&s.client, &role).await;
    }

    the_other_three(s, &json!({})).await;

    for (role, dept) in [("eng", "engineering"), ("fin", "finance")] {
        let entitlements = json!([
            {"connector": "scim", "name": format!("{stem}-{role}")},
            {"connector": "ldap", "name": format!("{stem}-{role}")},
            {"connector": "pg", "name": format!("{stem}_{role}")},
            {"connector": "k8s", "name": format!("ClusterRole/{stem}-{role}-reader")},
        ]);
        s.apply::<Role>(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
            "metadata": {"name": role}, "spec": {"entitlements": entitlements}}))
            .await;
        let expr = format!(
            "identity.username.startsWith(\"{stem}.\") && has(identity.attributes.department) && identity.attributes.department == \"{dept}\""
        );
        s.binding(
            role,
            json!({"role": role, "subjects": {"expression": expr}}),
        )
        .await;
    }

    match feed {
        Feed::Identity => {}
        Feed::HrExport => hr_source(s).await,
        Feed::Directory => crate::identity_source::ldap::directory_source(s, stem).await,
        Feed::ScimPush => crate::identity_source::scim::push_source(s, "hr", json!({})).await,
    }
    let p = Person { stem, feed };
    person(s, &p, "engineering", "Active").await;
    converge(s, &pg, &p, "joiner", expect(true, &["eng"])).await;
    s.eventually("the identity Synced on four connectors", || async {
        let i: Identity = s.get(&p.identity()).await;
        i.status.is_some_and(|st| {
            st.accounts.len() == 4
                && conditions::find(&st.conditions, conditions::SYNCED)
                    .is_some_and(|c| c.status == "True")
        })
    })
    .await;

    person(s, &p, "finance", "Active").await;
    converge(s, &pg, &p, "mover", expect(true, &["fin"])).await;

    person(s, &p, "finance", "Terminated").await;
    converge(s, &pg, &p, "leaver", expect(false, &[])).await;
    s.eventually(
        "the receipt lists all four connectors, verified",
        || async {
            let i = s.get(&p.identity()).await;
            let Some(receipt) = i.status.and_then(|st| st.deprovisioning) else {
                return false;
            };
            let verified: BTreeSet<String> = receipt
                .connectors
                .iter()
                .filter(|c| c.revoked_at.is_some() && c.verified_at.is_some())
                .map(|c| c.connector.clone())
                .collect();
            verified
                == ["k8s", "ldap", "pg", "scim"]
                    .map(|c| format!("{}/{c}", s.ns))
                    .into()
        },
    )
    .await;
}
