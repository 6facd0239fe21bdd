//! One `roster run` for the whole test binary, against the main control plane, for the
//! tests that need an operator at work. Killed when the binary exits.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use super::{control_plane, process};

/// The shared operator.
pub struct SharedOperator {
    /// Its log file.
    pub log: PathBuf,
}

static OPERATOR: OnceLock<SharedOperator> = OnceLock::new();

impl SharedOperator {
    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts the shared operator once and waits until it reports ready.
pub fn shared() -> &'static SharedOperator {
    OPERATOR.get_or_init(|| {
        let cp = control_plane();
        let port = process::free_port();
        let log = process::temp_dir("roster-operator-").join("roster.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.args(["run", "--probe-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", &cp.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("ROSTER_IT_LOG").unwrap_or_else(|_| "info".into()),
            );
        let pid = process::spawn(cmd, &log);
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        let log_for_wait = log.clone();
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            process::wait_until(
                "roster run",
                Duration::from_secs(60),
                &log_for_wait,
                pid,
                || {
                    http.get(&readyz)
                        .send()
                        .is_ok_and(|r| r.status().is_success())
                },
            );
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
        SharedOperator { log }
    })
}
