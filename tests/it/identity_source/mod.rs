//! IdentitySources on the real apiserver: an HR export in a ConfigMap (here) or from a
//! URL ([`download`]), people in the harness's slapd ([`ldap`]) or pushed over SCIM
//! ([`scim`]) drive joiners, movers and leavers through every app, and a broken source — emptied, truncated, a filter matching nobody, dripping
//! leavers — is held by the safeguard with nobody deprovisioned.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use roster::api::{IdentitySource, IdentitySourceStatus, LifecycleState, conditions};
use serde_json::{Value, json};

use crate::{
    four_connectors::{Feed, joiner_mover_leaver_from},
    lifecycle::Scenario,
};

pub mod download;
pub mod ldap;
pub mod scim;
pub mod succession;

/// The column names [`people`] writes, mapped.
fn mapping() -> Value {
    json!({"username": "user", "attributes": {"department": "department"}})
}

/// A CSV export of `users`, all in engineering.
fn people(users: &[String]) -> String {
    let mut csv = "user,department\n".to_owned();
    for u in users {
        csv.push_str(&format!("{u},engineering\n"));
    }
    csv
}

/// Writes `csv` as the key `workers.csv` of the ConfigMap `name`.
pub async fn export(s: &Scenario, name: &str, csv: &str) {
    export_in(&s.client, &s.ns, name, csv).await;
}

/// [`export`] in the namespace `ns`.
pub async fn export_in(client: &kube::Client, ns: &str, name: &str, csv: &str) {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"workers.csv": csv}});
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("it").force(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply ConfigMap {name}: {e}"));
}

/// The IdentitySource `name` reading the ConfigMap `name` every 5 s, with `mapping`
/// and the spec fields of `extra` (a safeguard) merged in.
pub async fn source(s: &Scenario, name: &str, mapping: Value, extra: Value) {
    source_in(&s.client, &s.ns, name, mapping, extra).await;
}

/// [`source`] in the namespace `ns`.
pub async fn source_in(client: &kube::Client, ns: &str, name: &str, mapping: Value, extra: Value) {
    let mut spec = json!({"hrExport": {"configMap": {"name": name, "key": "workers.csv"}},
        "pollSeconds": 5, "mapping": mapping});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let obj = json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "IdentitySource", "metadata": {"name": name}, "spec": spec});
    Api::<IdentitySource>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("it").force(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply IdentitySource {name}: {e}"));
}

async fn status(s: &Scenario, name: &str) -> IdentitySourceStatus {
    Api::<IdentitySource>::namespaced(s.client.clone(), &s.ns)
        .get(name)
        .await
        .expect("get the IdentitySource")
        .status
        .unwrap_or_default()
}

/// Whether the source's condition `type_` has `status` and `reason`.
async fn condition_is(s: &Scenario, name: &str, type_: &str, want: (&str, &str)) -> bool {
    let st = status(s, name).await;
    conditions::find(&st.conditions, type_)
        .is_some_and(|c| (c.status.as_str(), c.reason.as_str()) == want)
}

/// A SCIM scenario where every identity with a username starting `{prefix}.` and
/// department engineering gets group `{prefix}-eng`.
async fn scim_scenario(prefix: &str) -> Scenario {
    let s = Scenario::new(prefix, json!({})).await;
    let group = format!("{prefix}-eng");
    s.groups(&[&group]).await;
    s.role("eng", &[&group]).await;
    let expr = format!(
        "identity.username.startsWith(\"{prefix}.\") && identity.attributes.department == \"engineering\""
    );
    s.binding(
        "eng",
        json!({"role": "eng", "subjects": {"expression": expr}}),
    )
    .await;
    s
}

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}.w{i}")).collect()
}

/// Whether `user` has an active SCIM account.
async fn active_downstream(s: &Scenario, user: &str) -> bool {
    s.scim_user(user)
        .await
        .is_some_and(|(u, groups)| u["active"] != false && !groups.is_empty())
}

async fn all_joined(s: &Scenario, users: &[String]) -> bool {
    for u in users {
        if !active_downstream(s, u).await {
            return false;
        }
    }
    true
}

async fn state_of(s: &Scenario, name: &str) -> LifecycleState {
    s.get(name).await.spec.state
}

#[tokio::test]
async fn an_hr_export_takes_a_person_through_four_apps() {
    let s = Scenario::new("hrcsv", json!({})).await;
    joiner_mover_leaver_from(&s, "hrcsv", Feed::HrExport).await;
    let st = status(&s, "hr").await;
    assert_eq!((st.rows, st.identities), (1, 2), "{st:?}");
}

#[tokio::test]
async fn an_emptied_or_truncated_export_deprovisions_nobody() {
    let s = scim_scenario("hrempty").await;
    let workers = users("hrempty", 6);
    export(&s, "hr", &people(&workers)).await;
    // Limits that would let everyone go: only the empty-source rule holds them.
    let generous =
        json!({"safeguard": {"maxRemovals": 1000, "maxPercent": 100, "windowSeconds": 3600}});
    source(&s, "hr", mapping(), generous).await;
    s.eventually("six joiners from the export", || all_joined(&s, &workers))
        .await;

    // Truncated mid-row: refused whole, nothing changes.
    let mut cut = people(&workers);
    cut.truncate(cut.len() - 15);
    export(&s, "hr", &cut).await;
    s.eventually("the truncated export is refused", || {
        condition_is(&s, "hr", "Synced", ("False", "MalformedCsv"))
    })
    .await;
    assert!(
        all_joined(&s, &workers).await,
        "a truncated export made a leaver"
    );

    // Emptied: held, whatever the limits, and said so.
    export(&s, "hr", "user,department\n").await;
    s.eventually("the empty export is held", || {
        condition_is(&s, "hr", "Quarantined", ("True", "EmptySource"))
    })
    .await;
    let st = status(&s, "hr").await;
    assert_eq!(st.quarantine.map(|q| q.held_count), Some(6));
    for w in &workers {
        assert_eq!(state_of(&s, w).await, LifecycleState::Active, "{w}");
        assert!(active_downstream(&s, w).await, "{w} lost access");
    }

    // The export comes back whole: the hold clears and nobody ever left.
    export(&s, "hr", &people(&workers)).await;
    s.eventually("the hold clears", || {
        condition_is(&s, "hr", "Quarantined", ("False", "WithinSafeguard"))
    })
    .await;
    assert!(all_joined(&s, &workers).await);
}

#[tokio::test]
async fn a_slow_drip_of_leavers_trips_the_safeguard_until_approved() {
    let s = scim_scenario("hrdrip").await;
    let workers = users("hrdrip", 5);
    export(&s, "hr", &people(&workers)).await;
    let safeguard =
        json!({"safeguard": {"maxRemovals": 2, "maxPercent": 100, "windowSeconds": 3600}});
    source(&s, "hr", mapping(), safeguard).await;
    s.eventually("five joiners", || all_joined(&s, &workers))
        .await;

    // One leaver a read: the first two fit the window, the third does not.
    for gone in 1..=2 {
        export(&s, "hr", &people(&workers[gone..])).await;
        let leaver = workers[gone - 1].clone();
        s.eventually(&format!("leaver {gone} deprovisioned"), || async {
            !active_downstream(&s, &leaver).await
        })
        .await;
    }
    export(&s, "hr", &people(&workers[3..])).await;
    s.eventually("the third leaver is held", || {
        condition_is(&s, "hr", "Quarantined", ("True", "SafeguardTripped"))
    })
    .await;
    assert_eq!(state_of(&s, &workers[2]).await, LifecycleState::Active);
    assert!(active_downstream(&s, &workers[2]).await);

    s.approve_on::<IdentitySource>("hr", "roster.dev/approve-removals")
        .await;
    s.eventually("the approved leaver is deprovisioned", || async {
        !active_downstream(&s, &workers[2]).await
    })
    .await;
    assert_eq!(state_of(&s, &workers[2]).await, LifecycleState::Terminated);
    assert!(condition_is(&s, "hr", "Quarantined", ("False", "WithinSafeguard")).await);
}

#[tokio::test]
async fn an_identity_the_source_did_not_create_is_a_clash_left_alone() {
    let s = scim_scenario("hrclash").await;
    let [ada, grace] = ["hrclash.ada", "hrclash.grace"].map(str::to_owned);
    s.identity(
        &ada,
        json!({"username": ada, "attributes": {"department": "finance"}}),
    )
    .await;
    export(&s, "hr", &people(&[ada.clone(), grace.clone()])).await;
    source(&s, "hr", mapping(), json!({})).await;
    s.eventually("grace joins from the export", || {
        active_downstream(&s, &grace)
    })
    .await;
    s.eventually("ada's clash is reported", || async {
        status(&s, "hr")
            .await
            .clashes
            .iter()
            .any(|c| c.identity == ada)
    })
    .await;
    let by_hand = s.get(&ada).await;
    assert_eq!(
        by_hand.spec.attributes["department"], "finance",
        "untouched"
    );
    assert!(!by_hand.annotations().contains_key("roster.dev/source"));

    // Nor does the hand-made Identity leave when the export drops it.
    export(&s, "hr", &people(std::slice::from_ref(&grace))).await;
    s.eventually("the source reads the new export", || async {
        status(&s, "hr").await.rows == 1
    })
    .await;
    assert_eq!(state_of(&s, &ada).await, LifecycleState::Active);
}

#[tokio::test]
async fn fields_the_mapping_leaves_out_stay_with_git() {
    let s = scim_scenario("hrgit").await;
    let ada = "hrgit.ada".to_owned();
    export(&s, "hr", &people(std::slice::from_ref(&ada))).await;
    source(&s, "hr", mapping(), json!({})).await;
    s.eventually("ada joins", || active_downstream(&s, &ada))
        .await;
    // Git sets a field the source does not map, under its own field manager.
    let obj = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
        "metadata": {"name": ada}, "spec": {"username": ada,
        "attributes": {"costCenter": "cc-42"}}});
    s.identities()
        .patch(&ada, &PatchParams::apply("argocd"), &Patch::Apply(&obj))
        .await
        .expect("Git's apply");
    // HR moves her: the source's field changes, Git's stays.
    let mut moved = "user,department\n".to_owned();
    moved.push_str(&format!("{ada},research\n"));
    export(&s, "hr", &moved).await;
    s.eventually("the mover is applied", || async {
        s.get(&ada)
            .await
            .spec
            .attributes
            .get("department")
            .map(String::as_str)
            == Some("research")
    })
    .await;
    assert_eq!(s.get(&ada).await.spec.attributes["costCenter"], "cc-42");
}

/// Tries to create the IdentitySource `name` as `client`; the refusal's message if any.
async fn try_source(client: &kube::Client, ns: &str, name: &str) -> Result<(), String> {
    let backend = json!({"hrExport": {"configMap": {"name": "hr", "key": "workers.csv"}}});
    try_source_of(client, ns, name, backend).await
}

/// [`try_source`] with `backend`'s fields in the spec.
async fn try_source_of(
    client: &kube::Client,
    ns: &str,
    name: &str,
    backend: Value,
) -> Result<(), String> {
    let mut spec = json!({"mapping": mapping()});
    if let (Some(spec), Some(backend)) = (spec.as_object_mut(), backend.as_object()) {
        spec.extend(backend.clone());
    }
    let obj: IdentitySource = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "IdentitySource",
        "metadata": {"name": name}, "spec": spec}))
    .expect("an IdentitySource");
    Api::<IdentitySource>::namespaced(client.clone(), ns)
        .create(&Default::default(), &obj)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_source_needs_an_author_who_could_write_identities_and_read_the_export() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};

    use crate::escalation::{as_user, grant, rule};

    let cp = crate::harness::control_plane();
    let admin = cp.client().await;
    let ns = cp.namespace(&admin, "srcauthor").await;
    let sources = rule(
        "identitysources",
        &["get", "create", "update", "patch"],
        &[],
    );
    let read_export = PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        verbs: vec!["get".into()],
        ..PolicyRule::default()
    };
    grant(&admin, &ns, "u-src-only", vec![sources.clone()]).await;
    grant(&admin, &ns, "u-src-blind", vec![sources.clone()]).await;
    grant(&admin, &ns, "u-src-writer", vec![sources, read_export]).await;
    // Writing Identities is cluster-wide: a ClusterRole for the two who may.
    let writer = format!("{ns}-identity-writer");
    let role: ClusterRole = serde_json::from_value(json!({"metadata": {"name": writer},
        "rules": [rule("identities", &["create", "update"], &[])]}))
    .expect("ClusterRole");
    Api::<ClusterRole>::all(admin.clone())
        .create(&Default::default(), &role)
        .await
        .expect("create the ClusterRole");
    let subjects: Vec<Value> = ["u-src-blind", "u-src-writer"]
        .iter()
        .map(|u| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}))
        .collect();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": writer},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": writer},
        "subjects": subjects}))
    .expect("ClusterRoleBinding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&Default::default(), &binding)
        .await
        .expect("create the ClusterRoleBinding");

    let only = as_user(cp, "u-src-only").await;
    let refused = {
        let start = std::time::Instant::now();
        loop {
            match try_source(&only, &ns, "mine").await {
                Err(msg) if msg.contains("may not write IdentitySource") => break msg,
                other if start.elapsed() > std::time::Duration::from_secs(30) => {
                    panic!("the source policy did not refuse within 30 s: {other:?}")
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            }
        }
    };
    assert!(
        refused.contains("create on identities.roster.dev"),
        "{refused}"
    );

    let blind = try_source(&as_user(cp, "u-src-blind").await, &ns, "blind").await;
    let blind = blind.expect_err("a source reading a ConfigMap its author cannot read");
    assert!(blind.contains("get on the ConfigMap"), "{blind}");

    let writer = as_user(cp, "u-src-writer").await;
    try_source(&writer, &ns, "theirs")
        .await
        .expect("an author who could write the Identities by hand");
    // A push source names a token Secret: its author must be able to read that token.
    let push = json!({"scim": {"tokenSecretRef": {"name": "hr-token", "key": "token"}}});
    let tokenless = try_source_of(&writer, &ns, "pushed", push).await;
    let tokenless = tokenless.expect_err("a push source whose token its author cannot read");
    assert!(
        tokenless.contains("get on the Secret holding its push token"),
        "{tokenless}"
    );
    // A download sends a token or password the author must be able to read: else the
    // source would send a Secret they cannot see to a URL they chose.
    let secret = json!({"name": "hr-download", "key": "secret"});
    for (auth, what) in [
        (json!({"tokenSecretRef": secret}), "download token"),
        (
            json!({"basicAuth": {"username": "isu", "passwordSecretRef": secret}}),
            "download password",
        ),
    ] {
        let mut http = json!({"url": "https://hr.example.com/report"});
        if let (Some(http), Some(auth)) = (http.as_object_mut(), auth.as_object()) {
            http.extend(auth.clone());
        }
        let download = json!({"hrExport": {"http": http}});
        let refused = try_source_of(&writer, &ns, "downloaded", download).await;
        let refused = refused.expect_err("a download whose credentials its author cannot read");
        assert!(
            refused.contains(&format!("get on the Secret holding its {what}")),
            "{refused}"
        );
    }
    let open = json!({"hrExport": {"http": {"url": "https://hr.example.com/report"}}});
    try_source_of(&writer, &ns, "open", open)
        .await
        .expect("a download without credentials needs no Secret");
}

#[tokio::test]
async fn computed_fields_come_from_cel_over_the_row() {
    let s = scim_scenario("hrcel").await;
    let csv = "user,first,last,code\nhrcel.ada,Ada,Lovelace,ENG-7\nhrcel.bob,Bob,Byte,SAL-1\n";
    export(&s, "hr", csv).await;
    let computed = |department: &str| {
        json!({"username": "user", "computed": {
            "displayName": "row.first + ' ' + row.last",
            "email": "(row.first + '.' + row.last + '@example.com').lowerAscii()",
            "attributes": {"department": department}}})
    };
    let by_code = "row.code.startsWith('ENG') ? 'engineering' : 'sales'";
    source(&s, "hr", computed(by_code), json!({})).await;
    s.eventually("ada joins through the computed department", || {
        active_downstream(&s, "hrcel.ada")
    })
    .await;
    let ada = s.get("hrcel.ada").await.spec;
    assert_eq!(ada.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(ada.emails, vec!["ada.lovelace@example.com".to_owned()]);
    assert_eq!(
        s.get("hrcel.bob").await.spec.attributes["department"],
        "sales"
    );

    // An expression the export no longer satisfies: the read is not applied to that
    // row, and ada keeps her department and her access.
    let broken = "row.team.startsWith('ENG') ? 'engineering' : 'sales'";
    source(&s, "hr", computed(broken), json!({})).await;
    s.eventually("the rows it fails on are reported", || async {
        status(&s, "hr").await.row_error_count == 2
    })
    .await;
    assert_eq!(
        s.get("hrcel.ada").await.spec.attributes["department"],
        "engineering"
    );
    assert!(active_downstream(&s, "hrcel.ada").await);

    // An expression that cannot be used at all refuses the whole read.
    source(
        &s,
        "hr",
        computed("row.code.replace('E', 'EEEE')"),
        json!({}),
    )
    .await;
    s.eventually("a growing function is refused", || {
        condition_is(&s, "hr", "Synced", ("False", "InvalidExpression"))
    })
    .await;
    assert!(active_downstream(&s, "hrcel.ada").await);

    // A field both mapped and computed is refused by the schema.
    let both = json!({"username": "user", "email": "mail",
        "computed": {"email": "row.mail.lowerAscii()"}});
    let obj: IdentitySource = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "IdentitySource",
        "metadata": {"name": "both"},
        "spec": {"hrExport": {"configMap": {"name": "hr", "key": "workers.csv"}}, "mapping": both}}))
    .expect("an IdentitySource");
    let refused = Api::<IdentitySource>::namespaced(s.client.clone(), &s.ns)
        .create(&Default::default(), &obj)
        .await
        .expect_err("mapped and computed at once");
    assert!(
        refused
            .to_string()
            .contains("either mapped from a column or computed"),
        "{refused}"
    );
}
