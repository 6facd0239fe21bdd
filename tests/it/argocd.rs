//! The Argo CD health checks (`deploy/argocd/health`), run in gopher-lua — the Lua
//! runtime Argo CD embeds — on sample objects covering every outcome; and the argocd-cm
//! patch and Argo CD chart values that carry them, which must hold the scripts as they
//! are (`ROSTER_WRITE_ARGOCD=1 cargo test --test it argocd` rewrites both).

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use serde_json::{Value, json};

/// The kinds, and the script (after `common.lua`) that judges each.
const KINDS: [(&str, &str); 5] = [
    ("Identity", "identity.lua"),
    ("Connector", "connector.lua"),
    ("Role", "ready.lua"),
    ("RoleBinding", "ready.lua"),
    ("IdentitySource", "identitysource.lua"),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd")
}

/// The whole check for `script`, as Argo CD is given it.
fn check(script: &str) -> String {
    let read = |f: &str| std::fs::read_to_string(dir().join("health").join(f)).expect("script");
    format!("{}\n{}", read("common.lua"), read(script))
}

/// What the check of `kind` says of `obj`: (status, message).
fn health(kind: &str, obj: &Value) -> (String, String) {
    let script = KINDS.iter().find(|(k, _)| *k == kind).expect("a kind").1;
    // The runner joins its scripts as `check` does.
    let health = dir().join("health");
    let mut child = Command::new(crate::harness::go_tool("lua-health"))
        .args([health.join("common.lua"), health.join(script)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lua-health");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(obj.to_string().as_bytes())
        .expect("write the object");
    let out = child.wait_with_output().expect("lua-health");
    assert!(
        out.status.success(),
        "{kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let field = |f: &str| answer[f].as_str().unwrap_or_default().to_owned();
    (field("status"), field("message"))
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message})
}

/// An object of generation 3, reconciled at `observed`, with `status` fields merged in.
fn object(observed: Option<i64>, spec: Value, status: Option<Value>) -> Value {
    let mut obj = json!({"metadata": {"name": "x", "generation": 3}, "spec": spec});
    if let Some(mut status) = status {
        if let Some(g) = observed {
            status["observedGeneration"] = json!(g);
        }
        obj["status"] = status;
    }
    obj
}

#[test]
fn identity_health_covers_every_outcome() {
    let synced = |c: Value| object(Some(3), json!({}), Some(json!({"conditions": [c]})));
    let leaver = |connectors: Value| {
        object(
            Some(3),
            json!({"state": "Terminated"}),
            Some(json!({"conditions": [cond("Ready", "True", "Valid", "")],
                "deprovisioning": {"requestedAt": "t", "connectors": connectors}})),
        )
    };
    let cases = [
        (object(None, json!({}), None), "Progressing", "reconcile it"),
        (
            object(Some(2), json!({}), Some(json!({}))),
            "Progressing",
            "generation 3",
        ),
        (
            synced(cond(
                "Ready",
                "False",
                "OwnerMissing",
                "owner bob is not an Identity",
            )),
            "Degraded",
            "owner bob",
        ),
        (
            synced(cond("Synced", "True", "InSync", "4 connector(s) match")),
            "Healthy",
            "4 connector",
        ),
        (
            synced(cond("Synced", "False", "Error", "ns/pg: unreachable")),
            "Degraded",
            "unreachable",
        ),
        (
            synced(cond(
                "Synced",
                "False",
                "Drift",
                "see status.accounts[].drift",
            )),
            "Progressing",
            "converging",
        ),
        (
            object(Some(3), json!({}), Some(json!({"conditions": []}))),
            "Progressing",
            "not synced",
        ),
        (
            leaver(
                json!([{"connector": "ns/scim", "revokedAt": "t", "verifiedAt": "t"},
                {"connector": "ns/ldap", "revokedAt": "t"}]),
            ),
            "Progressing",
            "1 of 2",
        ),
        (
            leaver(json!([{"connector": "ns/scim", "revokedAt": "t",
                "exception": "access remains through an account Roster does not own"}])),
            "Degraded",
            "ns/scim: access remains",
        ),
        (
            leaver(json!([{"connector": "ns/scim", "revokedAt": "t", "verifiedAt": "t"}])),
            "Healthy",
            "verified on 1",
        ),
        (
            object(
                Some(3),
                json!({"state": "Terminated"}),
                Some(json!({"conditions": []})),
            ),
            "Progressing",
            "0 of 0",
        ),
    ];
    for (obj, status, message) in cases {
        let (got, said) = health("Identity", &obj);
        assert_eq!(got, status, "{obj}: {said}");
        assert!(
            said.contains(message),
            "{obj}: {said:?} should say {message:?}"
        );
    }
}

#[test]
fn identity_source_health_covers_every_outcome() {
    let with = |conds: Value| object(Some(3), json!({}), Some(json!({"conditions": conds})));
    let applied = cond("Synced", "True", "Applied", "12 rows read: 0 created");
    let cases = [
        (object(None, json!({}), None), "Progressing", "reconcile"),
        (
            object(Some(2), json!({}), Some(json!({}))),
            "Progressing",
            "generation 3",
        ),
        (with(json!([])), "Progressing", "not read"),
        (with(json!([applied.clone()])), "Healthy", "12 rows read"),
        (
            with(json!([
                applied,
                cond(
                    "Quarantined",
                    "True",
                    "EmptySource",
                    "the export has no rows"
                )
            ])),
            "Degraded",
            "quarantined: the export has no rows",
        ),
        (
            with(json!([cond(
                "Synced",
                "False",
                "MalformedCsv",
                "cannot be read at row 3"
            )])),
            "Degraded",
            "row 3",
        ),
    ];
    for (obj, status, message) in cases {
        let (got, said) = health("IdentitySource", &obj);
        assert_eq!(got, status, "{obj}: {said}");
        assert!(
            said.contains(message),
            "{obj}: {said:?} should say {message:?}"
        );
    }
}

#[test]
fn connector_role_and_binding_health_cover_every_outcome() {
    let with = |conds: Value| object(Some(3), json!({}), Some(json!({"conditions": conds})));
    let ready = cond("Ready", "True", "Connected", "the app answers");
    let cases = [
        (
            "Connector",
            object(None, json!({}), None),
            "Progressing",
            "reconcile",
        ),
        (
            "Connector",
            object(Some(1), json!({}), Some(json!({}))),
            "Progressing",
            "generation 3",
        ),
        (
            "Connector",
            with(json!([
                ready,
                cond("Quarantined", "True", "BudgetExceeded", "12 removals held")
            ])),
            "Degraded",
            "quarantined: 12 removals",
        ),
        (
            "Connector",
            with(json!([cond("Ready", "False", "Unauthorized", "HTTP 401")])),
            "Degraded",
            "HTTP 401",
        ),
        (
            "Connector",
            with(json!([
                ready,
                cond("Quarantined", "False", "WithinBudget", "removals proceed")
            ])),
            "Healthy",
            "answers",
        ),
        ("Connector", with(json!([])), "Progressing", "not checked"),
        (
            "Role",
            with(json!([cond(
                "Ready",
                "True",
                "Valid",
                "entitlements resolve"
            )])),
            "Healthy",
            "resolve",
        ),
        (
            "Role",
            with(json!([cond(
                "Ready",
                "False",
                "ConnectorMissing",
                "no Connector pg"
            )])),
            "Degraded",
            "no Connector",
        ),
        (
            "RoleBinding",
            object(None, json!({}), None),
            "Progressing",
            "reconcile",
        ),
        (
            "RoleBinding",
            with(json!([cond(
                "Ready",
                "False",
                "ExpressionTooCostly",
                "over the cost limit"
            )])),
            "Degraded",
            "cost limit",
        ),
        ("RoleBinding", with(json!([])), "Progressing", "not checked"),
    ];
    for (kind, obj, status, message) in cases {
        let (got, said) = health(kind, &obj);
        assert_eq!(got, status, "{kind} {obj}: {said}");
        assert!(
            said.contains(message),
            "{kind} {obj}: {said:?} should say {message:?}"
        );
    }
}

/// `text` as a YAML block scalar's lines, indented by `indent` spaces.
fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `resource.customizations.health.*` entries, keys indented by `indent`.
fn customizations(indent: usize) -> String {
    let pad = " ".repeat(indent);
    KINDS
        .iter()
        .map(|(kind, script)| {
            format!(
                "{pad}resource.customizations.health.roster.dev_{kind}: |\n{}\n",
                block(&check(script), indent + 2)
            )
        })
        .collect()
}

#[test]
fn the_argocd_snippets_hold_the_scripts_as_they_are() {
    let header =
        "# Generated from deploy/argocd/health/*.lua by tests/it/argocd.rs; do not edit.\n";
    let files = [
        (
            "argocd-cm-patch.yaml",
            format!(
                "{header}# kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm-patch.yaml\ndata:\n{}",
                customizations(2)
            ),
        ),
        (
            "argo-cd-values.yaml",
            format!(
                "{header}# helm upgrade argocd argo/argo-cd -n argocd --reuse-values -f deploy/argocd/argo-cd-values.yaml\nconfigs:\n  cm:\n{}",
                customizations(4)
            ),
        ),
    ];
    for (name, generated) in files {
        let path = dir().join(name);
        if std::env::var_os("ROSTER_WRITE_ARGOCD").is_some() {
            std::fs::write(&path, &generated).expect("write");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "deploy/argocd/{name} is stale; rewrite it with: ROSTER_WRITE_ARGOCD=1 cargo test --test it argocd"
        );
        // And it is YAML whose entries are the scripts, byte for byte.
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&on_disk).expect("YAML");
        let data = doc
            .get("data")
            .or_else(|| doc.get("configs").and_then(|c| c.get("cm")));
        for (kind, script) in KINDS {
            let key = format!("resource.customizations.health.roster.dev_{kind}");
            let held = data.and_then(|d| d.get(&key)).and_then(|v| v.as_str());
            assert_eq!(
                held.map(str::trim_end),
                Some(check(script).trim_end()),
                "{name}: {key}"
            );
        }
    }
}
