//! Joiners, movers and leavers end to end: the shared operator, the real apiserver and a
//! real scim2-server. Each test has its own namespace, SCIM tenant and identity names.

use std::time::{Duration, Instant};

use k8s_openapi::{NamespaceResourceScope, api::core::v1::Secret};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
};
use roster::api::{
    AccountState, Connector, ConnectorStatus, Identity, Role, RoleBinding, conditions,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::harness::{ControlPlane, apps, control_plane, operator, scim};

/// How long a Scenario waits for what it expects. Not a timing: the shared operator
/// serves every test, first come first served, and on 2 cores a neighbour's churn (the
/// 200 people of `leaver_lane` going when their Connectors do, beside `liveness`' own
/// control plane and 1,000 Identities) has held an Identity's turn for over 30 s. A
/// joiner applied as `leaver_lane`'s 200 were was not provisioned within 60 s, while
/// their passes, four apps each, still ran at about four a second.
const LIMIT: Duration = Duration::from_secs(120);

/// Where an operator's log is read from.
pub type LogSource = Box<dyn Fn() -> String + Send + Sync>;

pub struct Scenario {
    pub client: Client,
    pub ns: String,
    pub scim: scim::Direct,
    log: LogSource,
    /// The shared operator, when it is the one at work: a timeout shows its lanes.
    shared: Option<&'static operator::SharedOperator>,
    /// The Identities this scenario made: a timeout shows the log lines naming them.
    made: std::sync::Mutex<Vec<String>>,
}

impl Scenario {
    /// A namespace with a SCIM Connector `scim` (spec fields from `extra` merged in),
    /// its token Secret, and the shared operator running.
    pub async fn new(prefix: &str, extra: Value) -> Self {
        let op = operator::shared();
        let mut s = Self::on(control_plane(), Box::new(|| op.log()), prefix, extra).await;
        s.shared = Some(op);
        s
    }

    /// [`Scenario::new`] on the control plane `cp`, whose operator the caller runs and
    /// whose log `log` reads.
    pub async fn on(cp: &ControlPlane, log: LogSource, prefix: &str, extra: Value) -> Self {
        let client = cp.client().await;
        let ns = cp.namespace(&client, prefix).await;
        let base = scim::tenant(prefix);
        let s = Self {
            client,
            ns,
            scim: scim::Direct::new(&base),
            log,
            shared: None,
            made: Default::default(),
        };
        let [secret, connector] = apps::scim_connector(&base, &extra);
        s.apply::<Secret>(secret).await;
        s.apply::<Connector>(connector).await;
        s
    }

    pub async fn apply<K>(&self, obj: Value)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
        Api::<K>::namespaced(self.client.clone(), &self.ns)
            .patch(
                &name,
                &PatchParams::apply("it").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    pub async fn role(&self, name: &str, groups: &[&str]) {
        let entitlements: Vec<Value> = groups
            .iter()
            .map(|g| json!({"connector": "scim", "name": g}))
            .collect();
        self.apply::<Role>(
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": name},
            "spec": {"entitlements": entitlements}}),
        )
        .await;
    }

    pub async fn binding(&self, name: &str, spec: Value) {
        self.apply::<RoleBinding>(
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding",
            "metadata": {"name": name}, "spec": spec}),
        )
        .await;
    }

    /// The status of this namespace's Connector `name`.
    pub async fn connector_status(&self, name: &str) -> ConnectorStatus {
        Api::<Connector>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await
            .expect("connector")
            .status
            .unwrap_or_default()
    }

    /// Creates each Connector `(name, spec, reason)` and waits until every one is
    /// `Ready=False` with its reason and a message that does not contain `secret`.
    pub async fn refused_connectors(&self, cases: &[(&str, Value, &str)], secret: &str) {
        for (name, spec, _) in cases {
            self.apply::<Connector>(json!({"apiVersion": "roster.dev/v1alpha1",
                "kind": "Connector", "metadata": {"name": name}, "spec": spec}))
                .await;
        }
        for (name, _, reason) in cases {
            self.eventually(&format!("{name}: Ready=False {reason}"), || async {
                let st = self.connector_status(name).await;
                conditions::find(&st.conditions, conditions::READY).is_some_and(|c| {
                    c.status == "False" && c.reason == *reason && !c.message.contains(secret)
                })
            })
            .await;
        }
    }

    /// A person approves what the Connector `name` holds: `annotation` set to now, in
    /// their own name (the admission policy admits no other); returns that name.
    pub async fn approve(&self, name: &str, annotation: &str) -> String {
        self.approve_on::<Connector>(name, annotation).await
    }

    /// [`Scenario::approve`] on an object of kind `K` (a Connector, an IdentitySource).
    pub async fn approve_on<K>(&self, name: &str, annotation: &str) -> String
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let me = crate::harness::whoami(&self.client).await;
        let annotations = json!({annotation: now, "roster.dev/approved-by": me});
        Api::<K>::namespaced(self.client.clone(), &self.ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
            )
            .await
            .expect("approve");
        me
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        (self.log)()
    }

    pub fn identities(&self) -> Api<Identity> {
        Api::all(self.client.clone())
    }

    pub async fn identity(&self, name: &str, spec: Value) {
        {
            let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
            if !made.iter().any(|m| m == name) {
                made.push(name.to_owned());
            }
        }
        let obj = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": name}, "spec": spec});
        self.identities()
            .patch(name, &PatchParams::apply("it").force(), &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("apply identity {name}: {e}"));
    }

    pub async fn get(&self, name: &str) -> Identity {
        self.identities().get(name).await.expect("get identity")
    }

    /// Polls until `check` holds; on timeout shows the operator's log tail.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.eventually_within(what, LIMIT, check).await
    }

    /// [`Scenario::eventually`] with a bound of its own, for work that grows with a
    /// test's size (hundreds of accounts), not for timing anything.
    pub async fn eventually_within<F, Fut>(
        &self,
        what: &str,
        limit: Duration,
        mut check: F,
    ) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check().await {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        // The shared operator serves every test: its tail may be someone else's. Its
        // Identities are cluster-scoped: their lines name them, not the namespace.
        let names: Vec<String> = {
            let made = self.made.lock().unwrap_or_else(|p| p.into_inner());
            made.iter()
                .flat_map(|m| [format!("name={m} "), format!("roster.dev/{m} ")])
                .collect()
        };
        let ours: Vec<&str> = log
            .lines()
            .rev()
            .filter(|l| l.contains(self.ns.as_str()) || names.iter().any(|n| l.contains(n)))
            .take(60)
            .collect();
        let lanes = match self.shared {
            Some(op) => op.lanes().await,
            None => String::new(),
        };
        panic!(
            "{what}: not within {limit:?}; operator log (newest first):\n{}\n\nlines naming {} or its identities (newest first):\n{}\n\nlanes now:\n{lanes}",
            tail.join("\n"),
            self.ns,
            ours.join("\n")
        );
    }

    /// The SCIM user `name` and the names of the groups holding it.
    pub async fn scim_user(&self, name: &str) -> Option<(Value, Vec<String>)> {
        self.scim.user_with_groups(name).await
    }

    pub async fn groups(&self, names: &[&str]) {
        for n in names {
            self.scim.group(n).await;
        }
    }
}

pub fn condition(i: &Identity, type_: &str) -> Option<(String, String)> {
    let c = conditions::find(&i.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn joiner_mover_leaver_through_scim() {
    let s = Scenario::new("jml", json!({"deprovisioning": {"deleteAfterSeconds": 3}})).await;
    s.groups(&["engineers", "finance", "all-staff"]).await;
    s.role("eng", &["engineers"]).await;
    s.role("fin", &["finance"]).await;
    s.role("all", &["all-staff"]).await;
    let by_dept = |d: &str| json!({"expression": format!("has(identity.attributes.department) && identity.attributes.department == \"{d}\"")});
    s.binding(
        "eng",
        json!({"role": "eng", "subjects": by_dept("engineering")}),
    )
    .await;
    s.binding(
        "fin",
        json!({"role": "fin", "subjects": by_dept("finance")}),
    )
    .await;
    // A birthright, kept to this test's people: bindings match identities cluster-wide.
    let birthright = "identity.kind == \"Person\" && identity.username.startsWith(\"jml.\")";
    s.binding(
        "all",
        json!({"role": "all", "subjects": {"expression": birthright}}),
    )
    .await;

    // Joiner.
    s.identity(
        "jml-ada",
        json!({"username": "jml.ada", "displayName": "Ada Lovelace", "emails": ["ada@example.com"],
        "attributes": {"department": "engineering"}}),
    )
    .await;
    let took = s
        .eventually("the joiner's account with its groups", || async {
            s.scim_user("jml.ada")
                .await
                .is_some_and(|(u, g)| u["active"] == true && g == ["all-staff", "engineers"])
        })
        .await;
    eprintln!("joiner provisioned in {took:?}");
    let (user, _) = s.scim_user("jml.ada").await.unwrap();
    assert_eq!(user["externalId"], "roster:jml-ada");
    assert_eq!(user["displayName"], "Ada Lovelace");
    s.eventually("status shows the account in sync", || async {
        let i = s.get("jml-ada").await;
        let account = i
            .status
            .as_ref()
            .and_then(|st| st.accounts.first().cloned());
        account.is_some_and(|a| {
            a.state == AccountState::Active && a.entitlements == ["all-staff", "engineers"]
        }) && condition(&i, conditions::SYNCED).is_some_and(|(st, _)| st == "True")
    })
    .await;

    // Mover: loses engineers, gains finance, attributes follow.
    s.identity(
        "jml-ada",
        json!({"username": "jml.ada", "displayName": "Ada King", "emails": ["ada@example.com"],
        "attributes": {"department": "finance"}}),
    )
    .await;
    s.eventually("the mover's groups and name", || async {
        s.scim_user("jml.ada")
            .await
            .is_some_and(|(u, g)| g == ["all-staff", "finance"] && u["displayName"] == "Ada King")
    })
    .await;

    // Leaver: disabled and stripped at once, with a receipt; deleted after the grace period.
    s.identity(
        "jml-ada",
        json!({"username": "jml.ada", "displayName": "Ada King", "emails": ["ada@example.com"],
        "attributes": {"department": "finance"}, "state": "Terminated"}),
    )
    .await;
    let took = s
        .eventually("the leaver disabled with no group", || async {
            s.scim_user("jml.ada")
                .await
                .is_some_and(|(u, g)| u["active"] == false && g.is_empty())
        })
        .await;
    eprintln!("leaver deprovisioned in {took:?}");
    s.eventually("the receipt with revokedAt and verifiedAt", || async {
        let i = s.get("jml-ada").await;
        let receipt = i.status.and_then(|st| st.deprovisioning);
        receipt.is_some_and(|r| {
            r.requested_at.is_some()
                && r.connectors.len() == 1
                && r.connectors[0].connector == format!("{}/scim", s.ns)
                && r.connectors[0].revoked_at.is_some()
                && r.connectors[0].verified_at.is_some()
        })
    })
    .await;
    s.eventually(
        "the account deleted after the grace period, with deletedAt",
        || async {
            let gone = s.scim_user("jml.ada").await.is_none();
            let i = s.get("jml-ada").await;
            let deleted_at = i
                .status
                .and_then(|st| st.deprovisioning)
                .is_some_and(|r| r.connectors[0].deleted_at.is_some());
            gone && deleted_at
        },
    )
    .await;
}

#[tokio::test]
async fn suspend_then_resume() {
    let s = Scenario::new("suspend", json!({})).await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["sus-bob"]}}),
    )
    .await;
    s.identity("sus-bob", json!({"username": "sus.bob"})).await;
    s.eventually("bob active in staff", || async {
        s.scim_user("sus.bob")
            .await
            .is_some_and(|(u, g)| u["active"] == true && g == ["staff"])
    })
    .await;
    s.identity(
        "sus-bob",
        json!({"username": "sus.bob", "state": "Suspended"}),
    )
    .await;
    s.eventually("bob disabled, membership kept", || async {
        s.scim_user("sus.bob")
            .await
            .is_some_and(|(u, g)| u["active"] == false && g == ["staff"])
    })
    .await;
    s.identity("sus-bob", json!({"username": "sus.bob", "state": "Active"}))
        .await;
    s.eventually("bob enabled again", || async {
        s.scim_user("sus.bob")
            .await
            .is_some_and(|(u, g)| u["active"] == true && g == ["staff"])
    })
    .await;
}

/// A joiner whose name the last scan did not list is created without a read first. An
/// account someone made after that scan must still be left alone: the app refuses the
/// create, and the next pass reads and finds it is not Roster's.
#[tokio::test]
async fn an_account_made_after_the_scan_meets_a_refused_create_and_is_left_untouched() {
    // The joiner's pass must come before the next scan lists the account (then it reads
    // first, another path): 30 s between scans leaves room for a suite-loaded operator,
    // where 10 s failed twice.
    let s = Scenario::new("late", json!({"pollIntervalSeconds": 30})).await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["late-dan"]}}),
    )
    .await;
    s.eventually("a first scan", || async {
        s.connector_status("scim").await.inventory.is_some()
    })
    .await;
    s.scim.user("late.dan").await;
    s.identity("late-dan", json!({"username": "late.dan"}))
        .await;
    s.eventually("a Conflict in status", || async {
        s.get("late-dan").await.status.is_some_and(|st| {
            st.accounts
                .iter()
                .any(|a| a.state == AccountState::Conflict)
        })
    })
    .await;
    let (user, groups) = s.scim_user("late.dan").await.expect("their account");
    assert!(
        user.get("externalId").is_none_or(Value::is_null),
        "no mark was put on it: {user}"
    );
    assert!(groups.is_empty(), "nothing was granted: {groups:?}");
    // The create was tried without a read, and refused: the path this test is about.
    let events =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(s.client.clone(), "default")
            .list(&Default::default())
            .await
            .expect("events");
    assert!(
        events.items.iter().any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("late-dan")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("appeared while Roster was creating it"))
        }),
        "no refused create recorded for late-dan"
    );
}

#[tokio::test]
async fn an_existing_account_roster_does_not_own_is_a_conflict_left_untouched() {
    let s = Scenario::new("conflict", json!({})).await;
    s.groups(&["staff", "theirs"]).await;
    let theirs = s.scim.user("con.carol").await;
    let their_group = s.scim.group("their-group").await;
    s.scim
        .patch(
            &format!("/Groups/{their_group}"),
            json!([{"op": "add", "path": "members", "value": [{"value": theirs}]}]),
        )
        .await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["con-carol"]}}),
    )
    .await;
    s.identity("con-carol", json!({"username": "con.carol"}))
        .await;
    s.eventually("a Conflict in status, Drifted", || async {
        let i = s.get("con-carol").await;
        let conflict = i.status.as_ref().is_some_and(|st| {
            st.accounts
                .iter()
                .any(|a| a.state == AccountState::Conflict)
        });
        conflict && condition(&i, conditions::DRIFTED).is_some_and(|(st, _)| st == "True")
    })
    .await;
    let (user, groups) = s
        .scim_user("con.carol")
        .await
        .expect("their account is still there");
    assert!(
        user.get("externalId").is_none_or(Value::is_null),
        "no mark was put on it: {user}"
    );
    assert_eq!(groups, ["their-group"], "nothing was granted or revoked");

    // Deleting the Identity leaves that account alone; but someone under her username
    // can still log in, so deletion waits for a person, who may release it.
    s.identities()
        .delete("con-carol", &Default::default())
        .await
        .expect("delete");
    s.eventually("deletion blocked, saying why", || async {
        let i = s.get("con-carol").await;
        condition(&i, conditions::READY)
            .is_some_and(|(st, reason)| st == "False" && reason == "DeprovisioningBlocked")
            && i.status
                .and_then(|st| st.deprovisioning)
                .is_some_and(|r| r.connectors.iter().any(|c| c.exception.is_some()))
    })
    .await;
    s.identities()
        .patch(
            "con-carol",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "roster.dev/abandon-connectors": format!("{}/scim", s.ns)}}})),
        )
        .await
        .expect("abandon");
    s.eventually("the Identity gone", || async {
        s.identities()
            .get_opt("con-carol")
            .await
            .is_ok_and(|i| i.is_none())
    })
    .await;
    let (user, groups) = s
        .scim_user("con.carol")
        .await
        .expect("their account is still there");
    assert_ne!(
        user["active"],
        Value::Bool(false),
        "their account was not disabled"
    );
    assert_eq!(groups, ["their-group"]);
}

#[tokio::test]
async fn time_bound_access_expires() {
    let s = Scenario::new("timebound", json!({})).await;
    s.groups(&["oncall"]).await;
    s.role("oncall", &["oncall"]).await;
    let binding = json!({"role": "oncall", "subjects": {"identities": ["tb-dan"]}});
    s.binding("oncall", binding.clone()).await;
    s.identity("tb-dan", json!({"username": "tb.dan"})).await;
    s.eventually("dan on call", || async {
        s.scim_user("tb.dan")
            .await
            .is_some_and(|(_, g)| g == ["oncall"])
    })
    .await;
    // The window is set only once dan is on call: a joiner slowed by other tests' load
    // must not miss a window that has already closed.
    let until =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(6);
    let mut bounded = binding;
    bounded["validUntil"] = json!(until.to_string());
    s.binding("oncall", bounded).await;
    s.eventually("dan's access gone after validUntil", || async {
        s.scim_user("tb.dan")
            .await
            .is_some_and(|(u, g)| g.is_empty() && u["active"] == false)
    })
    .await;
}

#[tokio::test]
async fn deleting_an_identity_deprovisions_it_before_it_goes() {
    let s = Scenario::new("delete", json!({})).await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["del-eve"]}}),
    )
    .await;
    s.identity("del-eve", json!({"username": "del.eve"})).await;
    s.eventually("eve provisioned", || async {
        s.scim_user("del.eve")
            .await
            .is_some_and(|(_, g)| g == ["staff"])
    })
    .await;
    s.identities()
        .delete("del-eve", &Default::default())
        .await
        .expect("delete");
    s.eventually(
        "eve disabled and stripped, then the Identity gone",
        || async {
            let stripped = s
                .scim_user("del.eve")
                .await
                .is_some_and(|(u, g)| u["active"] == false && g.is_empty());
            let gone = s
                .identities()
                .get_opt("del-eve")
                .await
                .is_ok_and(|i| i.is_none());
            stripped && gone
        },
    )
    .await;
}

#[tokio::test]
async fn bad_input_gets_a_condition_and_changes_nothing() {
    // A Connector whose Secret is missing: the identity says why, nothing is created.
    let s = Scenario::new(
        "badinput",
        json!({"allowPlaintext": true, "scim": {"baseUrl": "http://127.0.0.1:9/v2",
        "tokenSecretRef": {"name": "missing", "key": "token"}}}),
    )
    .await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["bad-fay"]}}),
    )
    .await;
    s.binding(
        "broken",
        json!({"role": "staff", "subjects": {"expression": "identity.attributes.("}}),
    )
    .await;
    // A few hundred bytes that would take a trillion steps per identity.
    s.binding(
        "costly",
        json!({"role": "staff", "subjects": {"expression":
            "identity.labels.all(a, identity.labels.all(b, identity.labels.all(c, a != b || b != c)))"}}),
    )
    .await;
    s.identity("bad-fay", json!({"username": "bad.fay"})).await;
    s.eventually("Ready=False SecretNotFound on the identity", || async {
        condition(&s.get("bad-fay").await, conditions::READY)
            == Some(("False".into(), "SecretNotFound".into()))
    })
    .await;
    let bindings: Api<RoleBinding> = Api::namespaced(s.client.clone(), &s.ns);
    for (binding, reason) in [
        ("broken", "InvalidExpression"),
        ("costly", "ExpressionTooCostly"),
    ] {
        s.eventually(&format!("{reason} is reported on {binding}"), || async {
            let b = bindings.get(binding).await.expect("binding");
            b.status
                .and_then(|st| {
                    conditions::find(&st.conditions, conditions::READY).map(|c| c.reason.clone())
                })
                .as_deref()
                == Some(reason)
        })
        .await;
    }
    let connectors: Api<Connector> = Api::namespaced(s.client.clone(), &s.ns);
    let c = connectors.get("scim").await.expect("connector");
    let ready = c
        .status
        .and_then(|st| conditions::find(&st.conditions, conditions::READY).cloned());
    assert!(
        ready.is_none_or(|r| r.status != "True"),
        "a Connector without its Secret is not Ready"
    );
}

/// A loopback HTTP server that answers every request with `status` and `body`: fault
/// injection for downstream responses no real server should give.
async fn broken_server(status: &'static str, body: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = socket.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}/v2")
}

#[tokio::test]
async fn downstream_faults_are_reported_on_identity_and_connector() {
    let nowhere = format!(
        "http://127.0.0.1:{}/v2",
        crate::harness::process::free_port()
    );
    let cases = [
        (
            "malformed",
            broken_server("200 OK", "{\"Resources\": [ not json").await,
            None,
            "MalformedResponse",
        ),
        (
            "failing",
            broken_server(
                "500 Internal Server Error",
                "{\"detail\": \"database is on fire\"}",
            )
            .await,
            None,
            "DownstreamError",
        ),
        (
            "badtoken",
            scim::tenant("badtoken"),
            Some("not-the-token"),
            "Unauthorized",
        ),
        ("unreachable", nowhere, None, "Unreachable"),
    ];
    for (prefix, url, token, reason) in cases {
        let s = Scenario::new(prefix, json!({"allowPlaintext": true, "scim": {"baseUrl": url, "tokenSecretRef": {"name": "scim-token", "key": "token"}}}))
            .await;
        if let Some(token) = token {
            s.apply::<Secret>(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "scim-token"},
                "stringData": {"token": token}}),
            )
            .await;
        }
        s.role("staff", &["staff"]).await;
        let person = format!("{prefix}-gil");
        s.binding(
            "staff",
            json!({"role": "staff", "subjects": {"identities": [person]}}),
        )
        .await;
        s.identity(&person, json!({"username": format!("{prefix}.gil")}))
            .await;
        s.eventually(&format!("Ready=False {reason} on the identity"), || async {
            let i = s.get(&person).await;
            let ready = i
                .status
                .as_ref()
                .and_then(|st| conditions::find(&st.conditions, conditions::READY).cloned());
            ready.is_some_and(|c| {
                c.status == "False"
                    && c.reason == reason
                    && c.message.len() <= 1024
                    && !c.message.contains("not-the-token")
            })
        })
        .await;
        let connectors: Api<Connector> = Api::namespaced(s.client.clone(), &s.ns);
        s.eventually(
            &format!("Ready=False {reason} on the Connector"),
            || async {
                let c = connectors.get("scim").await.expect("connector");
                c.status
                    .and_then(|st| {
                        conditions::find(&st.conditions, conditions::READY)
                            .map(|c| c.reason.clone())
                    })
                    .as_deref()
                    == Some(reason)
            },
        )
        .await;
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(s.client.clone(), &s.ns);
        s.eventually("a Warning Event on the Connector", || async {
            events.list(&Default::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason)
                })
            })
        })
        .await;
    }
}

#[tokio::test]
async fn protected_accounts_are_never_touched_and_say_why_deletion_waits() {
    let s = Scenario::new("protected", json!({})).await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["pr-root"]}}),
    )
    .await;
    s.identity("pr-root", json!({"username": "pr.root"})).await;
    s.eventually("pr.root provisioned", || async {
        s.scim_user("pr.root")
            .await
            .is_some_and(|(_, g)| g == ["staff"])
    })
    .await;

    // Declared break-glass: from now on Roster keeps its hands off, even for a leaver.
    Api::<Connector>::namespaced(s.client.clone(), &s.ns)
        .patch(
            "scim",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"protectedAccounts": ["pr.root"]}})),
        )
        .await
        .expect("protect");
    s.eventually("the account reported as Protected", || async {
        let i = s.get("pr-root").await;
        i.status.is_some_and(|st| {
            st.accounts
                .iter()
                .any(|a| a.state == AccountState::Protected)
        })
    })
    .await;
    s.identities()
        .delete("pr-root", &Default::default())
        .await
        .expect("delete");
    s.eventually(
        "Ready=False DeprovisioningBlocked naming the connector",
        || async {
            let i = s.get("pr-root").await;
            let c = i
                .status
                .as_ref()
                .and_then(|st| conditions::find(&st.conditions, conditions::READY).cloned());
            c.is_some_and(|c| {
                c.reason == "DeprovisioningBlocked" && c.message.contains(&format!("{}/scim", s.ns))
            })
        },
    )
    .await;
    let (user, groups) = s.scim_user("pr.root").await.expect("still there");
    assert_ne!(
        user["active"],
        Value::Bool(false),
        "a protected account is not disabled"
    );
    assert_eq!(groups, ["staff"], "nor stripped");

    // The way out the condition names: abandon the connector for this Identity.
    let abandon = json!({"metadata": {"annotations": {"roster.dev/abandon-connectors": format!("{}/scim", s.ns)}}});
    s.identities()
        .patch("pr-root", &PatchParams::default(), &Patch::Merge(abandon))
        .await
        .expect("annotate");
    s.eventually("the Identity released", || async {
        s.identities()
            .get_opt("pr-root")
            .await
            .is_ok_and(|i| i.is_none())
    })
    .await;
    assert_eq!(
        s.scim_user("pr.root").await.map(|(_, g)| g),
        Some(vec!["staff".to_owned()])
    );
}

#[tokio::test]
async fn a_bad_commit_trips_the_deletion_budget() {
    let s = Scenario::new(
        "budget",
        json!({"deletionBudget": {"maxRemovals": 2, "maxPercent": 100, "windowSeconds": 3600},
            "revocationBudget": {"maxAccounts": 2, "maxPercent": 100, "windowSeconds": 3600}}),
    )
    .await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding("staff", json!({"role": "staff", "subjects": {"expression": "identity.username.startsWith(\"bd.\")"}}))
        .await;
    // Another team's binding stays: one bad commit, not an emptied namespace (that one
    // is held outright: `mass_removal`).
    s.binding(
        "contractors",
        json!({"role": "staff", "subjects": {"identities": ["bd-contractor"]}}),
    )
    .await;
    let people: Vec<String> = (0..5).map(|i| format!("bd.{i}")).collect();
    for (i, username) in people.iter().enumerate() {
        s.identity(&format!("bd-{i}"), json!({"username": username}))
            .await;
    }
    let states = || async {
        let mut active = 0;
        let mut in_staff = 0;
        for u in &people {
            if let Some((user, groups)) = s.scim_user(u).await {
                active += usize::from(user["active"] != false);
                in_staff += usize::from(groups == ["staff"]);
            }
        }
        (active, in_staff)
    };
    // Generous: the shared operator may be busy with another test's hundreds of people;
    // this test is about the budget, not speed.
    s.eventually_within("everyone provisioned", LIMIT * 4, || async {
        states().await == (5, 5)
    })
    .await;

    // The bad commit: the binding everyone depends on is deleted.
    Api::<RoleBinding>::namespaced(s.client.clone(), &s.ns)
        .delete("staff", &Default::default())
        .await
        .expect("delete binding");
    s.eventually(
        "2 accounts disabled and stripped, the other 3 held before any write",
        || async { states().await == (3, 3) },
    )
    .await;
    let connectors: Api<Connector> = Api::namespaced(s.client.clone(), &s.ns);
    s.eventually("the Connector is Quarantined", || async {
        let c = connectors.get("scim").await.expect("connector");
        c.status.is_some_and(|st| {
            conditions::find(&st.conditions, conditions::QUARANTINED)
                .is_some_and(|c| c.status == "True")
                && st.quarantine.is_some_and(|q| {
                    q.held_count == 3 && q.held.iter().all(|h| h.cause == "Policy")
                })
        })
    })
    .await;
    s.eventually("the 3 held identities say why", || async {
        let list = s
            .identities()
            .list(&Default::default())
            .await
            .expect("list");
        let held = list
            .items
            .iter()
            .filter(|i| i.spec.username.starts_with("bd."))
            .filter(|i| {
                condition(i, conditions::READY)
                    .is_some_and(|(st, reason)| st == "False" && reason == "Quarantined")
            })
            .count();
        held == 3
    })
    .await;
    // Held, and stays held: nothing else is disabled while quarantined.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(states().await, (3, 3));

    // A person approves: the held removals proceed and the quarantine lifts.
    s.approve("scim", "roster.dev/approve-removals").await;
    s.eventually("every account disabled after approval", || async {
        states().await == (0, 0)
    })
    .await;
    s.eventually("the quarantine lifted", || async {
        let c = connectors.get("scim").await.expect("connector");
        c.status.is_some_and(|st| {
            conditions::find(&st.conditions, conditions::QUARANTINED)
                .is_some_and(|c| c.status == "False")
                && st.quarantine.is_none()
        })
    })
    .await;
}

/// Explicit leavers go through at once while a bad policy commit stays held: the budget
/// stops bad input, it does not ration people who left.
#[tokio::test]
async fn explicit_leavers_are_never_held_while_a_bad_commit_is() {
    let s = Scenario::new(
        "leaver-lane",
        json!({"deletionBudget": {"maxRemovals": 2, "maxPercent": 100, "windowSeconds": 3600},
            "revocationBudget": {"maxAccounts": 2, "maxPercent": 100, "windowSeconds": 3600},
            "leaverWave": {"minLeavers": 3, "maxPercent": 0, "windowSeconds": 3600}}),
    )
    .await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding("staff", json!({"role": "staff", "subjects": {"expression": "identity.username.startsWith(\"ll.\")"}}))
        .await;
    s.binding(
        "contractors",
        json!({"role": "staff", "subjects": {"identities": ["ll-contractor"]}}),
    )
    .await;
    let people: Vec<String> = (0..12).map(|i| format!("ll.{i:02}")).collect();
    for (i, username) in people.iter().enumerate() {
        s.identity(&format!("ll-{i:02}"), json!({"username": username}))
            .await;
    }
    let sr = &s;
    let terminate = |name: String| async move {
        sr.identities()
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"state": "Terminated"}})),
            )
            .await
            .unwrap_or_else(|e| panic!("terminate {name}: {e}"));
    };
    let state_of = |u: String| async move {
        sr.scim_user(&u)
            .await
            .map(|(user, groups)| (user["active"] != false, groups.len()))
    };
    s.eventually_within("everyone provisioned", LIMIT * 4, || async {
        let mut all = true;
        for u in &people {
            all &= state_of(u.clone()).await == Some((true, 1));
        }
        all
    })
    .await;

    // Eight people leave one after another, four times the removal budget.
    for (i, username) in people.iter().enumerate().take(8) {
        terminate(format!("ll-{i:02}")).await;
        s.eventually(&format!("leaver ll-{i:02} disabled and stripped"), || {
            let u = username.clone();
            async move { state_of(u).await == Some((false, 0)) }
        })
        .await;
    }
    s.eventually("the wave is flagged, nothing held", || async {
        let st = s.connector_status("scim").await;
        st.leaver_wave.is_some()
            && st.quarantine.is_none()
            && conditions::find(&st.conditions, conditions::QUARANTINED)
                .is_some_and(|c| c.status == "False")
    })
    .await;

    // The bad commit: the binding everyone depends on goes.
    Api::<RoleBinding>::namespaced(s.client.clone(), &s.ns)
        .delete("staff", &Default::default())
        .await
        .expect("delete binding");
    let remaining = || async {
        let mut active = 0;
        for u in &people[8..] {
            active += usize::from(state_of(u.clone()).await.is_some_and(|(a, _)| a));
        }
        active
    };
    s.eventually("two policy removals, then held", || async {
        remaining().await == 2
    })
    .await;
    s.eventually("Quarantined", || async {
        let st = s.connector_status("scim").await;
        conditions::find(&st.conditions, conditions::QUARANTINED)
            .is_some_and(|c| c.status == "True")
    })
    .await;
    // One of the held people now leaves for real: disabled at once, quarantine or not.
    let held = {
        let mut held = None;
        for (i, u) in people.iter().enumerate().skip(8) {
            if state_of(u.clone()).await.is_some_and(|(a, _)| a) {
                held = Some(i);
                break;
            }
        }
        held.expect("a held account")
    };
    terminate(format!("ll-{held:02}")).await;
    s.eventually("the held person who left is disabled", || {
        let u = people[held].clone();
        async move { state_of(u).await == Some((false, 0)) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(remaining().await, 1, "the policy removal stays held");
}
