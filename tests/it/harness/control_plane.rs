//! Starting the control plane's processes — etcd, kube-apiserver and, for the shared
//! cluster, kube-controller-manager — and stopping or restarting one in place: the same
//! command, ports, certificates and data, as a restarted static pod would come back.

use std::{
    hash::{BuildHasher, Hasher},
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use super::{ControlPlane, certs, process};

static ETCD: OnceLock<String> = OnceLock::new();

/// A control plane with servers of its own, each of which the test may stop and restart.
pub struct OwnControlPlane {
    /// The apiserver as clients see it.
    pub cp: ControlPlane,
    /// Its etcd, which no other control plane uses.
    pub etcd: std::sync::Arc<Server>,
    /// Its apiserver.
    pub apiserver: std::sync::Arc<Server>,
}

/// A server process that can be stopped and started again as it was.
pub struct Server {
    what: &'static str,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    log: PathBuf,
    limit: Duration,
    pid: Mutex<Option<u32>>,
}

impl Server {
    fn start(
        what: &'static str,
        command: Box<dyn Fn() -> Command + Send + Sync>,
        ready: Box<dyn Fn() -> bool + Send + Sync>,
        log: PathBuf,
        limit: Duration,
    ) -> Self {
        let server = Self {
            what,
            command,
            ready,
            log,
            limit,
            pid: Mutex::new(None),
        };
        server.start_again();
        server
    }

    /// Kills the process outright (SIGKILL), as a crash or a node loss would end it.
    pub fn stop(&self) {
        let mut pid = self.pid.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = pid.take() {
            process::kill(pid);
        }
    }

    /// Starts the process again with the same command, and waits until it is ready; it
    /// blocks, so call it off the async runtime. Returns how long start-up took.
    pub fn start_again(&self) -> Duration {
        let started = Instant::now();
        let pid = process::spawn((self.command)(), &self.log);
        process::wait_until(self.what, self.limit, &self.log, pid, &self.ready);
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
        started.elapsed()
    }
}

pub(super) fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("ROSTER_CONTROL_PLANE_BIN").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "ROSTER_CONTROL_PLANE_BIN is not set. Build the test control plane and point at it:\n  \
             export ROSTER_CONTROL_PLANE_BIN=$(hack/control-plane-bins.sh)\n\
             (the README's test command, hack/test.sh, does this)"
        )
    });
    for b in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kubectl",
    ] {
        assert!(
            dir.join(b).is_file(),
            "{b} is missing from ROSTER_CONTROL_PLANE_BIN={}",
            dir.display()
        );
    }
    dir
}

fn random_token() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{:016x}{:016x}",
        h.finish(),
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    )
}

/// The etcd every shared and isolated control plane keeps its data in, each under its
/// own prefix.
pub(super) fn shared_etcd(bin: &Path) -> &'static str {
    ETCD.get_or_init(|| start_etcd(bin).1)
}

/// A new etcd on free loopback ports: its server (to stop or restart) and its URL.
fn start_etcd(bin: &Path) -> (Server, String) {
    let dir = process::temp_dir("roster-etcd-");
    let (client, peer) = (process::free_port(), process::free_port());
    let url = format!("http://127.0.0.1:{client}");
    let (data, u) = (dir.join("data").display().to_string(), url.clone());
    let program = bin.join("etcd");
    let command = move || {
        let mut cmd = Command::new(&program);
        cmd.args([
            "--data-dir",
            &data,
            "--listen-client-urls",
            &u,
            "--advertise-client-urls",
            &u,
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ]);
        cmd
    };
    let health = format!("{url}/health");
    let ready = move || {
        reqwest::blocking::Client::new()
            .get(&health)
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.contains("\"health\":\"true\""))
    };
    let server = Server::start(
        "etcd",
        Box::new(command),
        Box::new(ready),
        dir.join("etcd.log"),
        Duration::from_secs(30),
    );
    (server, url)
}

/// What a control plane has beside its apiserver.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Extras {
    /// Roster's CRDs and admission policies, installed and Established.
    pub crds: bool,
    /// A kube-controller-manager.
    pub controllers: bool,
}

/// The controllers a test cluster runs: what makes ClusterRole aggregation (`edit`,
/// `view`, `admin`), namespace deletion, garbage collection, ServiceAccounts and their
/// token Secrets, and Deployments work as in a real cluster. Node, volume and cloud
/// controllers have nothing to do without kubelets.
const CONTROLLERS: &str = "clusterrole-aggregation-controller,namespace-controller,\
garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,\
root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller";

/// An HTTPS client that trusts the control plane's CA.
fn trusting(pki: &certs::Pki) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA"))
        .build()
        .expect("https client")
}

/// A kube-controller-manager for the apiserver that `kubeconfig` reaches, ready once the
/// aggregation controller has filled in the built-in `edit` ClusterRole.
fn start_controller_manager(
    dir: &Path,
    kubeconfig: &Path,
    pki: &certs::Pki,
    server: &str,
    token: &str,
) -> Server {
    let p = |path: &Path| path.display().to_string();
    let args = vec![
        format!("--kubeconfig={}", p(kubeconfig)),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", process::free_port()),
        format!("--cert-dir={}", p(&dir.join("kcm"))),
        "--leader-elect=false".into(),
        format!("--controllers={CONTROLLERS}"),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        format!("--service-account-private-key-file={}", p(&pki.sa_key)),
        "--use-service-account-credentials=false".into(),
    ];
    let program = bin_dir().join("kube-controller-manager");
    let command = move || {
        let mut cmd = Command::new(&program);
        cmd.args(&args);
        cmd
    };
    let http = trusting(pki);
    let (edit, token) = (
        format!("{server}/apis/rbac.authorization.k8s.io/v1/clusterroles/edit"),
        token.to_owned(),
    );
    let ready = move || {
        http.get(&edit)
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.json::<serde_json::Value>())
            .is_ok_and(|role| role["rules"].as_array().is_some_and(|r| !r.is_empty()))
    };
    Server::start(
        "kube-controller-manager",
        Box::new(command),
        Box::new(ready),
        dir.join("kube-controller-manager.log"),
        Duration::from_secs(120),
    )
}

/// An apiserver on `etcd_url` under the prefix `/registry-{name}`, with its server (to
/// stop or restart) and what `extras` asks for beside it.
pub(super) fn start_apiserver(
    name: &str,
    etcd_url: &str,
    extras: Extras,
) -> (ControlPlane, Server) {
    let started = std::time::Instant::now();
    let bin = bin_dir();
    let dir = process::temp_dir(&format!("roster-apiserver-{name}-"));
    let pki = certs::generate(&dir);
    let (admin_token, limited_token) = (random_token(), random_token());
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{admin_token},admin,uid-admin,\"system:masters\"\n{limited_token},limited,uid-limited\n"),
    )
    .expect("token file");

    let port = process::free_port();
    let server = format!("https://127.0.0.1:{port}");
    let p = |path: &Path| path.display().to_string();
    let args = vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--etcd-prefix=/registry-{name}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", p(&pki.serving_cert)),
        format!("--tls-private-key-file={}", p(&pki.serving_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        format!("--token-auth-file={}", p(&tokens)),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p(&pki.sa_pub)),
        format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
        format!("--cert-dir={}", p(&dir)),
    ];
    let program = bin.join("kube-apiserver");
    let command = move || {
        let mut cmd = Command::new(&program);
        cmd.args(&args);
        cmd
    };
    let http = trusting(&pki);
    let (readyz, token) = (format!("{server}/readyz"), admin_token.clone());
    let ready = move || {
        http.get(&readyz)
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t == "ok")
    };
    let process = Server::start(
        "kube-apiserver",
        Box::new(command),
        Box::new(ready),
        dir.join("kube-apiserver.log"),
        Duration::from_secs(120),
    );

    let kubeconfig = write_kubeconfig(&dir, "admin", &server, &pki.ca_cert, &admin_token);
    let limited_kubeconfig =
        write_kubeconfig(&dir, "limited", &server, &pki.ca_cert, &limited_token);
    let controllers = extras.controllers;
    if controllers {
        start_controller_manager(&dir, &kubeconfig, &pki, &server, &admin_token);
    }
    let cp = ControlPlane {
        bin,
        kubeconfig,
        limited_kubeconfig,
        server,
        ca_cert: pki.ca_cert.clone(),
        controllers,
    };
    if extras.crds {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let client = cp.client().await;
            install(&client).await;
        });
    }
    eprintln!(
        "harness: {name} control plane ready in {:?} at {}",
        started.elapsed(),
        cp.server
    );
    (cp, process)
}

/// A control plane of a test's own: its own etcd as well as its own apiserver, so that
/// the test can stop and restart either without touching any other test.
pub(super) fn start_own(name: &str) -> OwnControlPlane {
    let bin = bin_dir();
    let (etcd, url) = start_etcd(&bin);
    let extras = Extras {
        crds: true,
        controllers: false,
    };
    let (cp, apiserver) = start_apiserver(name, &url, extras);
    OwnControlPlane {
        cp,
        etcd: etcd.into(),
        apiserver: apiserver.into(),
    }
}

pub(super) fn write_kubeconfig(
    dir: &Path,
    user: &str,
    server: &str,
    ca: &Path,
    token: &str,
) -> PathBuf {
    let path = dir.join(format!("{user}.kubeconfig"));
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: roster-it\n  cluster:\n    server: {server}\n    \
         certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}\n  \
         context:\n    cluster: roster-it\n    user: {user}\ncurrent-context: {user}\n",
        ca = ca.display()
    );
    std::fs::write(&path, yaml).expect("kubeconfig");
    path
}

/// Applies Roster's CRDs and waits until each is Established.
async fn install(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in roster::api::crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(
            &name,
            &PatchParams::apply("roster-it").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing {name}: {e}"));
    }
    for crd in roster::api::crds() {
        let name = crd.metadata.name.expect("CRD name");
        let cond = kube::runtime::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(crds.clone(), &name, cond),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} not Established within 30s"))
        .unwrap_or_else(|e| panic!("watching {name}: {e}"));
    }
    install_admission(client).await;
}

/// Applies Roster's admission policies and their bindings, as a user would beside the
/// CRDs.
async fn install_admission(client: &Client) {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use roster::api::admission;
    let pp = PatchParams::apply("roster-it").force();
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    for p in admission::policies() {
        let name = p.metadata.name.clone().expect("policy name");
        policies
            .patch(&name, &pp, &Patch::Apply(&p))
            .await
            .unwrap_or_else(|e| panic!("installing policy {name}: {e}"));
    }
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    for b in admission::bindings() {
        let name = b.metadata.name.clone().expect("binding name");
        bindings
            .patch(&name, &pp, &Patch::Apply(&b))
            .await
            .unwrap_or_else(|e| panic!("installing policy binding {name}: {e}"));
    }
}
