//! `helm lint` and `helm template` for each value set, and what each renders.

use serde_yaml_ng::Value;

use super::{chart, documents, helm, helm_ok, id};

/// The value sets CI checks: the defaults and `charts/roster/ci/*.yaml`.
const VALUE_SETS: [Option<&str>; 3] = [
    None,
    Some("ci/wide-values.yaml"),
    Some("ci/narrow-values.yaml"),
];

/// `helm template` of the chart into namespace `roster-system` with `values`.
pub(super) fn render(values: Option<&str>, extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let chart_s = chart.display().to_string();
    let file = values.map(|v| chart.join(v).display().to_string());
    let mut args = vec![
        "template",
        "roster",
        &chart_s,
        "--namespace",
        "roster-system",
        "--include-crds",
    ];
    if let Some(f) = &file {
        args.extend(["--values", f]);
    }
    args.extend(extra);
    documents(&helm_ok(&args))
}

fn ids(docs: &[Value]) -> Vec<String> {
    docs.iter().map(id).collect()
}

fn find<'a>(docs: &'a [Value], wanted: &str) -> &'a Value {
    docs.iter()
        .find(|d| id(d) == wanted)
        .unwrap_or_else(|| panic!("{wanted} not rendered; rendered: {:?}", ids(docs)))
}

/// Every container as restricted Pod Security wants it, and the pod too.
fn assert_restricted(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    for c in pod["containers"].as_sequence().expect("containers") {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false), "{c:?}");
        assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true), "{c:?}");
        assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"), "{c:?}");
        assert!(c["resources"]["requests"].is_mapping(), "requests: {c:?}");
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "a memory limit: {c:?}"
        );
    }
}

/// No RBAC rule names `resourceNames: []`, which would mean every name.
fn assert_no_empty_resource_names(docs: &[Value]) {
    for d in docs {
        for rule in d["rules"].as_sequence().into_iter().flatten() {
            if let Some(names) = rule.get("resourceNames") {
                assert!(
                    names.as_sequence().is_some_and(|n| !n.is_empty()),
                    "{}: a rule with resourceNames {names:?}",
                    id(d)
                );
            }
        }
    }
}

#[test]
fn the_chart_lints_for_every_value_set() {
    let chart_s = chart().display().to_string();
    for values in VALUE_SETS {
        let file = values.map(|v| chart().join(v).display().to_string());
        let mut args = vec!["lint", "--strict", chart_s.as_str()];
        if let Some(f) = &file {
            args.extend(["--values", f]);
        }
        helm_ok(&args);
    }
}

#[test]
fn the_defaults_render_the_operator_with_least_privilege() {
    let docs = render(None, &[]);
    let deployment = find(&docs, "Deployment/roster-system/roster");
    assert_restricted(deployment);
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(1));
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--leader-elect=true"), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--scim")),
        "no SCIM endpoint unless asked: {args:?}"
    );
    let operator_rules =
        serde_yaml_ng::to_string(&find(&docs, "ClusterRole/roster")["rules"]).expect("yaml");
    assert!(!operator_rules.contains("scimusers"), "{operator_rules}");
    for wanted in [
        "CustomResourceDefinition/identities.roster.dev",
        "CustomResourceDefinition/connectors.roster.dev",
        "ServiceAccount/roster-system/roster",
        "ClusterRole/roster",
        "ClusterRoleBinding/roster",
        "Role/roster-system/roster-leader",
        "ClusterRole/roster-secrets",
        "ClusterRole/roster-kubernetes-connector",
        "ClusterRoleBinding/roster-kubernetes-accounts",
        "Service/roster-system/roster-metrics",
        "ValidatingAdmissionPolicy/roster.dev-bind",
        "ValidatingAdmissionPolicyBinding/roster.dev-escalate",
    ] {
        find(&docs, wanted);
    }
    // By default the operator reads no Secret anywhere until namespaces are listed.
    let all = ids(&docs);
    assert!(
        !all.iter()
            .any(|i| i.starts_with("ClusterRoleBinding/roster-secrets")
                || i.starts_with("RoleBinding/") && i.ends_with("/roster-secrets")),
        "{all:?}"
    );
    // `bind` on exactly view and edit.
    let rules = find(&docs, "ClusterRole/roster-kubernetes-connector")["rules"]
        .as_sequence()
        .expect("rules");
    let bind: Vec<&Value> = rules
        .iter()
        .filter(|r| {
            r["verbs"]
                .as_sequence()
                .is_some_and(|v| v.iter().any(|v| v == "bind"))
        })
        .collect();
    assert_eq!(bind.len(), 1, "{bind:?}");
    assert_eq!(
        bind[0]["resourceNames"],
        serde_yaml_ng::from_str::<Value>("[view, edit]").expect("yaml")
    );
    assert_no_empty_resource_names(&docs);
}

#[test]
fn the_wide_values_render_replicas_monitoring_and_a_network_policy() {
    let docs = render(VALUE_SETS[1], &[]);
    let deployment = find(&docs, "Deployment/roster-system/roster");
    assert_restricted(deployment);
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    for wanted in [
        "ClusterRoleBinding/roster-secrets",
        "ServiceMonitor/roster-system/roster",
        "PrometheusRule/roster-system/roster",
        "NetworkPolicy/roster-system/roster",
    ] {
        find(&docs, wanted);
    }
    let dashboard = find(&docs, "ConfigMap/monitoring/roster-dashboard");
    let carried: serde_json::Value = serde_json::from_str(
        dashboard["data"]["roster.json"]
            .as_str()
            .expect("JSON text"),
    )
    .expect("the dashboard is JSON");
    let file = std::fs::read_to_string(super::chart().join("files/dashboard.json")).expect("file");
    assert_eq!(
        carried,
        serde_json::from_str::<serde_json::Value>(&file).expect("JSON"),
        "the ConfigMap carries files/dashboard.json as it is"
    );
    let rules = find(&docs, "ClusterRole/roster-kubernetes-connector")["rules"].clone();
    let text = serde_yaml_ng::to_string(&rules).expect("yaml");
    assert!(
        text.contains("team-reader") && text.contains("deployer"),
        "{text}"
    );
    // The SCIM endpoint: its flags with the mounted TLS Secret, a Service, its rights.
    let pod = &deployment["spec"]["template"]["spec"];
    let args = serde_yaml_ng::to_string(&pod["containers"][0]["args"]).expect("yaml");
    for flag in [
        "--scim-addr=0.0.0.0:8443",
        "--scim-tls-cert=/etc/roster/scim-tls/tls.crt",
        "--scim-tls-key=/etc/roster/scim-tls/tls.key",
    ] {
        assert!(args.contains(flag), "{flag} in {args}");
    }
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"].as_str(),
        Some("roster-scim-tls")
    );
    find(&docs, "Service/roster-system/roster-scim");
    let operator_rules =
        serde_yaml_ng::to_string(&find(&docs, "ClusterRole/roster")["rules"]).expect("yaml");
    assert!(operator_rules.contains("scimusers"), "{operator_rules}");
    assert_no_empty_resource_names(&docs);
}

#[test]
fn the_narrow_values_render_secrets_per_namespace_and_nothing_optional() {
    let docs = render(VALUE_SETS[2], &[]);
    assert_restricted(find(&docs, "Deployment/roster-system/roster"));
    find(&docs, "RoleBinding/team-a/roster-secrets");
    find(&docs, "RoleBinding/team-b/roster-secrets");
    let all = ids(&docs);
    for absent in [
        "Role/roster-system/roster-leader",
        "ClusterRole/roster-kubernetes-connector",
        "Service/roster-system/roster-metrics",
        "ValidatingAdmissionPolicy/roster.dev-bind",
        "ClusterRoleBinding/roster-secrets",
        "PrometheusRule/roster-system/roster",
        "ConfigMap/roster-system/roster-dashboard",
    ] {
        assert!(
            !all.iter().any(|i| i == absent),
            "{absent} rendered: {all:?}"
        );
    }
    let args = &find(&docs, "Deployment/roster-system/roster")["spec"]["template"]["spec"]["containers"]
        [0]["args"];
    assert!(
        serde_yaml_ng::to_string(args)
            .expect("yaml")
            .contains("--leader-elect=false"),
        "{args:?}"
    );
}

#[test]
fn values_the_schema_refuses_are_refused_with_the_field_named() {
    let chart_s = chart().display().to_string();
    for (set, field) in [
        (
            vec!["replicas=2", "leaderElection.enabled=false"],
            "enabled",
        ),
        (vec!["operator.logFormat=xml"], "logFormat"),
        (
            vec!["rbac.secrets.namespaces={Not_A_Namespace}"],
            "namespaces",
        ),
        (
            vec!["operator.allowTargetNetworks={not-a-cidr}"],
            "allowTargetNetworks",
        ),
        (
            vec!["metrics.prometheusRule.exceptionsFor=soon"],
            "exceptionsFor",
        ),
        (vec!["no.such.value=1"], "no"),
    ] {
        let mut args = vec!["template", "roster", chart_s.as_str()];
        for s in &set {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set:?} was accepted");
        assert!(
            stderr.contains(field),
            "{set:?}: the error names {field}: {stderr}"
        );
    }
}
