//! The four downstream apps together, as tests and the benchmark use them: Connector
//! specs for LDAP, PostgreSQL and Kubernetes beside a SCIM tenant, the groups an admin
//! would make for them, and what each app shows, read from each server directly — never
//! through Roster's connectors.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use ldap3::{Scope, SearchEntry};
use serde_json::{Value, json};

use super::{ldap, postgres, scim};

/// Rules allowing to read pods: something harmless to bind.
pub fn pod_reader() -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["pods".into()]),
        verbs: vec!["get".into(), "list".into()],
        ..PolicyRule::default()
    }]
}

/// Creates the ClusterRole `name`, allowed to read pods.
pub async fn make_cluster_role(client: &Client, name: &str) {
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(pod_reader()),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create ClusterRole");
}

/// `spec` with the fields of `extra` merged in.
fn with_extra(mut spec: Value, extra: &Value) -> Value {
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// The Secret `scim-token` and the Connector `scim` for the SCIM tenant at `base`, its
/// spec with the fields of `extra` merged in.
pub fn scim_connector(base: &str, extra: &Value) -> [Value; 2] {
    let spec = json!({"allowPlaintext": true, "scim": {"baseUrl": base,
        "tokenSecretRef": {"name": "scim-token", "key": "token"}}});
    [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "scim-token"},
            "stringData": {"token": scim::TOKEN}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
            "metadata": {"name": "scim"}, "spec": with_extra(spec, extra)}),
    ]
}

/// The Secret `creds` and the Connectors `ldap`, `pg` and `k8s` for the test servers,
/// each spec with the fields of `extra` (budgets, rate limits) merged in.
pub fn other_three(extra: &Value) -> Vec<Value> {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"ldap": ldap::ROSTER_PASSWORD, "pg": postgres::PASSWORD}});
    let backends = [
        (
            "ldap",
            json!({"allowPlaintext": true, "ldap": {"url": ldap::server().url(),
            "bindDn": ldap::ROSTER_DN, "bindPasswordSecretRef": {"name": "creds", "key": "ldap"},
            "usersDn": ldap::PEOPLE, "groupsDn": ldap::GROUPS, "disabledUsersDn": ldap::DISABLED}}),
        ),
        (
            "pg",
            json!({"allowPlaintext": true, "postgres": {"host": "127.0.0.1",
            "port": postgres::server().port, "username": postgres::ADMIN,
            "passwordSecretRef": {"name": "creds", "key": "pg"}, "sslMode": "Disable"}}),
        ),
        ("k8s", json!({"kubernetes": {}})),
    ];
    let mut out = vec![secret];
    for (name, mut spec) in backends {
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        out.push(
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
            "metadata": {"name": name}, "spec": spec}),
        );
    }
    out
}

/// The entitlement `{stem}-staff` on all four apps, as each spells it: the SCIM and LDAP
/// group `{stem}-staff`, the PostgreSQL role `{stem}_staff`, and the ClusterRole
/// `{stem}-staff-reader`. Returns the Role's entitlements.
pub async fn make_staff(stem: &str, scim: &scim::Direct, client: &Client) -> Value {
    postgres::server()
        .superuser()
        .await
        .batch_execute(&format!("CREATE ROLE {stem}_staff NOLOGIN"))
        .await
        .expect("PostgreSQL group role");
    ldap::make_group(&format!("{stem}-staff")).await;
    scim.group(&format!("{stem}-staff")).await;
    make_cluster_role(client, &format!("{stem}-staff-reader")).await;
    json!([
        {"connector": "scim", "name": format!("{stem}-staff")},
        {"connector": "ldap", "name": format!("{stem}-staff")},
        {"connector": "pg", "name": format!("{stem}_staff")},
        {"connector": "k8s", "name": format!("ClusterRole/{stem}-staff-reader")},
    ])
}

/// Per app, how many people whose username starts with `{stem}.` are enabled and how
/// many hold `{stem}-staff`. Kubernetes has no accounts: only its bindings count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Census {
    pub scim: (usize, usize),
    pub ldap: (usize, usize),
    pub pg: (usize, usize),
    pub k8s: usize,
}

impl Census {
    /// `n` people enabled and holding the staff entitlement everywhere.
    pub fn all(n: usize) -> Self {
        Self {
            scim: (n, n),
            ldap: (n, n),
            pg: (n, n),
            k8s: n,
        }
    }
}

/// Direct connections to the four apps.
pub struct Apps {
    pub scim: scim::Direct,
    pub pg: tokio_postgres::Client,
    pub client: Client,
}

impl Apps {
    /// Connects to the PostgreSQL server; the SCIM tenant and cluster are given.
    pub async fn new(scim: scim::Direct, client: Client) -> Self {
        Self {
            scim,
            pg: postgres::server().superuser().await,
            client,
        }
    }

    /// Counts the `{stem}.` people on every app; on SCIM, members of `{stem}-staff` or of
    /// a group named `{stem}-staff-…`.
    pub async fn census(&self, stem: &str) -> Census {
        self.census_for(stem, "staff").await
    }

    /// [`Apps::census`] for the entitlement `{stem}-{suffix}` (PostgreSQL:
    /// `{stem}_{suffix}`, Kubernetes: `{stem}-{suffix}-reader`).
    pub async fn census_for(&self, stem: &str, suffix: &str) -> Census {
        let (people, group) = (format!("{stem}."), format!("{stem}-{suffix}"));
        let users = self.scim.all_users(&people).await;
        let enabled = users.iter().filter(|u| u["active"] != false).count();
        let ids: std::collections::HashSet<&str> =
            users.iter().filter_map(|u| u["id"].as_str()).collect();
        // The group itself, and its parts (`{group}-d000`…) where people are split.
        let part = format!("{group}-");
        let staff = self.scim.get("/Groups").await["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                g["displayName"]
                    .as_str()
                    .is_some_and(|d| d == group || d.starts_with(&part))
            })
            .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["value"].as_str().map(str::to_owned))
            .filter(|v| ids.contains(v.as_str()))
            .collect::<std::collections::HashSet<_>>()
            .len();
        Census {
            scim: (enabled, staff),
            ldap: ldap_census(&people, &group).await,
            pg: self.pg_census(stem, suffix).await,
            k8s: self
                .bound(&people, &format!("{stem}-{suffix}-reader"))
                .await,
        }
    }

    async fn pg_census(&self, stem: &str, suffix: &str) -> (usize, usize) {
        let row = self
            .pg
            .query_one(
                "SELECT count(*) FILTER (WHERE r.rolcanlogin),
                        count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_auth_members m
                            JOIN pg_roles g ON g.oid = m.roleid
                            WHERE m.member = r.oid AND g.rolname = $2))
                 FROM pg_roles r WHERE starts_with(r.rolname, $1)",
                &[&format!("{stem}."), &format!("{stem}_{suffix}")],
            )
            .await
            .expect("count roles");
        let n = |i: usize| usize::try_from(row.get::<_, i64>(i)).unwrap_or(usize::MAX);
        (n(0), n(1))
    }

    /// Users whose name starts with `people` bound to the ClusterRole `role`.
    async fn bound(&self, people: &str, role: &str) -> usize {
        Api::<ClusterRoleBinding>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list ClusterRoleBindings")
            .items
            .iter()
            .filter(|b| b.role_ref.name == role)
            .flat_map(|b| b.subjects.clone().unwrap_or_default())
            .filter(|sub| sub.kind == "User" && sub.name.starts_with(people))
            .count()
    }
}

/// Entries below the people container (enabled ones) and members of `group`.
async fn ldap_census(people: &str, group: &str) -> (usize, usize) {
    let mut admin = ldap::server().admin().await;
    let filter = format!("(uid={}*)", ldap3::ldap_escape(people));
    let enabled = admin
        .search(ldap::PEOPLE, Scope::OneLevel, &filter, vec!["1.1"])
        .await
        .expect("search people")
        .0
        .len();
    let members = admin
        .search(
            &format!("cn={},{}", ldap3::dn_escape(group), ldap::GROUPS),
            Scope::Base,
            "(objectClass=*)",
            vec!["member"],
        )
        .await
        .expect("search the group")
        .0
        .into_iter()
        .map(SearchEntry::construct)
        .flat_map(|e| e.attrs.get("member").cloned().unwrap_or_default())
        .filter(|dn| dn.starts_with(&format!("uid={people}")))
        .count();
    (enabled, members)
}

/// A namespace on `cp` with a SCIM Connector `scim` on a fresh tenant, whose group
/// `staff` a Role `staff` grants to every `{stem}.*` username; returns the client, the
/// namespace and the tenant.
pub async fn scim_staff(cp: &super::ControlPlane, stem: &str) -> (Client, String, scim::Direct) {
    let client = cp.client().await;
    let ns = cp.namespace(&client, stem).await;
    let base = scim::tenant(stem);
    let direct = scim::Direct::new(&base);
    direct.group("staff").await;
    let expression = format!("identity.username.startsWith(\"{stem}.\")");
    for obj in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"}, "stringData": {"token": scim::TOKEN}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "scim"},
            "spec": {"allowPlaintext": true, "scim": {"baseUrl": base, "tokenSecretRef": {"name": "t", "key": "token"}}}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": "staff"},
            "spec": {"entitlements": [{"connector": "scim", "name": "staff"}]}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding", "metadata": {"name": "staff"},
            "spec": {"role": "staff", "subjects": {"expression": expression}}}),
    ] {
        super::apply(&client, &ns, obj).await;
    }
    (client, ns, direct)
}
