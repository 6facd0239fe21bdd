//! One `roster run` for the whole test binary, against the main control plane, for the
//! tests that need an operator at work. Killed when the binary exits.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use super::{control_plane, process};

/// The shared operator.
pub struct SharedOperator {
    /// Its log file.
    pub log: PathBuf,
    /// Where it serves its SCIM push endpoint (`http://127.0.0.1:PORT`).
    pub scim: String,
    /// Where it serves /metrics (`http://127.0.0.1:PORT`).
    pub probe: String,
}

static OPERATOR: OnceLock<SharedOperator> = OnceLock::new();

impl SharedOperator {
    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its Identity lanes' queue depths and running reconciles, from /metrics: what a
    /// test that waited too long shows of the load it waited behind.
    pub async fn lanes(&self) -> String {
        let text = match reqwest::get(format!("{}/metrics", self.probe)).await {
            Ok(r) => r
                .text()
                .await
                .unwrap_or_else(|e| format!("(no metrics: {e})")),
            Err(e) => format!("(no metrics: {e})"),
        };
        text.lines()
            .filter(|l| {
                l.starts_with("roster_identity_queue_depth")
                    || l.starts_with("roster_identity_reconciles_running")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The test servers listen on loopback, which the operator refuses unless allowed: the
/// operator under test allows it, as `hack/run.sh` does (`env` may override it).
const LOOPBACK: &str = "127.0.0.0/8,::1/128";

/// Starts the shared operator once and waits until it reports ready.
pub fn shared() -> &'static SharedOperator {
    OPERATOR.get_or_init(|| {
        let cp = control_plane();
        let port = process::free_port();
        let scim = format!("127.0.0.1:{}", process::free_port());
        let log = process::temp_dir("roster-operator-").join("roster.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.args(["run", "--probe-addr", &format!("127.0.0.1:{port}")])
            .args(["--scim-addr", &scim, "--scim-plaintext"])
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("ROSTER_ALLOW_TARGET_NETWORKS", LOOPBACK)
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
        SharedOperator {
            log,
            scim: format!("http://{scim}"),
            probe: format!("http://127.0.0.1:{port}"),
        }
    })
}

/// What a process has used.
#[allow(dead_code)] // read by the benchmark
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Resident memory now, in bytes.
    pub rss: u64,
    /// The most resident memory so far, in bytes.
    pub peak_rss: u64,
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
}

/// The operator as a child process, killed if the test ends early.
pub struct Operator {
    child: Child,
    log: std::path::PathBuf,
    pub probe: String,
}

impl Operator {
    pub fn start(kubeconfig: &Path) -> Self {
        Self::start_logging(
            kubeconfig,
            &std::env::var("ROSTER_IT_LOG").unwrap_or_else(|_| "info".into()),
        )
    }

    /// [`Operator::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(kubeconfig: &Path, filter: &str) -> Self {
        Self::start_with(kubeconfig, filter, &[])
    }

    /// [`Operator::start`] with `RUST_LOG` set to `filter` and the variables `env`.
    pub fn start_with(kubeconfig: &Path, filter: &str, env: &[(&str, &str)]) -> Self {
        let port = process::free_port();
        let log = process::temp_dir("roster-run-").join("roster.log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["run", "--probe-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", kubeconfig)
            .env("ROSTER_ALLOW_TARGET_NETWORKS", LOOPBACK)
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("log")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start roster run");
        Self {
            child,
            log,
            probe: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process's resident memory now and at its peak, in bytes, and the CPU time it
    /// has used (user and system), from /proc.
    #[allow(dead_code)] // the benchmark's
    pub fn usage(&self) -> Usage {
        let id = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{id}/status")).unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        let stat = std::fs::read_to_string(format!("/proc/{id}/stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) start at the state, field 3;
        // utime and stime are fields 14 and 15.
        let ticks: u64 = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().skip(11).take(2))
            .into_iter()
            .flatten()
            .filter_map(|t| t.parse::<u64>().ok())
            .sum();
        // SAFETY: sysconf has no memory-safety preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        Usage {
            rss: kib("VmRSS:"),
            peak_rss: kib("VmHWM:"),
            cpu_seconds: ticks as f64 / per_second as f64,
        }
    }

    /// Starts the peak RSS (`VmHWM`) over from the RSS now, so that the next reading's
    /// peak is one phase's (Linux's `clear_refs`, value 5); returns the peak until now,
    /// in bytes.
    #[allow(dead_code)] // the benchmark's
    pub fn restart_peak(&self) -> std::io::Result<u64> {
        let peak = self.usage().peak_rss;
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")?;
        Ok(peak)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no exit 20s after SIGTERM:\n{}", self.log()))
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    /// Polls `check` every 200 ms for up to `limit`; on failure the operator's log is shown.
    pub async fn eventually<F, Fut>(&self, what: &str, limit: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{what}: not within {limit:?}; operator log:\n{}",
            self.log()
        );
    }
}

impl Operator {
    /// Kills the process outright (SIGKILL): no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An operator kept running as a kubelet keeps a pod's container running: when the
/// process exits (it does on a lost Lease), a new one starts with the same settings.
pub struct Kubelet {
    kubeconfig: PathBuf,
    env: Vec<(String, String)>,
    current: Operator,
    ended: Vec<(std::process::ExitStatus, String)>,
}

impl Kubelet {
    /// Starts the operator on `kubeconfig` with the variables `env`.
    pub fn start(kubeconfig: &Path, env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self {
            kubeconfig: kubeconfig.to_owned(),
            current: Self::spawn(kubeconfig, &env),
            env,
            ended: Vec::new(),
        }
    }

    fn spawn(kubeconfig: &Path, env: &[(String, String)]) -> Operator {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Operator::start_with(
            kubeconfig,
            &std::env::var("ROSTER_IT_LOG").unwrap_or_else(|_| "info".into()),
            &env,
        )
    }

    /// Starts a new process if the current one has ended; returns whether it had.
    pub fn tend(&mut self) -> bool {
        let Some(status) = self.current.exited() else {
            return false;
        };
        eprintln!("kubelet: the operator exited ({status}); starting it again");
        self.ended.push((status, self.current.log()));
        self.current = Self::spawn(&self.kubeconfig, &self.env);
        true
    }

    /// The exit status of every process that ended, in order.
    pub fn exits(&self) -> Vec<std::process::ExitStatus> {
        self.ended.iter().map(|(s, _)| *s).collect()
    }

    /// Every process's log, the ended ones first.
    pub fn log(&self) -> String {
        let mut all: String = self.ended.iter().map(|(_, log)| log.as_str()).collect();
        all.push_str(&self.current.log());
        all
    }
}
