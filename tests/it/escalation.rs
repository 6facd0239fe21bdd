//! No escalation through Roster, on the real apiserver: users with only some RBAC grants
//! (impersonated by the admin) create and change Roles and RoleBindings. What needs
//! `bind` on a Role or `grant` on a Connector they lack is refused by Roster's admission
//! policies, with a message naming the missing permission; the rest is admitted.

use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{PolicyRule, Role as RbacRole, RoleBinding as RbacBinding};
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use roster::api::{Role, RoleBinding};
use serde_json::{Value, json};

use crate::harness::{ControlPlane, control_plane};

/// A client acting as `user` (the admin impersonates it).
pub(crate) async fn as_user(cp: &ControlPlane, user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(&cp.kubeconfig).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some(user.to_owned());
    Client::try_from(config).expect("client")
}

pub(crate) fn rule(resource: &str, verbs: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec!["roster.dev".into()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: (!names.is_empty())
            .then(|| names.iter().map(|n| (*n).to_owned()).collect()),
        ..PolicyRule::default()
    }
}

/// Gives `user` in `ns` the right to write Roles and RoleBindings, and `extra`.
pub(crate) async fn grant(admin: &Client, ns: &str, user: &str, extra: Vec<PolicyRule>) {
    let mut rules = vec![rule("roles", &["get", "create", "update", "patch"], &[])];
    rules.push(rule(
        "rolebindings",
        &["get", "create", "update", "patch"],
        &[],
    ));
    rules.extend(extra);
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        ..ObjectMeta::default()
    };
    let pp = PostParams::default();
    Api::<RbacRole>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &RbacRole {
                metadata: meta(user),
                rules: Some(rules),
            },
        )
        .await
        .expect("RBAC Role");
    let binding: RbacBinding = serde_json::from_value(json!({
        "metadata": {"name": user, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("RBAC binding");
    Api::<RbacBinding>::namespaced(admin.clone(), ns)
        .create(&pp, &binding)
        .await
        .expect("RBAC RoleBinding");
}

fn role(name: &str, entitlements: Value) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": name},
        "spec": {"entitlements": entitlements}})
}

fn binding(name: &str, role: &str, people: &[&str]) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding", "metadata": {"name": name},
        "spec": {"role": role, "subjects": {"identities": people}}})
}

/// Creates (`create`) or merge-patches `obj` as `client`; the refusal's message if any.
async fn attempt(client: &Client, ns: &str, obj: &Value, create: bool) -> Result<(), String> {
    let name = obj["metadata"]["name"].as_str().expect("name");
    let result = match obj["kind"].as_str() {
        Some("Role") => {
            let api = Api::<Role>::namespaced(client.clone(), ns);
            if create {
                let r: Role = serde_json::from_value(obj.clone()).expect("Role");
                api.create(&PostParams::default(), &r).await.map(|_| ())
            } else {
                api.patch(name, &PatchParams::default(), &Patch::Merge(obj))
                    .await
                    .map(|_| ())
            }
        }
        _ => {
            let api = Api::<RoleBinding>::namespaced(client.clone(), ns);
            if create {
                let b: RoleBinding = serde_json::from_value(obj.clone()).expect("RoleBinding");
                api.create(&PostParams::default(), &b).await.map(|_| ())
            } else {
                api.patch(name, &PatchParams::default(), &Patch::Merge(obj))
                    .await
                    .map(|_| ())
            }
        }
    };
    result.map_err(|e| e.to_string())
}

/// One case of the matrix: who does what, and what must happen.
struct Case {
    what: &'static str,
    user: &'static str,
    obj: Value,
    create: bool,
    /// `None`: admitted. `Some(words)`: refused with a message holding every word.
    refused: Option<&'static [&'static str]>,
}

#[tokio::test]
async fn roles_and_bindings_need_bind_grant_or_escalate() {
    let cp = control_plane();
    let admin = cp.client().await;
    let ns = cp.namespace(&admin, "escalation").await;
    let users: [(&str, Vec<PolicyRule>); 6] = [
        ("u-plain", vec![]),
        ("u-bind-viewer", vec![rule("roles", &["bind"], &["viewer"])]),
        ("u-bind-all", vec![rule("roles", &["bind"], &[])]),
        (
            "u-grant-app",
            vec![rule("connectors", &["grant"], &["app"])],
        ),
        ("u-escalate-r4", vec![rule("roles", &["escalate"], &["r4"])]),
        ("u-no-write", vec![]),
    ];
    for (user, extra) in users.into_iter().take(5) {
        grant(&admin, &ns, user, extra).await;
    }
    // What exists before the users act, made by the admin.
    let viewer =
        json!([{"connector": "app", "name": "viewers"}, {"connector": "app", "name": "readers"}]);
    let powerful = json!([{"connector": "other", "name": "admins"}]);
    for obj in [
        role("viewer", viewer),
        role("admin", powerful),
        binding("rb-existing", "viewer", &["ada"]),
    ] {
        attempt(&admin, &ns, &obj, true)
            .await
            .expect("the admin may do anything");
    }
    wait_until_enforced(cp, &ns).await;

    let cases = [
        Case {
            what: "a binding without bind on its Role",
            user: "u-plain",
            obj: binding("rb1", "viewer", &["mallory"]),
            create: true,
            refused: Some(&["u-plain", "bind", "roles.roster.dev viewer"]),
        },
        Case {
            what: "a binding with bind on its Role",
            user: "u-bind-viewer",
            obj: binding("rb2", "viewer", &["mallory"]),
            create: true,
            refused: None,
        },
        Case {
            what: "a binding of a Role other than the one bind names",
            user: "u-bind-viewer",
            obj: binding("rb3", "admin", &["mallory"]),
            create: true,
            refused: Some(&["bind", "roles.roster.dev admin"]),
        },
        Case {
            what: "re-pointing a binding at another Role",
            user: "u-bind-viewer",
            obj: json!({"kind": "RoleBinding", "metadata": {"name": "rb2"}, "spec": {"role": "admin"}}),
            create: false,
            refused: Some(&["bind", "admin"]),
        },
        Case {
            what: "bind on every Role",
            user: "u-bind-all",
            obj: binding("rb4", "admin", &["mallory"]),
            create: true,
            refused: None,
        },
        Case {
            what: "adding oneself to a binding's subjects",
            user: "u-plain",
            obj: json!({"kind": "RoleBinding", "metadata": {"name": "rb-existing"}, "spec": {"subjects": {"identities": ["ada", "mallory"]}}}),
            create: false,
            refused: Some(&["bind", "viewer"]),
        },
        Case {
            what: "a label on a binding, spec unchanged",
            user: "u-plain",
            obj: json!({"kind": "RoleBinding", "metadata": {"name": "rb-existing", "labels": {"team": "a"}}}),
            create: false,
            refused: None,
        },
        Case {
            what: "a Role without grant on its Connector",
            user: "u-plain",
            obj: role("r1", json!([{"connector": "app", "name": "x"}])),
            create: true,
            refused: Some(&[
                "u-plain may not grant app/x",
                "verb grant",
                "connectors.roster.dev app",
                "escalate on roles.roster.dev r1",
            ]),
        },
        Case {
            what: "a Role with grant on its Connector",
            user: "u-grant-app",
            obj: role("r2", json!([{"connector": "app", "name": "x"}])),
            create: true,
            refused: None,
        },
        Case {
            what: "a Role reaching a Connector grant does not name",
            user: "u-grant-app",
            obj: role(
                "r3",
                json!([{"connector": "app", "name": "x"}, {"connector": "other", "name": "y"}]),
            ),
            create: true,
            refused: Some(&["app/x, other/y", "connectors.roster.dev app, other"]),
        },
        Case {
            what: "a Role its author may escalate",
            user: "u-escalate-r4",
            obj: role("r4", json!([{"connector": "other", "name": "y"}])),
            create: true,
            refused: None,
        },
        Case {
            what: "adding a grantable entitlement beside one the author could not grant",
            user: "u-grant-app",
            obj: json!({"kind": "Role", "metadata": {"name": "admin"}, "spec": {"entitlements": [{"connector": "other", "name": "admins"}, {"connector": "app", "name": "z"}]}}),
            create: false,
            refused: None,
        },
        Case {
            what: "making an entitlement Authoritative without grant",
            user: "u-grant-app",
            obj: json!({"kind": "Role", "metadata": {"name": "admin"}, "spec": {"entitlements": [{"connector": "other", "name": "admins", "membership": "Authoritative"}, {"connector": "app", "name": "z"}]}}),
            create: false,
            refused: Some(&["other/admins", "grant"]),
        },
        Case {
            what: "removing an entitlement",
            user: "u-plain",
            obj: json!({"kind": "Role", "metadata": {"name": "viewer"}, "spec": {"entitlements": [{"connector": "app", "name": "viewers"}]}}),
            create: false,
            refused: None,
        },
        Case {
            what: "a Role's description, entitlements unchanged",
            user: "u-plain",
            obj: json!({"kind": "Role", "metadata": {"name": "viewer"}, "spec": {"description": "read only"}}),
            create: false,
            refused: None,
        },
        Case {
            what: "no RBAC grant at all",
            user: "u-no-write",
            obj: role("r5", json!([{"connector": "app", "name": "x"}])),
            create: true,
            refused: Some(&["forbidden"]),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let client = as_user(cp, case.user).await;
        let got = attempt(&client, &ns, &case.obj, case.create).await;
        let ok = match (&got, case.refused) {
            (Ok(()), None) => true,
            (Err(msg), Some(words)) => words.iter().all(|w| msg.contains(w)),
            _ => false,
        };
        eprintln!(
            "{} {}: {got:?}",
            if ok { "ok  " } else { "FAIL" },
            case.what
        );
        if !ok {
            failures.push(format!(
                "{}: expected refused={:?}, got {got:?}",
                case.what, case.refused
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The policies take effect a moment after they are created: waits (bounded) until a
/// refusal comes back.
async fn wait_until_enforced(cp: &ControlPlane, ns: &str) {
    let client = as_user(cp, "u-plain").await;
    let probe = binding("rb-probe", "viewer", &["nobody"]);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        match attempt(&client, ns, &probe, true).await {
            Err(msg) if msg.contains("may not bind") => return,
            Ok(()) => {
                Api::<RoleBinding>::namespaced(cp.client().await, ns)
                    .delete("rb-probe", &Default::default())
                    .await
                    .expect("delete the probe");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the admission policies did not take effect within 30 s");
}
