//! The soak: 250 people in the test command (`hack/test.sh --soak` for a thousand,
//! `ROSTER_SOAK_PEOPLE` for any number) join, move and leave through a fault proxy in front of the real SCIM, LDAP and PostgreSQL servers —
//! resets, stalls, slow and truncated answers, connections cut mid-stream, and for SCIM
//! 500s and 429s with Retry-After. Meanwhile the apiserver, and then etcd, are killed and
//! started again; then every downstream goes down for a minute and comes back. The
//! servers' own state, read by name, must end exactly as declared: no wrongful disable, no
//! missing grant, no leaver with access.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use kube::{Api, api::ListParams};
use roster::api::Identity;

use crate::harness::{
    self,
    apps::Apps,
    faults::{Fault, Proxy},
    ldap,
    operator::Kubelet,
    own_control_plane, postgres,
    roll::{Gaps, Roll},
    scim,
};

/// How long any one phase may take to converge: generous, as the bound is on losing
/// nothing, not on speed (the benchmark measures that).
const LIMIT: Duration = Duration::from_secs(900);
/// How long every downstream stays down.
const OUTAGE: Duration = Duration::from_secs(60);
/// The bound: recovery starts within a minute of the downstream coming back.
const RECOVERY_STARTS: Duration = Duration::from_secs(60);
const STEM: &str = "so";

fn people() -> usize {
    std::env::var("ROSTER_SOAK_PEOPLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(250)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The three Connectors, each pointed at its proxy.
fn connectors(scim_base: &str, proxies: &[Proxy; 3], people: usize) -> Vec<Value> {
    let [s, l, p] = proxies;
    let fast = json!({"requestsPerSecond": 500, "burst": 500});
    // This test is about faults, not budgets: a tenth of everyone moves and more than a
    // tenth leaves, past the default budgets.
    let budgets = json!({"maxRemovals": people, "maxPercent": 100, "windowSeconds": 3600});
    let revocations = json!({"maxAccounts": people, "maxPercent": 100, "windowSeconds": 3600});
    let path = scim_base
        .split_once("//")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, p)| p)
        .unwrap_or_default();
    let spec = |kind: &str, app: Value| json!({"allowPlaintext": true, "rateLimit": fast, "deletionBudget": budgets, "revocationBudget": revocations, kind: app});
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"scim": scim::TOKEN, "ldap": ldap::ROSTER_PASSWORD, "pg": postgres::PASSWORD}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "scim"},
            "spec": spec("scim", json!({"baseUrl": format!("http://127.0.0.1:{}/{path}", s.port),
                "tokenSecretRef": {"name": "creds", "key": "scim"}}))}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "ldap"},
            "spec": spec("ldap", json!({"url": format!("ldap://127.0.0.1:{}", l.port),
                "bindDn": ldap::ROSTER_DN, "bindPasswordSecretRef": {"name": "creds", "key": "ldap"},
                "usersDn": ldap::PEOPLE, "groupsDn": ldap::GROUPS, "disabledUsersDn": ldap::DISABLED}))}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "pg"},
            "spec": spec("postgres", json!({"host": "127.0.0.1", "port": p.port,
                "username": postgres::ADMIN, "passwordSecretRef": {"name": "creds", "key": "pg"},
                "sslMode": "Disable"}))}),
    ]
}

/// `{STEM}-{name}` on the three apps (PostgreSQL: `{STEM}_{name}`); the Role's entitlements.
async fn entitlement(apps: &Apps, name: &str) -> Value {
    postgres::server()
        .superuser()
        .await
        .batch_execute(&format!("CREATE ROLE {STEM}_{name} NOLOGIN"))
        .await
        .expect("PostgreSQL group role");
    ldap::make_group(&format!("{STEM}-{name}")).await;
    apps.scim.group(&format!("{STEM}-{name}")).await;
    json!([
        {"connector": "scim", "name": format!("{STEM}-{name}")},
        {"connector": "ldap", "name": format!("{STEM}-{name}")},
        {"connector": "pg", "name": format!("{STEM}_{name}")},
    ])
}

/// Person `i`: in `team`, and active or terminated.
fn person(i: usize, team: &str, active: bool) -> Value {
    let state = if active { "Active" } else { "Terminated" };
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
        "metadata": {"name": format!("{STEM}-{i:05}")},
        "spec": {"username": username(i), "state": state, "attributes": {"team": team}}})
}

fn username(i: usize) -> String {
    format!("{STEM}.{i:05}")
}

/// What was declared: who is active, and who is in team a (and so holds `extra`).
struct Declared {
    everyone: BTreeSet<String>,
    active: BTreeSet<String>,
    team_a: BTreeSet<String>,
}

impl Declared {
    fn extra(&self) -> BTreeSet<String> {
        self.active.intersection(&self.team_a).cloned().collect()
    }

    /// Per app, how its rolls differ from the declaration.
    fn gaps(&self, staff: &[Roll; 3], extra: &[Roll; 3]) -> [Gaps; 3] {
        let extra_holders = self.extra();
        std::array::from_fn(|i| {
            let s = staff[i].gaps(&self.everyone, &self.active, &self.active);
            let e = extra[i].gaps(&self.everyone, &self.active, &extra_holders);
            Gaps {
                missing: s.missing.union(&e.missing).cloned().collect(),
                excess: s.excess.union(&e.excess).cloned().collect(),
                ..s
            }
        })
    }
}

/// The soak's world: the apps, the proxies and the operator.
struct Soak {
    apps: Apps,
    proxies: [Proxy; 3],
    kubelet: Kubelet,
    client: kube::Client,
}

impl Soak {
    /// Every app's gaps against `declared`, once.
    async fn look(&self, declared: &Declared) -> [Gaps; 3] {
        let staff = self.apps.rolls(STEM, "staff").await;
        let extra = self.apps.rolls(STEM, "extra").await;
        declared.gaps(&staff, &extra)
    }

    /// How many Identities report `Synced` for their current generation: cheap to ask
    /// (the apiserver), unlike reading every app.
    async fn synced(&self) -> (usize, usize) {
        let list = Api::<Identity>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let done = list.iter().filter(|i| harness::synced(i)).count();
        (done, list.len())
    }

    /// Waits until every app shows exactly `declared`; returns how long that took. The
    /// apps are read (in full: slow on single-threaded scim2-server, and slowing the
    /// work watched) once every Identity says it is in sync, and then until they agree.
    async fn converge(&mut self, what: &str, declared: &Declared) -> Duration {
        let start = Instant::now();
        let (mut last, mut looked) = (None, Instant::now());
        while start.elapsed() < LIMIT {
            self.kubelet.tend();
            let (done, all) = self.synced().await;
            if last != Some(done) {
                eprintln!(
                    "  {what} {:>5.1} s: {done} of {all} Identities in sync",
                    start.elapsed().as_secs_f64()
                );
                last = Some(done);
            }
            // Now and then the apps are read anyway: an Identity may stay out of sync
            // for a reason of its own while the apps already agree.
            if done == all || looked.elapsed() > Duration::from_secs(90) {
                looked = Instant::now();
                let gaps = self.look(declared).await;
                let counts = gaps.clone().map(|g| g.counts());
                eprintln!(
                    "  {what} {:>5.1} s: (not enabled, still enabled, missing, excess) on SCIM, LDAP, PostgreSQL: {counts:?}",
                    start.elapsed().as_secs_f64()
                );
                if gaps.iter().all(Gaps::none) {
                    let took = start.elapsed();
                    eprintln!("{what}: converged in {:.1} s", took.as_secs_f64());
                    return took;
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let gaps = self.look(declared).await;
        panic!(
            "{what}: not within {LIMIT:?}; still differing on SCIM, LDAP, PostgreSQL:\n{gaps:#?}\nlast troubles:\n{}",
            troubles(&self.kubelet.log())
        );
    }

    async fn apply_all(&self, objs: impl IntoIterator<Item = Value>) {
        for obj in objs {
            harness::apply(&self.client, "", obj).await;
        }
    }
}

fn troubles(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("={STEM}-")))
        .filter(|l| !l.contains("outcome=\"ok\""))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_join_move_and_leave_through_faults_restarts_and_an_outage() {
    let n = people();
    let own = own_control_plane("soak");
    let client = own.cp.client().await;
    let ns = own.cp.namespace(&client, "soak").await;
    let base = scim::tenant("soak");
    let apps = Apps::new(scim::Direct::new(&base), client.clone()).await;
    let scim_port: u16 = base
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the SCIM port");
    let http = [
        Fault::Reset,
        Fault::Http500,
        Fault::Http429,
        Fault::Slow,
        Fault::Truncate,
        Fault::Stall,
    ];
    let tcp = [
        Fault::Reset,
        Fault::Slow,
        Fault::Truncate,
        Fault::Cut,
        Fault::Stall,
    ];
    let proxies = [
        // SCIM meets most requests on a fresh connection: a fault on every twelfth
        // keeps the run within CI's time and still brings a thousand or so.
        Proxy::start(loopback(scim_port), &http, 12).await,
        Proxy::start(loopback(ldap::server().port), &tcp, 3).await,
        Proxy::start(loopback(postgres::server().port), &tcp, 3).await,
    ];
    for obj in connectors(&base, &proxies, n) {
        harness::apply(&client, &ns, obj).await;
    }
    for (role, expr) in [
        (
            "staff",
            format!("identity.username.startsWith(\"{STEM}.\")"),
        ),
        ("extra", "identity.attributes.team == \"a\"".to_owned()),
    ] {
        let entitlements = entitlement(&apps, role).await;
        harness::apply(
            &client,
            &ns,
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
            "metadata": {"name": role}, "spec": {"entitlements": entitlements}}),
        )
        .await;
        harness::apply(
            &client,
            &ns,
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding",
            "metadata": {"name": role}, "spec": {"role": role, "subjects": {"expression": expr}}}),
        )
        .await;
    }
    let kubelet = Kubelet::start(&own.cp.kubeconfig, &[]);
    let mut soak = Soak {
        apps,
        proxies,
        kubelet,
        client,
    };

    // Joiners: the first half in team a (staff and extra), the rest in team b (staff).
    let team = |i: usize| if i < n / 2 { "a" } else { "b" };
    let mut declared = Declared {
        everyone: (0..n).map(username).collect(),
        active: (0..n).map(username).collect(),
        team_a: (0..n / 2).map(username).collect(),
    };
    soak.apply_all((0..n).map(|i| person(i, team(i), true)))
        .await;
    soak.converge("joiners", &declared).await;

    // Movers (the first tenth leaves team a), then the apiserver is killed and started
    // again; leavers (the last tenth), then etcd is killed and started again.
    let (movers, leavers) = (0..n / 10, n - n / 10..n);
    soak.apply_all(movers.clone().map(|i| person(i, "b", true)))
        .await;
    for i in movers {
        declared.team_a.remove(&username(i));
    }
    let api = own.apiserver.clone();
    let api_down = harness::off_runtime(move || {
        api.stop();
        std::thread::sleep(Duration::from_secs(3));
        api.start_again()
    })
    .await;
    soak.apply_all(leavers.clone().map(|i| person(i, "b", false)))
        .await;
    for i in leavers {
        declared.active.remove(&username(i));
    }
    let etcd = own.etcd.clone();
    let etcd_down = harness::off_runtime(move || {
        etcd.stop();
        std::thread::sleep(Duration::from_secs(3));
        etcd.start_again()
    })
    .await;
    eprintln!(
        "apiserver down 3 s, back in {:.1} s more; etcd down 3 s, back in {:.1} s more",
        api_down.as_secs_f64(),
        etcd_down.as_secs_f64()
    );
    soak.converge("movers and leavers through the restarts", &declared)
        .await;

    // An outage: every downstream goes down while more people leave, and comes back.
    let late = n - n / 10 - n / 20..n - n / 10;
    for p in &soak.proxies {
        p.set_down(true);
    }
    soak.apply_all(late.clone().map(|i| person(i, "b", false)))
        .await;
    for i in late {
        declared.active.remove(&username(i));
    }
    tokio::time::sleep(OUTAGE).await;
    let back = k8s_openapi::jiff::Timestamp::now();
    for p in &soak.proxies {
        p.set_down(false);
    }
    let recovered = soak.converge("after the outage", &declared).await;
    let started = first_change_since(&soak.kubelet.log(), back)
        .expect("the late leavers' changes are in the evidence log");
    let refused: u64 = soak.proxies.iter().map(Proxy::refused).sum();
    eprintln!(
        "outage of {OUTAGE:?} ({refused} connections refused): recovery started within {:.1} s of the apps coming back, converged in {:.1} s",
        started.as_secs_f64(),
        recovered.as_secs_f64()
    );
    assert!(
        started <= RECOVERY_STARTS,
        "recovery started {started:?} after the apps came back (backoff not capped?)"
    );

    // The faults stop: the state stays exactly as declared.
    for p in &soak.proxies {
        p.set_faults(false);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gaps = soak.look(&declared).await;
    assert!(
        gaps.iter().all(Gaps::none),
        "the state moved after the faults stopped: {gaps:#?}"
    );
    let log = soak.kubelet.log();
    no_wrongful_change(&log, &declared);
    let injected: Vec<_> = soak.proxies.iter().map(Proxy::injected).collect();
    let total: u64 = soak.proxies.iter().map(Proxy::total).sum();
    for (app, p) in ["SCIM", "LDAP", "PostgreSQL"].iter().zip(&soak.proxies) {
        assert!(p.total() > 0, "no fault reached {app}");
    }
    assert!(
        total >= (n as u64) / 2,
        "only {total} faults for {n} people: the soak did not soak"
    );
    let exits = soak.kubelet.exits();
    eprintln!("faults injected (SCIM, LDAP, PostgreSQL): {injected:?}");
    eprintln!(
        "checked by name on SCIM, LDAP and PostgreSQL: {n} joiners, {} movers, {} leavers ({} of them during an outage) under {total} injected faults, an apiserver and an etcd restart and {} operator restarts ({exits:?}); 0 wrongful disables, 0 missing grants, 0 leavers with access",
        n / 10,
        n / 10 + n / 20,
        n / 20,
        exits.len()
    );
}

/// How long after `since` the first downstream change of the soak's people was made, by
/// the evidence log's own timestamps (a look at the apps takes seconds to read).
fn first_change_since(log: &str, since: k8s_openapi::jiff::Timestamp) -> Option<Duration> {
    log.lines()
        .filter(|l| l.contains("downstream change") && l.contains(&format!("identity={STEM}-")))
        .filter(|l| l.contains("outcome=\"ok\""))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .parse::<k8s_openapi::jiff::Timestamp>()
                .ok()
        })
        .filter(|t| *t >= since)
        .min()
        .and_then(|t| Duration::try_from(t.duration_since(since)).ok())
}

/// Nothing was disabled, even for a moment, that should not have been: the evidence (one
/// log line per downstream change) shows disables of leavers only, and no re-enable or
/// delete at all.
fn no_wrongful_change(log: &str, declared: &Declared) {
    let changes = log
        .lines()
        .filter(|l| l.contains("downstream change") && l.contains(&format!("identity={STEM}-")));
    for line in changes {
        let who = line
            .split("identity=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(|name| name.replacen('-', ".", 1))
            .unwrap_or_default();
        assert!(
            !line.contains("enabled the account"),
            "a re-enable means an earlier wrongful disable: {line}"
        );
        assert!(!line.contains("deleted the account"), "{line}");
        if line.contains("disabled the account") {
            assert!(
                !declared.active.contains(&who),
                "a wrongful disable: {line}"
            );
        }
    }
}
