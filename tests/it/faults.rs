//! Injected faults between the operator and the real SCIM, LDAP and PostgreSQL servers:
//! resets, stalls, slow and truncated answers, connections cut mid-stream, and for SCIM
//! 500s and 429s with Retry-After. Joiners, movers and leavers go on throughout; the
//! servers' own state must end exactly as declared — no wrongful disable, no missing
//! grant, no leaver with access — and recover once the faults stop.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};

use crate::harness::{
    self,
    apps::{Apps, Census},
    faults::{Fault, Proxy},
    isolated_control_plane, ldap,
    operator::Operator,
    postgres, scim,
};

const PEOPLE: usize = 40;
const LIMIT: Duration = Duration::from_secs(300);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The three Connectors, each pointed at its proxy.
fn connectors(scim_base: &str, proxies: &[Proxy; 3]) -> Vec<Value> {
    let [s, l, p] = proxies;
    let fast = json!({"requestsPerSecond": 200, "burst": 200});
    // This test is about faults, not budgets: ten movers are a quarter of 40 accounts,
    // past the default revocation budget of 20 %.
    let budgets = json!({"maxRemovals": 100, "maxPercent": 100, "windowSeconds": 3600});
    let revocations = json!({"maxAccounts": 100, "maxPercent": 100, "windowSeconds": 3600});
    let path = scim_base
        .split_once("//")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, p)| p)
        .unwrap_or_default();
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"scim": scim::TOKEN, "ldap": ldap::ROSTER_PASSWORD, "pg": postgres::PASSWORD}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "scim"},
            "spec": {"rateLimit": fast, "deletionBudget": budgets, "revocationBudget": revocations, "scim": {"baseUrl": format!("http://127.0.0.1:{}/{path}", s.port),
                "tokenSecretRef": {"name": "creds", "key": "scim"}}}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "ldap"},
            "spec": {"rateLimit": fast, "deletionBudget": budgets, "revocationBudget": revocations, "ldap": {"url": format!("ldap://127.0.0.1:{}", l.port),
                "bindDn": ldap::ROSTER_DN, "bindPasswordSecretRef": {"name": "creds", "key": "ldap"},
                "usersDn": ldap::PEOPLE, "groupsDn": ldap::GROUPS, "disabledUsersDn": ldap::DISABLED}}}),
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": "pg"},
            "spec": {"rateLimit": fast, "deletionBudget": budgets, "revocationBudget": revocations, "postgres": {"host": "127.0.0.1", "port": p.port,
                "username": postgres::ADMIN, "passwordSecretRef": {"name": "creds", "key": "pg"},
                "sslMode": "Disable"}}}),
    ]
}

/// `{stem}-{name}` on the three apps (PostgreSQL: `{stem}_{name}`); the Role's entitlements.
async fn entitlement(apps: &Apps, stem: &str, name: &str) -> Value {
    postgres::server()
        .superuser()
        .await
        .batch_execute(&format!("CREATE ROLE {stem}_{name} NOLOGIN"))
        .await
        .expect("PostgreSQL group role");
    ldap::make_group(&format!("{stem}-{name}")).await;
    apps.scim.group(&format!("{stem}-{name}")).await;
    json!([
        {"connector": "scim", "name": format!("{stem}-{name}")},
        {"connector": "ldap", "name": format!("{stem}-{name}")},
        {"connector": "pg", "name": format!("{stem}_{name}")},
    ])
}

/// (enabled, holding the group) on SCIM, LDAP and PostgreSQL.
fn three(c: &Census) -> [(usize, usize); 3] {
    [c.scim, c.ldap, c.pg]
}

#[tokio::test]
async fn joiners_movers_and_leavers_converge_through_injected_faults() {
    // An operator of its own: stalled calls hold Identity turns for seconds, which the
    // other tests' shared operator should not pay for.
    let cp = isolated_control_plane("faults");
    let op = Operator::start(&cp.kubeconfig);
    let client = cp.client().await;
    let ns = cp.namespace(&client, "faults").await;
    let stem = "fi";
    let base = scim::tenant("faults");
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
        Proxy::start(loopback(scim_port), &http, 3).await,
        Proxy::start(loopback(ldap::server().port), &tcp, 3).await,
        Proxy::start(loopback(postgres::server().port), &tcp, 3).await,
    ];
    for obj in connectors(&base, &proxies) {
        harness::apply(&client, &ns, obj).await;
    }
    let staff = entitlement(&apps, stem, "staff").await;
    let extra = entitlement(&apps, stem, "extra").await;
    for (role, entitlements, expr) in [
        (
            "staff",
            staff,
            format!("identity.username.startsWith(\"{stem}.\")"),
        ),
        (
            "extra",
            extra,
            "identity.attributes.team == \"a\"".to_owned(),
        ),
    ] {
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
    let person = |i: usize, team: &str, state: &str| {
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
            "metadata": {"name": format!("{stem}-{i:02}")},
            "spec": {"username": format!("{stem}.{i:02}"), "state": state,
                "attributes": {"team": team}}})
    };
    // Joiners: 20 in team a (staff and extra), 20 in team b (staff).
    for i in 0..PEOPLE {
        let team = if i < 20 { "a" } else { "b" };
        harness::apply(&client, "", person(i, team, "Active")).await;
    }
    let last = std::sync::Mutex::new(String::new());
    let settled = |staff: [(usize, usize); 3], extra: [(usize, usize); 3]| {
        let (apps, last) = (&apps, &last);
        async move {
            let (s, e) = (
                apps.census(stem).await,
                apps.census_for(stem, "extra").await,
            );
            let seen = format!("staff {:?}, extra {:?}", three(&s), three(&e));
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if *last != seen {
                eprintln!("  {seen}");
                *last = seen;
            }
            three(&s) == staff && three(&e).map(|(_, holding)| holding) == extra.map(|(_, h)| h)
        }
    };
    wait(&op, "joiners through the faults", || {
        settled([(PEOPLE, PEOPLE); 3], [(PEOPLE, 20); 3])
    })
    .await;

    // Movers: 0..10 leave team a (they lose extra, keep staff); leavers: 30..40.
    for i in 0..10 {
        harness::apply(&client, "", person(i, "b", "Active")).await;
    }
    for i in 30..PEOPLE {
        harness::apply(&client, "", person(i, "b", "Terminated")).await;
    }
    wait(&op, "movers and leavers through the faults", || {
        settled([(30, 30); 3], [(30, 10); 3])
    })
    .await;
    let injected: Vec<_> = proxies.iter().map(Proxy::injected).collect();
    eprintln!("faults injected (SCIM, LDAP, PostgreSQL): {injected:?}");
    for (app, p) in ["SCIM", "LDAP", "PostgreSQL"].iter().zip(&proxies) {
        assert!(p.total() > 0, "no fault reached {app}");
    }

    // The faults stop: the state stays exactly as declared, and the scan finds it so.
    for p in &proxies {
        p.set_faults(false);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        settled([(30, 30); 3], [(30, 10); 3]).await,
        "the state moved after the faults stopped"
    );
    // Nothing was disabled, even for a moment, that should not have been: the evidence
    // (one log line per downstream change) shows disables of the ten leavers only, and
    // no re-enable or delete at all.
    let log = op.log();
    let changes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("downstream change") && l.contains(&format!("identity={stem}-")))
        .collect();
    for line in &changes {
        let who = line
            .split("identity=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default();
        let leaver = who
            .strip_prefix(&format!("{stem}-"))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= 30);
        assert!(
            !line.contains("enabled the account"),
            "a re-enable means an earlier wrongful disable: {line}"
        );
        assert!(!line.contains("deleted the account"), "{line}");
        if line.contains("disabled the account") {
            assert!(leaver, "a wrongful disable: {line}");
        }
    }
    let total: u64 = proxies.iter().map(Proxy::total).sum();
    eprintln!(
        "checked: 40 joiners, 10 movers, 10 leavers on 3 apps under {total} injected faults; 0 wrongful disables, 0 missing grants, 0 leavers with access"
    );
}

async fn wait<F, Fut>(op: &Operator, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < LIMIT {
        if check().await {
            eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = op.log();
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("identity=fi-") || l.contains("name=fi-"))
        .filter(|l| !l.contains("outcome=\"ok\""))
        .collect();
    let tail = trouble.len().saturating_sub(40);
    panic!(
        "{what}: not within {LIMIT:?}; the operator's last troubles with these people:\n{}",
        trouble[tail..].join("\n")
    );
}
