//! Test support: a real etcd and kube-apiserver on loopback, started once per test binary
//! with certificates made for the run, RBAC on, an admin and a limited user. Tests get a
//! `kube::Client`, their own namespace, and kubectl; everything started stops when the
//! binary exits.
//!
//! The binaries come from `hack/control-plane-bins.sh`; the README's test command exports
//! their directory as `ROSTER_CONTROL_PLANE_BIN`. Without it the tests fail: a missing
//! component is never a silent skip.

pub mod apps;
pub mod certs;
pub mod control_plane;
pub mod faults;
pub mod ldap;
pub mod operator;
pub mod postgres;
pub mod process;
pub mod roll;
pub mod scim;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// Whether `identity`'s status says `Synced` for its current generation.
pub fn synced(identity: &roster::api::Identity) -> bool {
    identity.status.as_ref().is_some_and(|st| {
        st.observed_generation == identity.metadata.generation
            && roster::api::conditions::find(&st.conditions, roster::api::conditions::SYNCED)
                .is_some_and(|c| c.status == "True")
    })
}

/// Server-side applies `obj` (a Secret or any Roster kind; namespaced ones into `ns`).
pub async fn apply(client: &Client, ns: &str, obj: serde_json::Value) {
    use k8s_openapi::api::core::v1::Secret;
    use roster::api::{Connector, Identity, IdentitySource, Role, RoleBinding};
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
        Some("IdentitySource") => Api::<IdentitySource>::namespaced(c, ns)
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

/// The Go tool `name` (helm, umoci, promtool, lua-health) that hack/go-tools.sh built.
pub fn go_tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("ROSTER_GO_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "ROSTER_GO_TOOLS_BIN is not set. Build helm, umoci, promtool and lua-health and point at them:\n  \
                 export ROSTER_GO_TOOLS_BIN=$(hack/go-tools.sh)\n\
                 (the README's test command, hack/test.sh, does this)"
            )
        });
    let tool = dir.join(name);
    assert!(
        tool.is_file(),
        "no {name} in ROSTER_GO_TOOLS_BIN={}",
        dir.display()
    );
    tool
}

/// The username the apiserver sees for `client` (a SelfSubjectReview, as `kubectl auth
/// whoami` asks).
pub async fn whoami(client: &Client) -> String {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("a username")
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
    /// The CA that signed the apiserver's serving certificate.
    pub ca_cert: PathBuf,
    /// Whether a kube-controller-manager runs beside it (the shared control plane).
    pub controllers: bool,
}

static MAIN: OnceLock<ControlPlane> = OnceLock::new();
static BARE: OnceLock<ControlPlane> = OnceLock::new();

/// The shared control plane, with Roster's CRDs installed and Established, and a
/// kube-controller-manager: a cluster as users run one, less its nodes.
pub fn control_plane() -> &'static ControlPlane {
    let extras = Extras {
        crds: true,
        controllers: true,
    };
    MAIN.get_or_init(|| on_plain_thread(move || start("main", extras)))
}

/// An empty cluster with a kube-controller-manager: where the Helm chart installs
/// Roster's CRDs and policies itself, and its Deployment's pods are made.
pub fn chart_control_plane() -> &'static ControlPlane {
    static CHART: OnceLock<ControlPlane> = OnceLock::new();
    let extras = Extras {
        crds: false,
        controllers: true,
    };
    CHART.get_or_init(|| on_plain_thread(move || start("chart", extras)))
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
    let cp: &'static ControlPlane = Box::leak(Box::new(on_plain_thread(move || {
        let extras = Extras {
            crds: true,
            controllers: false,
        };
        start(name, extras)
    })));
    planes.insert(name, cp);
    cp
}

/// A second apiserver on the same etcd under another prefix: an empty cluster without
/// Roster's CRDs.
pub fn bare_control_plane() -> &'static ControlPlane {
    let extras = Extras {
        crds: false,
        controllers: false,
    };
    BARE.get_or_init(|| on_plain_thread(move || start("bare", extras)))
}

/// Runs `f` on a thread outside any async runtime: start-up blocks, and reqwest's
/// blocking client refuses to run inside one.
pub fn on_plain_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs the blocking `f` on a thread of its own, outside the async runtime, and awaits
/// its end: the runtime (and every proxy on it) goes on meanwhile.
pub async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    match rx.await.expect("the thread sends before it ends") {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A shared or isolated control plane: an apiserver of its own on the shared etcd.
fn start(name: &str, extras: Extras) -> ControlPlane {
    let etcd = control_plane::shared_etcd(&control_plane::bin_dir());
    control_plane::start_apiserver(name, etcd, extras).0
}

use control_plane::Extras;
pub use control_plane::OwnControlPlane;

/// A control plane with its own etcd and apiserver, for a test that stops and restarts
/// them; it is the test's to keep, and stops with the test binary.
pub fn own_control_plane(name: &str) -> OwnControlPlane {
    let name = name.to_owned();
    on_plain_thread(move || control_plane::start_own(&name))
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
        if self.controllers {
            settled(client, &name).await;
        }
        name
    }

    /// A kubeconfig that authenticates as `user` with `token` (a ServiceAccount's, say).
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> PathBuf {
        let dir = process::temp_dir("roster-kubeconfig-");
        control_plane::write_kubeconfig(&dir, user, &self.server, &self.ca_cert, token)
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

/// Waits until the controllers have given namespace `ns` what every namespace gets — its
/// `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap — so that a test that
/// reads the namespace whole does not see them arrive midway.
async fn settled(client: &Client, ns: &str) {
    use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
    let (sas, cms) = (
        Api::<ServiceAccount>::namespaced(client.clone(), ns),
        Api::<ConfigMap>::namespaced(client.clone(), ns),
    );
    for _ in 0..600 {
        let sa = sas.get_opt("default").await.ok().flatten();
        let cm = cms.get_opt("kube-root-ca.crt").await.ok().flatten();
        if sa.is_some() && cm.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("namespace {ns} got no default ServiceAccount and root CA within 30s");
}

async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}
