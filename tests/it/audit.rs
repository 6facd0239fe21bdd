//! Audit evidence from a real operator logging JSON, on a real SCIM server: a joiner, a
//! mover and a leaver each leave one record per downstream change — a JSON log line
//! saying what caused it (the RoleBinding and Role, or the Identity's state), what
//! changed, when, and what reading back found — and an Event on the Identity saying
//! the same.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::{Api, api::ListParams};
use serde_json::{Value, json};

use crate::harness::{self, apps, isolated_control_plane, operator::Operator};

const LIMIT: Duration = Duration::from_secs(90);

/// The operator's audit records so far, parsed.
fn records(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "roster::audit")
        .collect()
}

/// The one record of `action` (and `entitlement`, if given); panics unless exactly one.
fn one<'r>(records: &'r [Value], action: &str, entitlement: Option<&str>) -> &'r Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == action)
        .filter(|r| entitlement.is_none_or(|e| r["entitlement"] == e))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {action} {entitlement:?} record, in {records:#?}"
    );
    found[0]
}

fn person(dept: &str, state: &str) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": "au-ada"},
        "spec": {"username": "au.ada", "state": state, "attributes": {"department": dept}}})
}

#[tokio::test]
async fn every_change_leaves_one_record_with_its_cause_and_read_back() {
    let cp = isolated_control_plane("audit");
    let (client, ns, direct) = apps::scim_staff(cp, "au").await;
    for group in ["eng", "ops"] {
        direct.group(group).await;
        let dept = format!(
            "has(identity.attributes.department) && identity.attributes.department == \"{group}\""
        );
        for obj in [
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": format!("{group}-role")},
                "spec": {"entitlements": [{"connector": "scim", "name": group}]}}),
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding", "metadata": {"name": format!("{group}-by-dept")},
                "spec": {"role": format!("{group}-role"), "subjects": {"expression": dept}}}),
        ] {
            harness::apply(&client, &ns, obj).await;
        }
    }
    let op = Operator::start_with(&cp.kubeconfig, "info", &[("ROSTER_LOG_FORMAT", "json")]);
    let groups_of_ada = || async {
        let (user, groups) = direct.user_with_groups("au.ada").await?;
        Some((user["active"] == true, groups))
    };

    // Joiner: created, then granted staff and eng, each by its own binding.
    harness::apply(&client, &ns, person("eng", "Active")).await;
    let joined = Some((true, vec!["eng".to_owned(), "staff".to_owned()]));
    op.eventually("the joiner provisioned", LIMIT, || async {
        groups_of_ada().await == joined
    })
    .await;
    // Mover: eng goes (no binding grants it now), ops comes by its binding.
    harness::apply(&client, &ns, person("ops", "Active")).await;
    let moved = Some((true, vec!["ops".to_owned(), "staff".to_owned()]));
    op.eventually("the mover moved", LIMIT, || async {
        groups_of_ada().await == moved
    })
    .await;
    // Leaver: disabled and stripped because the Identity is Terminated.
    harness::apply(&client, &ns, person("ops", "Terminated")).await;
    op.eventually("the leaver deprovisioned", LIMIT, || async {
        groups_of_ada().await == Some((false, Vec::new()))
    })
    .await;
    // The last read-back is logged just after the app shows the change.
    op.eventually("the leaver's records", LIMIT, || async {
        records(&op.log())
            .iter()
            .filter(|r| r["action"] == "Revoked")
            .count()
            == 3
    })
    .await;

    let all: Vec<Value> = records(&op.log())
        .into_iter()
        .filter(|r| r["identity"] == "au-ada")
        .collect();
    let connector = format!("{ns}/scim");
    for r in &all {
        assert_eq!(r["connector"], connector.as_str(), "{r}");
        assert_eq!(r["account"], "au.ada", "{r}");
        assert_eq!(r["outcome"], "ok", "{r}");
        assert_eq!(r["read_back"], "confirmed", "read back after the pass: {r}");
        assert!(
            r["time"]
                .as_str()
                .is_some_and(|t| t.parse::<k8s_openapi::jiff::Timestamp>().is_ok()),
            "{r}"
        );
    }
    let by = |binding: &str, role: &str| format!("{ns}/{binding} (Role {role})");
    let created = one(&all, "Created", None);
    assert_eq!(created["cause"], "Granted");
    let granted_by = created["granted_by"].as_str().unwrap_or_default();
    assert!(
        granted_by.contains(&by("staff", "staff"))
            && granted_by.contains(&by("eng-by-dept", "eng-role")),
        "{created}"
    );
    assert_eq!(
        one(&all, "Granted", Some("eng"))["granted_by"],
        by("eng-by-dept", "eng-role")
    );
    assert_eq!(
        one(&all, "Granted", Some("staff"))["granted_by"],
        by("staff", "staff")
    );
    assert_eq!(
        one(&all, "Granted", Some("ops"))["granted_by"],
        by("ops-by-dept", "ops-role")
    );
    assert_eq!(
        one(&all, "Revoked", Some("eng"))["cause"],
        "NoLongerGranted"
    );
    for (action, entitlement) in [
        ("Disabled", None),
        ("Revoked", Some("ops")),
        ("Revoked", Some("staff")),
    ] {
        let r = one(&all, action, entitlement);
        assert_eq!(
            (&r["cause"], &r["state"]),
            (&json!("Lifecycle"), &json!("Terminated")),
            "{r}"
        );
    }

    // An Event on the Identity for each record, saying the same.
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("events");
    let notes: Vec<String> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("au-ada"))
        .filter_map(|e| e.note.clone())
        .collect();
    for (change, because) in [
        ("granted \"ops\"", by("ops-by-dept", "ops-role")),
        (
            "revoked \"eng\"",
            "no RoleBinding grants it any longer".to_owned(),
        ),
        (
            "disabled the account",
            "the Identity is Terminated".to_owned(),
        ),
    ] {
        assert!(
            notes.iter().any(|n| n.contains(change)
                && n.contains(&because)
                && n.contains("read back: confirmed")),
            "no Event saying {change} because {because}: {notes:#?}\n{}",
            op.log()
                .lines()
                .filter(|l| l.contains("could not publish"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
