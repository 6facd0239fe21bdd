//! What the processes say about themselves: the operator's and the apiserver's metrics
//! (Prometheus text), and every component's CPU time from /proc.

use std::collections::BTreeMap;

use kube::Client;

/// One scrape: every sample, keyed by its name and label text as exposed.
#[derive(Clone, Debug, Default)]
pub struct Samples(BTreeMap<String, f64>);

impl Samples {
    /// Parses the text format; comments and unparsable lines are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse::<f64>().ok()?))
            })
            .collect();
        Self(samples)
    }

    /// The sum of the samples of `name` whose labels contain every one of `labels`
    /// (each written `key="value"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
                n == name && labels.iter().all(|l| rest.contains(l))
            })
            .map(|(_, v)| v)
            // An empty sum is -0.0, which prints as "-0".
            .fold(0.0, |a, b| a + b)
    }

    /// `self` minus `before`, sample by sample (counters over a window).
    pub fn since(&self, before: &Samples) -> Samples {
        Samples(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0)))
                .collect(),
        )
    }
}

/// The operator's `/metrics`.
pub async fn operator(probe: &str) -> Result<Samples, String> {
    let text = reqwest::get(format!("{probe}/metrics"))
        .await
        .map_err(|e| format!("scrape the operator: {e}"))?
        .text()
        .await
        .map_err(|e| format!("scrape the operator: {e}"))?;
    Ok(Samples::parse(&text))
}

/// The apiserver's `/metrics`, read as the benchmark's admin.
pub async fn apiserver(client: &Client) -> Result<Samples, String> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(req)
        .await
        .map_err(|e| format!("scrape the apiserver: {e}"))?;
    Ok(Samples::parse(&text))
}

/// Writes the operator made to downstream apps (every operation that changes one).
pub const WRITES: [&str; 7] = [
    "create",
    "adopt",
    "update",
    "set_active",
    "delete",
    "grant",
    "revoke",
];

/// Downstream requests of `operation` on `connector` (`None`: every connector).
pub fn requests(s: &Samples, connector: Option<&str>, operation: &str) -> f64 {
    let op = format!("operation=\"{operation}\"");
    match connector {
        Some(c) => {
            let c = format!("connector=\"{c}\"");
            s.sum("roster_downstream_requests_total", &[&op, &c])
        }
        None => s.sum("roster_downstream_requests_total", &[&op]),
    }
}

/// Every write of [`WRITES`] on `connector` (`None`: every connector).
pub fn writes(s: &Samples, connector: Option<&str>) -> f64 {
    WRITES.iter().map(|op| requests(s, connector, op)).sum()
}

/// Status writes the apiserver took on Roster's kinds.
pub fn status_writes(s: &Samples) -> f64 {
    s.sum(
        "apiserver_request_total",
        &[r#"group="roster.dev""#, r#"subresource="status""#],
    )
}

/// [`status_writes`] by resource (`identities`, `connectors`, …), those with any.
pub fn status_writes_by_resource(s: &Samples) -> BTreeMap<String, f64> {
    ["identities", "roles", "rolebindings", "connectors"]
        .into_iter()
        .map(|r| {
            let resource = format!("resource=\"{r}\"");
            let n = s.sum(
                "apiserver_request_total",
                &[
                    r#"group="roster.dev""#,
                    r#"subresource="status""#,
                    &resource,
                ],
            );
            (r.to_owned(), n)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

/// CPU-seconds used so far by each process this one started, with its live
/// descendants and its reaped children (PostgreSQL's backends are the postmaster's
/// children), keyed by command name, and by this process as `roster-bench`. Read from
/// /proc; Linux only.
pub fn children_cpu() -> BTreeMap<String, f64> {
    let me = std::process::id();
    let procs: Vec<(u32, u32, String, f64, f64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the command: state, ppid (field 4), … utime, stime, cutime, cstime
            // (fields 14–17).
            let ppid = f.get(1)?.parse().ok()?;
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            Some((pid, ppid, comm, n(11) + n(12), n(13) + n(14)))
        })
        .collect();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let descends_from = |mut pid: u32, top: u32| {
        for _ in 0..64 {
            let Some(parent) = procs.iter().find(|p| p.0 == pid).map(|p| p.1) else {
                return false;
            };
            if parent == top {
                return true;
            }
            pid = parent;
        }
        false
    };
    let mut out = BTreeMap::new();
    for (pid, _, comm, own, reaped) in procs.iter().filter(|p| p.1 == me) {
        let below: f64 = procs
            .iter()
            .filter(|p| descends_from(p.0, *pid))
            .map(|p| p.3)
            .sum();
        // The harness starts PostgreSQL through runuser (it refuses to run as root).
        let name = if comm == "runuser" { "postgres" } else { comm };
        *out.entry(name.to_owned()).or_insert(0.0) += (own + reaped + below) / hz;
    }
    if let Some((.., own, _)) = procs.iter().find(|p| p.0 == me) {
        out.insert("roster-bench".to_owned(), own / hz);
    }
    out
}

/// The pure parts' checks.
pub fn check() {
    let s = Samples::parse(
        "# HELP x\n\
         roster_downstream_requests_total{connector=\"b/scim\",operation=\"observe\",outcome=\"ok\"} 5\n\
         roster_downstream_requests_total{connector=\"b/pg\",operation=\"observe\",outcome=\"ok\"} 2\n\
         roster_downstream_requests_total{connector=\"b/pg\",operation=\"grant\",outcome=\"ok\"} 3\n\
         apiserver_request_total{code=\"200\",group=\"roster.dev\",resource=\"identities\",subresource=\"status\",verb=\"APPLY\"} 4\n\
         apiserver_request_total{code=\"200\",group=\"roster.dev\",resource=\"identities\",verb=\"GET\"} 9\n",
    );
    assert_eq!(requests(&s, None, "observe"), 7.0);
    assert_eq!(requests(&s, Some("b/pg"), "observe"), 2.0);
    assert_eq!(writes(&s, Some("b/pg")), 3.0);
    assert_eq!(status_writes(&s), 4.0);
    let later = Samples::parse(
        "roster_downstream_requests_total{connector=\"b/scim\",operation=\"observe\",outcome=\"ok\"} 8\n",
    );
    assert_eq!(requests(&later.since(&s), Some("b/scim"), "observe"), 3.0);
}

/// Identities the operator has queued or is reconciling now.
pub fn identity_work(s: &Samples) -> f64 {
    s.sum("roster_identity_queue_depth", &[]) + s.sum("roster_identity_reconciles_running", &[])
}
