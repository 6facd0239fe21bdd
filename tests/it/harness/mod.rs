//! Test support: a real etcd and kube-apiserver on loopback, started once per test binary
//! with certificates made for the run, RBAC on, an admin and a limited user. Tests get a
//! `kube::Client`, their own namespace, and kubectl; everything started stops when the
//! binary exits.
//!
//! The binaries come from `hack/control-plane-bins.sh`; the README's test command exports
//! their directory as `ROSTER_CONTROL_PLANE_BIN`. Without it the tests fail: a missing
//! component is never a silent skip.

pub mod apps;
mod certs;
pub mod faults;
pub mod ldap;
pub mod operator;
pub mod postgres;
pub mod process;
pub mod scim;

use std::{
    hash::{BuildHasher, Hasher},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// Server-side applies `obj` (a Secret or any Roster kind; namespaced ones into `ns`).
pub async fn apply(client: &Client, ns: &str, obj: serde_json::Value) {
    use k8s_openapi::api::core::v1::Secret;
    use roster::api::{Connector, Identity, Role, RoleBinding};
    let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
    let pp = PatchParams::apply("it").force();
    let patch = Patch::Apply(&obj);
    let c = client.clone();
    match obj["kind"].as_str() {
        Some("Secret") => Api::<Secret>::namespaced(c, ns)
            .patch(&name, &pp, &patch)
            .await
            .map(|_| ()),
        Some("Connector") => Api::<Connector>::namespaced(c, ns)
            .patch(&name, &pp, &patch)
            .await
            .map(|_| ()),
        Some("Role") => Api::<Role>::namespaced(c, ns)
            .patch(&name, &pp, &patch)
            .await
            .map(|_| ()),
        Some("RoleBinding") => Api::<RoleBinding>::namespaced(c, ns)
            .patch(&name, &pp, &patch)
            .await
            .map(|_| ()),
        Some("Identity") => Api::<Identity>::all(c)
            .patch(&name, &pp, &patch)
            .await
            .map(|_| ()),
        other => panic!("unexpected kind {other:?}"),
    }
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// `roster report` with `args` against `kubeconfig`: its standard output, once it
/// succeeded.
pub fn roster_report(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("report")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run roster report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running control plane.
pub struct ControlPlane {
    /// Directory of the built binaries (kube-apiserver, etcd, kubectl).
    pub bin: PathBuf,
    /// An admin kubeconfig (group `system:masters`).
    pub kubeconfig: PathBuf,
    /// A kubeconfig for user `limited`, who has no RBAC grants at all.
    pub limited_kubeconfig: PathBuf,
    /// The apiserver's URL.
    pub server: String,
}

static MAIN: OnceLock<ControlPlane> = OnceLock::new();
static BARE: OnceLock<ControlPlane> = OnceLock::new();
static ETCD: OnceLock<String> = OnceLock::new();

/// The shared control plane, with Roster's CRDs installed and Established.
pub fn control_plane() -> &'static ControlPlane {
    MAIN.get_or_init(|| on_plain_thread(|| start("main", true)))
}

/// An apiserver of its own, with the CRDs, on the same etcd under its own prefix: for a
/// test that runs an operator of its own, which must not meet the shared one.
pub fn isolated_control_plane(name: &'static str) -> &'static ControlPlane {
    static PLANES: std::sync::Mutex<
        std::collections::BTreeMap<&'static str, &'static ControlPlane>,
    > = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut planes = PLANES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cp) = planes.get(name) {
        return cp;
    }
    let cp: &'static ControlPlane = Box::leak(Box::new(on_plain_thread(move || start(name, true))));
    planes.insert(name, cp);
    cp
}

/// A second apiserver on the same etcd under another prefix: an empty cluster without
/// Roster's CRDs.
pub fn bare_control_plane() -> &'static ControlPlane {
    BARE.get_or_init(|| on_plain_thread(|| start("bare", false)))
}

/// Runs start-up on a thread outside any async runtime: it blocks, and reqwest's
/// blocking client refuses to run inside one.
fn on_plain_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("ROSTER_CONTROL_PLANE_BIN").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "ROSTER_CONTROL_PLANE_BIN is not set. Build the test control plane and point at it:\n  \
             export ROSTER_CONTROL_PLANE_BIN=$(hack/control-plane-bins.sh)\n\
             (the README's test command, hack/test.sh, does this)"
        )
    });
    for b in ["etcd", "kube-apiserver", "kubectl"] {
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

fn etcd(bin: &Path) -> &'static str {
    ETCD.get_or_init(|| {
        let dir = process::temp_dir("roster-etcd-");
        let (client, peer) = (process::free_port(), process::free_port());
        let url = format!("http://127.0.0.1:{client}");
        let mut cmd = Command::new(bin.join("etcd"));
        cmd.args([
            "--data-dir",
            &dir.join("data").display().to_string(),
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
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
        let log = dir.join("etcd.log");
        let pid = process::spawn(cmd, &log);
        let http = reqwest::blocking::Client::new();
        process::wait_until("etcd", Duration::from_secs(30), &log, pid, || {
            http.get(format!("{url}/health"))
                .send()
                .and_then(|r| r.text())
                .is_ok_and(|t| t.contains("\"health\":\"true\""))
        });
        url
    })
}

fn start(name: &str, install_crds: bool) -> ControlPlane {
    let started = std::time::Instant::now();
    let bin = bin_dir();
    let etcd_url = etcd(&bin);
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
    let mut cmd = Command::new(bin.join("kube-apiserver"));
    cmd.args([
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
    ]);
    let log = dir.join("kube-apiserver.log");
    let pid = process::spawn(cmd, &log);
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA"))
        .build()
        .expect("https client");
    process::wait_until(
        "kube-apiserver",
        Duration::from_secs(120),
        &log,
        pid,
        || {
            http.get(format!("{server}/readyz"))
                .bearer_auth(&admin_token)
                .send()
                .and_then(|r| r.text())
                .is_ok_and(|t| t == "ok")
        },
    );

    let kubeconfig = write_kubeconfig(&dir, "admin", &server, &pki.ca_cert, &admin_token);
    let limited_kubeconfig =
        write_kubeconfig(&dir, "limited", &server, &pki.ca_cert, &limited_token);
    let cp = ControlPlane {
        bin,
        kubeconfig,
        limited_kubeconfig,
        server,
    };
    if install_crds {
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
    cp
}

fn write_kubeconfig(dir: &Path, user: &str, server: &str, ca: &Path, token: &str) -> PathBuf {
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
}

impl ControlPlane {
    /// A client acting as the admin.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// A client acting as user `limited`.
    pub async fn limited_client(&self) -> Client {
        client_from(&self.limited_kubeconfig).await
    }

    /// Creates a namespace of the test's own, `it-PREFIX-N`.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("it-{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// Runs kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }
}

async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}
