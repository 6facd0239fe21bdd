//! The chart's RBAC is enough: the operator, run with nothing but the token of a
//! ServiceAccount the chart made, takes a person through joiner, mover and leaver on all
//! four apps — SCIM, LDAP, PostgreSQL and this cluster's own RBAC — and is refused
//! nothing on the way.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{chart, helm_ok, install};
use crate::{
    four_connectors::{cluster_roles, joiner_mover_leaver},
    harness::{off_runtime, operator::Operator},
    lifecycle::Scenario,
};

/// A second release, beside the one `install` makes: its own names and Lease, the CRDs
/// left to the first, and no admission policies (their names are cluster-wide, and the
/// first release has them).
const RELEASE: &str = "roster-rbac";

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

    // The tenant namespace the Scenario made is the one whose Secrets it may read, and
    // the ClusterRoles its Roles grant the ones it may bind.
    let ns = s.ns.clone();
    let token = off_runtime(move || {
        let kubeconfig = cp.kubeconfig.display().to_string();
        let chart_s = chart().display().to_string();
        let secrets = format!("rbac.secrets.namespaces={{{ns}}}");
        let bindable = format!(
            "rbac.kubernetesConnector.bindableClusterRoles={{{}}}",
            cluster_roles("chart").join(",")
        );
        helm_ok(&[
            "install",
            "rbac",
            &chart_s,
            "--namespace",
            RELEASE,
            "--create-namespace",
            "--kubeconfig",
            &kubeconfig,
            "--skip-crds",
            "--set",
            &format!("fullnameOverride={RELEASE}"),
            "--set",
            &format!("leaderElection.leaseName={RELEASE}"),
            "--set",
            "admissionPolicy.enabled=false",
            "--set",
            &secrets,
            "--set",
            &bindable,
        ]);
        install::kubectl_ok(
            cp,
            &["create", "token", RELEASE, "-n", RELEASE, "--duration=2h"],
        )
    })
    .await;
    let kubeconfig = cp.kubeconfig_for(RELEASE, token.trim());
    *operator.lock().unwrap_or_else(|p| p.into_inner()) = Some(Operator::start_with(
        &kubeconfig,
        "info",
        &[
            ("POD_NAMESPACE", RELEASE),
            ("ROSTER_LEADER_ELECT_LEASE", RELEASE),
        ],
    ));

    joiner_mover_leaver(&s, "chart").await;

    let log = s.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused the operator:\n{}",
        refused.join("\n")
    );
}
