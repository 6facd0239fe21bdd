//! The operator image (`hack/image.sh`), run as the chart's pod would run it: its own
//! files under chroot, its own user, in-cluster configuration from a ServiceAccount
//! token in the kubelet's place for it, and the chart's arguments.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;

use crate::harness::{ControlPlane, go_tool, process};

/// The OCI image reference hack/image.sh printed: `oci:LAYOUT:TAG`.
fn image() -> (String, String) {
    let reference = std::env::var("ROSTER_IMAGE").unwrap_or_else(|_| {
        panic!(
            "ROSTER_IMAGE is not set. Build the operator image and point at it:\n  \
             export ROSTER_IMAGE=$(hack/image.sh)\n\
             (the README's test command, hack/test.sh, does this)"
        )
    });
    let rest = reference.strip_prefix("oci:").expect("an oci: reference");
    let (layout, tag) = rest.rsplit_once(':').expect("oci:LAYOUT:TAG");
    (layout.to_owned(), tag.to_owned())
}

/// The image unpacked as a runtime bundle: its root filesystem and OCI runtime config.
fn unpack() -> (PathBuf, Value) {
    let (layout, tag) = image();
    let bundle = process::temp_dir("roster-image-").join("bundle");
    let out = Command::new(go_tool("umoci"))
        .args(["unpack", "--image", &format!("{layout}:{tag}")])
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(bundle.join("config.json")).expect("config.json");
    (
        bundle.join("rootfs"),
        serde_json::from_str(&config).expect("runtime config"),
    )
}

/// A running operator from the image; killed when dropped.
pub struct Pod {
    pid: u32,
    /// Its probe and metrics endpoint.
    pub probes: String,
    log: PathBuf,
}

impl Drop for Pod {
    fn drop(&mut self) {
        process::kill(self.pid);
    }
}

/// Starts the image's entrypoint as a pod of ServiceAccount `sa` in `namespace` would
/// run: `token` and the cluster's CA where the kubelet mounts them, the service host and
/// port in the environment, the image's user, and nothing of the host's but loopback.
pub fn run_as_pod(cp: &ControlPlane, namespace: &str, token: &str, ca: &str) -> Pod {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "running the image under chroot needs root"
    );
    let (rootfs, config) = unpack();
    let sa = rootfs.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&sa).expect("the token's directory");
    for (file, text) in [("token", token), ("ca.crt", ca), ("namespace", namespace)] {
        std::fs::write(sa.join(file), text).expect("a token file");
    }
    let process = &config["process"];
    let (uid, gid) = (&process["user"]["uid"], &process["user"]["gid"]);
    assert_eq!(
        (uid.as_u64(), gid.as_u64()),
        (Some(65532), Some(65532)),
        "{process}"
    );
    let args: Vec<&str> = process["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        ["/usr/local/bin/roster", "run"],
        "entrypoint and command"
    );
    let port = process::free_port();
    let (host, api_port) = cp
        .server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .expect("host:port");
    let mut cmd = Command::new("chroot");
    cmd.arg(format!("--userspec={uid}:{gid}"))
        .arg(&rootfs)
        .args(&args)
        // As the chart passes them.
        .args([
            &format!("--probe-addr=127.0.0.1:{port}"),
            "--log-format=json",
        ])
        .env_clear()
        .envs(
            process["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.split_once('=')),
        )
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", api_port)
        .env("POD_NAMESPACE", namespace)
        .env("POD_NAME", "roster-from-the-image")
        .env("RUST_LOG", "info");
    let log = rootfs.with_file_name("roster.log");
    let pid = process::spawn(cmd, &log);
    let probes = format!("http://127.0.0.1:{port}");
    let readyz = format!("{probes}/readyz");
    let http = reqwest::blocking::Client::new();
    process::wait_until(
        "the operator from the image",
        Duration::from_secs(60),
        &log,
        pid,
        || {
            http.get(&readyz)
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
    );
    Pod { pid, probes, log }
}

impl Pod {
    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
