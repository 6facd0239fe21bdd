//! `helm install` into an empty cluster with a controller manager: the chart brings the
//! CRDs and policies, every object of the release is created, the Deployment's pods are
//! admitted in a namespace that enforces `restricted` Pod Security, and the operator
//! image, run as that pod would run it, becomes ready and leads with the chart's
//! ServiceAccount token alone.

use std::{sync::OnceLock, time::Duration};

use super::{chart, documents, helm_ok, image};
use crate::harness::{ControlPlane, chart_control_plane, process};

const NAMESPACE: &str = "roster-system";

pub fn kubectl_ok(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (up to 60 s) for the Deployment's ReplicaSet to have made a pod, which the
/// apiserver admitted; the pod never runs (there are no nodes).
fn wait_for_a_pod(cp: &ControlPlane) -> String {
    let selector = "app.kubernetes.io/name=roster";
    for _ in 0..300 {
        let pods = kubectl_ok(
            cp,
            &["get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "name"],
        );
        if !pods.trim().is_empty() {
            return pods;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = kubectl_ok(cp, &["get", "events", "-n", NAMESPACE]);
    panic!("no pod of the Deployment within 60 s; events:\n{events}");
}

/// The chart's cluster with the release `roster` installed in `roster-system` (which
/// enforces restricted Pod Security) once for the test binary, its CRDs Established, and
/// the tenant namespace `team-a`, whose Secrets it may read. Blocks: call it off the
/// async runtime.
pub fn installed() -> &'static ControlPlane {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let cp = chart_control_plane();
    INSTALLED.get_or_init(|| {
        kubectl_ok(cp, &["create", "namespace", NAMESPACE]);
        kubectl_ok(cp, &["create", "namespace", "team-a"]);
        let restricted = "pod-security.kubernetes.io/enforce=restricted";
        kubectl_ok(cp, &["label", "namespace", NAMESPACE, restricted]);
        let kubeconfig = cp.kubeconfig.display().to_string();
        let chart_s = chart().display().to_string();
        let secrets = "rbac.secrets.namespaces={team-a}";
        helm_ok(&[
            "install",
            "roster",
            &chart_s,
            "--namespace",
            NAMESPACE,
            "--kubeconfig",
            &kubeconfig,
            "--set",
            secrets,
        ]);
        // The CRDs from the chart's crds/, Established.
        let crds = [
            "identities.roster.dev",
            "roles.roster.dev",
            "rolebindings.roster.dev",
            "connectors.roster.dev",
        ];
        let mut wait = vec![
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "60s",
            "crd",
        ];
        wait.extend(crds);
        kubectl_ok(cp, &wait);
    });
    cp
}

#[test]
fn the_chart_installs_every_object_and_its_pods_pass_restricted_pod_security() {
    let cp = installed();
    let kubeconfig = cp.kubeconfig.display().to_string();
    // Every object of the release exists.
    let manifest = helm_ok(&[
        "get",
        "manifest",
        "roster",
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
    ]);
    let docs = documents(&manifest);
    assert!(docs.len() >= 15, "{} objects", docs.len());
    let file = process::temp_dir("roster-chart-").join("manifest.yaml");
    std::fs::write(&file, &manifest).expect("write the manifest");
    let found = kubectl_ok(
        cp,
        &["get", "-f", &file.display().to_string(), "-o", "name"],
    );
    assert_eq!(found.lines().count(), docs.len(), "{found}");

    let pods = wait_for_a_pod(cp);
    assert!(pods.contains("pod/roster-"), "{pods}");

    // The namespace really enforces restricted: a pod without the chart's security
    // context is refused.
    let bare = cp.kubectl(&[
        "run",
        "bare",
        "--image=roster",
        "-n",
        NAMESPACE,
        "--restart=Never",
    ]);
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(
        !bare.status.success() && err.contains("violates PodSecurity"),
        "{err}"
    );

    // No node runs that pod here; the image runs as it would, with only the chart's
    // ServiceAccount token: ready once it has listed everything, and leading.
    let token = kubectl_ok(cp, &["create", "token", "roster", "-n", NAMESPACE]);
    let ca_path = r"jsonpath={.data.ca\.crt}";
    let ca = kubectl_ok(
        cp,
        &[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            NAMESPACE,
            "-o",
            ca_path,
        ],
    );
    let pod = image::run_as_pod(cp, NAMESPACE, token.trim(), &ca);
    let holder = r"jsonpath={.spec.holderIdentity}";
    for _ in 0..100 {
        let lease = cp.kubectl(&[
            "get",
            "lease",
            "roster-operator",
            "-n",
            NAMESPACE,
            "-o",
            holder,
        ]);
        if String::from_utf8_lossy(&lease.stdout) == "roster-from-the-image" {
            let metrics = reqwest::blocking::get(format!("{}/metrics", pod.probes))
                .and_then(|r| r.text())
                .expect("/metrics");
            assert!(metrics.contains("roster_"), "{metrics}");
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the image's operator never held the Lease; its log:\n{}",
        pod.log()
    );
}
