//! The chart's RBAC is enough and no more: the operator, run with nothing but the token
//! of a ServiceAccount the chart made, takes a person through joiner, mover and leaver on
//! all four apps — SCIM, LDAP, PostgreSQL and this cluster's own RBAC — and is refused
//! nothing on the way (an IdentitySource reading its export beside them); then, with
//! each rule of the release's roles taken away in turn, a fresh operator meets a refusal
//! it says plainly while another person joins, rather than stalling in silence.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{Api, api::ListParams};
use roster::api::Connector;
use serde_json::{Value, json};

use super::{chart, documents, helm_ok, install};
use crate::{
    four_connectors::{cluster_roles, joiner_mover_leaver},
    harness::{ControlPlane, off_runtime, operator::Operator},
    lifecycle::Scenario,
};

/// A second release, beside the one `install` makes: its own names and Lease, the CRDs
/// left to the first, and no admission policies (their names are cluster-wide, and the
/// first release has them).
const RELEASE: &str = "roster-rbac";

/// The operator under test, started again at will with the release's token.
struct Run {
    operator: Arc<Mutex<Option<Operator>>>,
    kubeconfig: PathBuf,
    /// Where it serves SCIM pushes (plain HTTP on loopback).
    scim: String,
}

impl Run {
    /// Stops the operator (SIGTERM: it frees the Lease) and starts a fresh one.
    fn restart(&self) {
        let mut op = self.operator.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = op.take() {
            old.terminate();
        }
        let env = [
            ("POD_NAMESPACE", RELEASE),
            ("ROSTER_LEADER_ELECT_LEASE", RELEASE),
            ("ROSTER_SCIM_ADDR", self.scim.as_str()),
            ("ROSTER_SCIM_PLAINTEXT", "true"),
        ];
        *op = Some(Operator::start_with(&self.kubeconfig, "info", &env));
    }
}

/// Installs the second release, allowed the Secrets of `tenant`, the exports of `hr`, to
/// keep Kubernetes account records in `tenant` only, and to bind the Scenario's
/// ClusterRoles; returns a token of its ServiceAccount (TokenRequest).
fn install_release(cp: &ControlPlane, tenant: &str, hr: &str) -> String {
    let kubeconfig = cp.kubeconfig.display().to_string();
    let chart_s = chart().display().to_string();
    let sets = [
        format!("fullnameOverride={RELEASE}"),
        format!("leaderElection.leaseName={RELEASE}"),
        "admissionPolicy.enabled=false".to_owned(),
        "scimEndpoint.enabled=true".to_owned(),
        format!("rbac.secrets.namespaces={{{tenant},{hr}}}"),
        format!("rbac.kubernetesConnector.accountNamespaces={{{tenant}}}"),
        format!(
            "rbac.kubernetesConnector.bindableClusterRoles={{{}}}",
            cluster_roles("chart").join(",")
        ),
    ];
    let mut args = vec![
        "install",
        "rbac",
        &chart_s,
        "--namespace",
        RELEASE,
        "--create-namespace",
        "--kubeconfig",
        &kubeconfig,
        "--skip-crds",
    ];
    for set in &sets {
        args.extend(["--set", set]);
    }
    helm_ok(&args);
    let token = ["create", "token", RELEASE, "-n", RELEASE, "--duration=2h"];
    install::kubectl_ok(cp, &token).trim().to_owned()
}

#[tokio::test]
async fn the_operator_with_only_the_charts_token_takes_a_person_through_four_apps() {
    let cp = off_runtime(install::installed).await;
    let operator: Arc<Mutex<Option<Operator>>> = Arc::default();
    let reader = operator.clone();
    let log = Box::new(move || {
        let op = reader.lock().unwrap_or_else(|p| p.into_inner());
        op.as_ref().map(Operator::log).unwrap_or_default()
    });
    let s = Scenario::on(cp, log, "chartrbac", json!({})).await;
    // An IdentitySource in a namespace of its own, reading an export with no one in it:
    // its reads need the chart's rules on sources and, there, on ConfigMaps (the
    // Kubernetes Connector's account records are kept to the scenario's namespace, so
    // that rule is the only one letting the operator read this ConfigMap).
    let hr = cp.namespace(&s.client, "chartrbachr").await;
    crate::identity_source::export_in(&s.client, &hr, "hr", "user,department\n").await;
    let mapping = json!({"username": "user"});
    crate::identity_source::source_in(&s.client, &hr, "hr", mapping, json!({})).await;
    push_source(&s.client, &hr).await;
    let (ns, hr_ns) = (s.ns.clone(), hr.clone());
    let token = off_runtime(move || install_release(cp, &ns, &hr_ns)).await;
    let run = Run {
        operator,
        kubeconfig: cp.kubeconfig_for(RELEASE, &token),
        scim: format!("127.0.0.1:{}", crate::harness::process::free_port()),
    };
    run.restart();

    joiner_mover_leaver(&s, "chart").await;
    pushed_joiner(&s, &run, &hr).await;
    leaver_metrics(&run, &s.ns).await;
    let log = s.log();
    let refused: Vec<&str> = log.lines().filter(|l| refusal(l)).collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused the operator:\n{}",
        refused.join("\n")
    );

    let rules = off_runtime(move || release_rules(cp)).await;
    assert!(rules.len() >= 10, "{} rules", rules.len());
    for (n, rule) in rules.into_iter().enumerate() {
        without(cp, &s, &run, &hr, rule, n).await;
    }
}

/// The push token of the IdentitySource `push`.
const PUSH_TOKEN: &str = "chart-rbac-push-token";

/// The IdentitySource `push` in `ns`, taking SCIM pushes.
async fn push_source(client: &kube::Client, ns: &str) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "push-token"},
        "stringData": {"token": PUSH_TOKEN}});
    crate::harness::apply(client, ns, secret).await;
    let source = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "IdentitySource",
        "metadata": {"name": "push"},
        "spec": {"scim": {"tokenSecretRef": {"name": "push-token", "key": "token"}},
            "mapping": {"username": "userName"}}});
    crate::harness::apply(client, ns, source).await;
}

/// A user pushed over SCIM becomes an Identity: the endpoint's ScimUser writes and the
/// leader's watch of them are the chart's rules on scimusers.
async fn pushed_joiner(s: &Scenario, run: &Run, hr: &str) {
    s.eventually("the endpoint takes the push", || async {
        push(run, hr, "chartrbac-pushed").await == Some(201)
    })
    .await;
    s.eventually("the pushed user becomes an Identity", || async {
        s.identities()
            .get_opt("chartrbac-pushed")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
}

/// Pushes `user` to the source `push` in `hr`; the HTTP status, if there was an answer.
async fn push(run: &Run, hr: &str, user: &str) -> Option<u16> {
    let url = format!("http://{}/sources/{hr}/push/scim/v2/Users", run.scim);
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user, "active": true});
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .json(&body)
        .send()
        .await;
    answer.ok().map(|r| r.status().as_u16())
}

/// The leaver's latency per connector, the changes the scenario wrote and the reads it
/// made, as the operator's /metrics shows them.
async fn leaver_metrics(run: &Run, ns: &str) {
    let probe = run
        .operator
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|op| op.probe.clone())
        .expect("an operator");
    let text = reqwest::get(format!("{probe}/metrics"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics text");
    for c in ["scim", "ldap", "pg", "k8s"] {
        let count = format!(r#"roster_leaver_verified_seconds_count{{connector="{ns}/{c}"}} 1"#);
        assert!(text.contains(&count), "{count} missing from\n{text}");
        // Each app was read (the leaver's read-back at least) and answered.
        let reads = format!(
            r#"roster_downstream_requests_total{{connector="{ns}/{c}",operation="observe",outcome="ok"}}"#
        );
        assert!(text.contains(&reads), "{reads} missing from\n{text}");
    }
    let revoked = format!(
        r#"roster_downstream_changes_total{{connector="{ns}/scim",operation="Revoked",outcome="applied"}}"#
    );
    assert!(text.contains(&revoked), "{revoked} missing from\n{text}");
}

/// With `rule` taken away, a fresh operator must say plainly that it was refused while
/// the `n`th extra person joins and another is pushed over SCIM to the source in `hr`;
/// then the rule goes back and the Connectors recover.
async fn without(
    cp: &'static ControlPlane,
    s: &Scenario,
    run: &Run,
    hr: &str,
    rule: Rule,
    n: usize,
) {
    let taken = rule.clone();
    off_runtime(move || taken.take_away(cp)).await;
    run.restart();
    let (probe, user) = (format!("chart-min{n}"), format!("chart.min{n}"));
    s.identity(
        &probe,
        json!({"username": user, "emails": [format!("{user}@example.com")],
            "attributes": {"department": "engineering"}}),
    )
    .await;
    // Whether the endpoint takes it is what is being tested, not its answer: pushed
    // once the fresh operator listens, if it does (without some rules it stops at once).
    let (pushed, start) = (format!("chartrbac-min{n}"), Instant::now());
    while push(run, hr, &pushed).await.is_none() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let said = said_plainly(s, &probe, Duration::from_secs(60)).await;
    let said = said.unwrap_or_else(|| {
        let lease = cp.kubectl(&["get", "lease", RELEASE, "-n", RELEASE, "-o", "yaml"]);
        panic!(
            "without {rule}, nothing said within 60 s: a silent stall\n{}\n{}",
            s.log(),
            String::from_utf8_lossy(&lease.stdout)
        )
    });
    eprintln!("without {rule}: {said}");
    off_runtime(move || rule.give_back(cp)).await;
    // A fresh operator with every rule again: what the last one wrote in the
    // Connectors' statuses is overwritten before the next rule goes.
    run.restart();
    s.eventually("the Connectors say nothing of a refusal again", || async {
        refused_in_status(s, "").await.is_none()
    })
    .await;
}

/// Whether a log line says the operator was refused.
fn refusal(line: &str) -> bool {
    refusal_at(line).is_some()
}

/// Where in `text` (as a count of chars) a refusal is said.
fn refusal_at(text: &str) -> Option<usize> {
    let lower: Vec<char> = text.to_lowercase().chars().collect();
    ["forbidden", "may not"]
        .iter()
        .filter_map(|w| {
            let w: Vec<char> = w.chars().collect();
            lower.windows(w.len()).position(|x| x == w.as_slice())
        })
        .min()
}

/// The words around the refusal in `text`.
fn around_refusal(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = refusal_at(text).unwrap_or(0).min(chars.len());
    chars[at.saturating_sub(160)..(at + 140).min(chars.len())]
        .iter()
        .collect()
}

/// Where the operator says it was refused, once it does: a line of its log, or the
/// status of a Connector of the Scenario or of the Identity `probe`.
async fn said_plainly(s: &Scenario, probe: &str, limit: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(line) = s.log().lines().find(|l| refusal(l)) {
            return Some(format!("log: …{}…", around_refusal(line)));
        }
        if let Some(said) = refused_in_status(s, probe).await {
            return Some(said);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// A refusal in the status of a Connector of the Scenario, or of the Identity `probe`
/// (none when empty).
async fn refused_in_status(s: &Scenario, probe: &str) -> Option<String> {
    let connectors = Api::<Connector>::namespaced(s.client.clone(), &s.ns)
        .list(&ListParams::default())
        .await
        .map(|l| json!(l.items))
        .unwrap_or_default();
    let identity = match probe {
        "" => Value::Null,
        name => json!(s.get(name).await),
    };
    let objects = connectors.as_array().cloned().unwrap_or_default();
    objects.into_iter().chain([identity]).find_map(|obj| {
        let text = obj["status"].to_string();
        refusal(&text).then(|| {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let kind = obj["kind"].as_str().unwrap_or("Connector");
            format!("{kind} {name} status: …{}…", around_refusal(&text))
        })
    })
}

/// One rule of one of the release's ClusterRoles or Roles.
#[derive(Clone)]
struct Rule {
    /// `clusterrole` or `role`.
    kind: &'static str,
    name: String,
    namespace: Option<String>,
    index: usize,
    rule: Value,
    /// Every rule of its role, as the release made them.
    all: Value,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verbs, resources) = (&self.rule["verbs"], &self.rule["resources"]);
        write!(
            f,
            "{} {} rule {} ({verbs} {resources})",
            self.kind, self.name, self.index
        )
    }
}

impl Rule {
    fn kubectl_patch(&self, cp: &ControlPlane, patch: &Value) {
        let target = format!("{}/{}", self.kind, self.name);
        let patch = patch.to_string();
        let mut args = vec!["patch", &target, "--type", "json", "-p", &patch];
        if let Some(ns) = &self.namespace {
            args.extend(["-n", ns]);
        }
        install::kubectl_ok(cp, &args);
    }

    fn take_away(&self, cp: &ControlPlane) {
        let path = format!("/rules/{}", self.index);
        self.kubectl_patch(cp, &json!([{"op": "remove", "path": path}]));
    }

    /// Puts every rule back as it was (`add` on `/rules` replaces the list, and works
    /// when taking the last rule away left none).
    fn give_back(&self, cp: &ControlPlane) {
        let all = json!([{"op": "add", "path": "/rules", "value": self.all}]);
        self.kubectl_patch(cp, &all);
    }
}

/// Every rule of every ClusterRole and Role the release made.
fn release_rules(cp: &ControlPlane) -> Vec<Rule> {
    let kubeconfig = cp.kubeconfig.display().to_string();
    let manifest = helm_ok(&[
        "get",
        "manifest",
        "rbac",
        "--namespace",
        RELEASE,
        "--kubeconfig",
        &kubeconfig,
    ]);
    let mut out = Vec::new();
    for doc in documents(&manifest) {
        let kind = match doc["kind"].as_str() {
            Some("ClusterRole") => "clusterrole",
            Some("Role") => "role",
            _ => continue,
        };
        let json: Value = serde_json::to_value(&doc).expect("JSON");
        for (index, rule) in json["rules"].as_array().into_iter().flatten().enumerate() {
            out.push(Rule {
                kind,
                name: json["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                namespace: json["metadata"]["namespace"].as_str().map(str::to_owned),
                index,
                rule: rule.clone(),
                all: json["rules"].clone(),
            });
        }
    }
    out
}
