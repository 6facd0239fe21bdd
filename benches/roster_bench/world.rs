//! The benchmark's world: a namespace with a Connector on each of the four apps, the
//! people, and their access: the staff by department (a Role and a label-selector binding
//! each, with the department's own SCIM group), the contractors by one birthright Role.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use roster::api::{Connector, Identity, RoleBinding, conditions};
use serde_json::{Value, json};

use crate::harness::{
    self,
    apps::{self, Apps, Census},
    control_plane, ldap, scim,
};

/// The name stem of everything the benchmark makes on the apps.
pub const STEM: &str = "bench";
/// Connectors, as named in the namespace.
pub const CONNECTORS: [&str; 4] = ["scim", "ldap", "pg", "k8s"];
const MANAGER: &str = "roster-bench";

/// The label that puts a member of staff in a department.
pub const DEPARTMENT_LABEL: &str = "bench.roster.dev/department";

/// One person: the Identity's name and username, and the department of a member of staff.
#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub username: String,
    pub department: Option<String>,
}

impl Person {
    /// The `i`th person of a `kind` that has no department.
    pub fn new(kind: char, i: usize) -> Self {
        Self {
            name: format!("{STEM}-{kind}{i:05}"),
            username: format!("{STEM}.{kind}{i:05}"),
            department: None,
        }
    }

    /// The `i`th member of staff, in their department.
    pub fn staff(i: usize, departments: Departments) -> Self {
        Self {
            department: Some(departments.of(i)),
            ..Self::new('s', i)
        }
    }
}

/// How the staff are spread over departments, each with its own SCIM group. A real
/// organisation's app groups hold hundreds, not everyone; and scim2-server copies a whole
/// group to change or answer it, so one group of 10,000 would measure that copy, for Roster
/// and the bare client alike.
#[derive(Clone, Copy, Debug)]
pub struct Departments {
    /// Staff per department.
    pub size: usize,
}

impl Departments {
    /// The department of the `i`th member of staff.
    pub fn of(self, i: usize) -> String {
        format!("d{:03}", i / self.size.max(1))
    }

    /// Every department `staff` people fill.
    pub fn all(self, staff: usize) -> impl Iterator<Item = String> {
        (0..staff.div_ceil(self.size.max(1))).map(move |d| self.of(d * self.size.max(1)))
    }

    /// The group suffix of the `i`th joiner when the first `staff` joiners are staff, as
    /// Roster grants it (`staff-d000`…, and `staff` for the rest), so that the references
    /// grant the same spread.
    pub fn group(self, i: usize, staff: usize) -> String {
        if i < staff {
            format!("staff-{}", self.of(i))
        } else {
            "staff".to_owned()
        }
    }
}

/// The namespace, its people and direct access to the apps.
pub struct World {
    pub client: Client,
    pub ns: String,
    pub apps: Apps,
    /// The directory, bound as its admin, for the leavers' direct reads.
    pub ldap: ldap3::Ldap,
    pub staff: Vec<Person>,
    pub contractors: Vec<Person>,
}

impl World {
    /// Makes the namespace, the four Connectors (each allowing `rate` requests a
    /// second and scanning every `poll` seconds, default budgets otherwise), the
    /// contractors' Role and binding, and a Role and binding for each department that
    /// `all_staff` people (those here and those who join later) fill.
    pub async fn new(
        people: usize,
        contractors: usize,
        all_staff: usize,
        departments: Departments,
        rate: u32,
        poll: u32,
    ) -> Self {
        let cp = control_plane();
        let client = cp.client().await;
        let ns = cp.namespace(&client, STEM).await;
        let base = scim::tenant(STEM);
        let apps = Apps::new(scim::Direct::new(&base), client.clone()).await;
        let w = Self {
            client,
            ns,
            apps,
            ldap: ldap::server().admin().await,
            staff: (0..people - contractors)
                .map(|i| Person::staff(i, departments))
                .collect(),
            contractors: (0..contractors).map(|i| Person::new('c', i)).collect(),
        };
        let extra = json!({"rateLimit": {"requestsPerSecond": rate, "burst": rate},
            "pollIntervalSeconds": poll});
        let [secret, connector] = apps::scim_connector(&base, &extra);
        w.apply(secret).await;
        w.apply(connector).await;
        let mut others = apps::other_three(&extra).into_iter();
        if let Some(secret) = others.next() {
            w.apply(secret).await;
        }
        for connector in others {
            w.apply(connector).await;
        }
        let entitlements = apps::make_staff(STEM, &w.apps.scim, &w.client).await;
        w.role("staff", &entitlements).await;
        let expr = format!("identity.username.startsWith(\"{STEM}.c\")");
        w.bind("contractors", "staff", json!({"expression": expr}))
            .await;
        for dept in departments.all(all_staff) {
            let group = format!("{STEM}-staff-{dept}");
            w.apps.scim.group(&group).await;
            let mut own = entitlements.as_array().cloned().unwrap_or_default();
            own.retain(|e| e["connector"] != "scim");
            own.push(json!({"connector": "scim", "name": group}));
            let name = format!("staff-{dept}");
            w.role(&name, &Value::Array(own)).await;
            let selector = json!({"selector": {"matchLabels": {DEPARTMENT_LABEL: dept}}});
            w.bind(&name, &name, selector).await;
        }
        w
    }

    async fn role(&self, name: &str, entitlements: &Value) {
        self.apply(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
            "metadata": {"name": name}, "spec": {"entitlements": entitlements}}))
            .await;
    }

    async fn bind(&self, name: &str, role: &str, subjects: Value) {
        self.apply(
            json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding",
            "metadata": {"name": name}, "spec": {"role": role, "subjects": subjects}}),
        )
        .await;
    }

    /// Server-side applies `obj` (a Secret or a Roster kind) in the namespace.
    async fn apply(&self, obj: Value) {
        harness::apply(&self.client, &self.ns, obj).await;
    }

    /// Everyone, staff first.
    pub fn everyone(&self) -> impl Iterator<Item = &Person> {
        self.staff.iter().chain(&self.contractors)
    }

    /// Applies every Identity, then waits until every app shows everyone enabled with
    /// the staff entitlement; returns how long that took from the first apply. Progress
    /// goes to stderr.
    pub async fn join_everyone(&self, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let everyone: Vec<Person> = self.everyone().cloned().collect();
        apply_people(&self.client, &everyone).await?;
        let total = everyone.len();
        eprintln!("  {total} Identities applied in {:?}", started.elapsed());
        self.converge(started, Census::all(total), total, limit)
            .await
    }

    /// Waits until the apps show `want`, once `identities` Identities report Synced;
    /// returns the time since `started` then.
    /// Statuses come from the apiserver: reading every app in full each poll would load
    /// single-threaded scim2-server as much as Roster does at 10k.
    pub async fn converge(
        &self,
        started: Instant,
        want: Census,
        identities: usize,
        limit: Duration,
    ) -> Result<Duration, String> {
        let mut last = None;
        while started.elapsed() < limit {
            let synced = self.synced().await?;
            if synced < identities {
                if last != Some(synced) {
                    eprintln!(
                        "  {:>6.1} s  {synced} of {identities} Synced",
                        started.elapsed().as_secs_f64()
                    );
                    last = Some(synced);
                }
                tokio::time::sleep(poll_every(identities)).await;
                continue;
            }
            let seen = self.apps.census(STEM).await;
            if seen == want {
                return Ok(started.elapsed());
            }
            eprintln!(
                "  {:>6.1} s  all Synced, the apps show {seen:?}",
                started.elapsed().as_secs_f64()
            );
            tokio::time::sleep(poll_every(identities)).await;
        }
        Err(format!(
            "joiners not provisioned within {limit:?}: {last:?} Synced"
        ))
    }

    /// The benchmark's Identities whose status, for their current generation, says Synced.
    pub async fn synced(&self) -> Result<usize, String> {
        self.synced_among(|n| n.starts_with(STEM)).await
    }

    /// [`World::synced`] among the Identities whose name `which` accepts.
    pub async fn synced_among(&self, which: impl Fn(&str) -> bool) -> Result<usize, String> {
        let api = Api::<Identity>::all(self.client.clone());
        let mut n = 0;
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut lp = ListParams::default().limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = api
                .list(&lp)
                .await
                .map_err(|e| format!("list Identities: {e}"))?;
            n += page
                .items
                .iter()
                .filter(|i| i.metadata.name.as_deref().is_some_and(&which))
                .filter(|i| crate::harness::synced(i))
                .count();
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        Ok(n)
    }

    /// Deletes the contractors' binding — the bad commit — and waits until every
    /// Connector is Quarantined.
    pub async fn bad_commit(&self, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        Api::<RoleBinding>::namespaced(self.client.clone(), &self.ns)
            .delete("contractors", &Default::default())
            .await
            .map_err(|e| format!("delete the contractors' binding: {e}"))?;
        while started.elapsed() < limit {
            let mut all = true;
            for name in CONNECTORS {
                all &= self.connector(name).await.is_some_and(|c| {
                    c.status.is_some_and(|st| {
                        conditions::find(&st.conditions, conditions::QUARANTINED)
                            .is_some_and(|q| q.status == "True")
                    })
                });
            }
            if all {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("not every Connector Quarantined within {limit:?}"))
    }

    /// The Connector `name`, if it can be read.
    pub async fn connector(&self, name: &str) -> Option<Connector> {
        Api::<Connector>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await
            .ok()
    }

    /// Removals the Connectors' breakers hold, summed.
    pub async fn held(&self) -> usize {
        let mut n = 0;
        for name in CONNECTORS {
            n += self
                .connector(name)
                .await
                .and_then(|c| c.status?.quarantine)
                .map_or(0, |q| usize::try_from(q.held_count).unwrap_or(0));
        }
        n
    }

    /// Contractors whose SCIM account is still enabled.
    pub async fn contractors_enabled(&self) -> usize {
        self.apps
            .scim
            .all_users(&format!("{STEM}.c"))
            .await
            .iter()
            .filter(|u| u["active"] != false)
            .count()
    }
}

/// How long to wait between listings of `identities` Identities' statuses. Each listing
/// has the apiserver serialize every Identity, beside Roster's own work there (every
/// 500 ms at 10,000: 20,000 objects a second), so it waits a second per 2,000, which
/// still times a phase of minutes to within a percent.
pub fn poll_every(identities: usize) -> Duration {
    Duration::from_millis(500).max(Duration::from_millis(identities as u64 / 2))
}

/// Applies an Identity for each of `people` (server-side apply, 16 at a time), labelled
/// with its department.
pub async fn apply_people(client: &Client, people: &[Person]) -> Result<(), String> {
    apply_identities(client, people.iter().cloned()).await
}

/// Applies an Identity per `(name, username)`, 16 at a time.
pub async fn apply_pairs(
    client: &Client,
    people: impl Iterator<Item = (String, String)>,
) -> Result<(), String> {
    let people = people.map(|(name, username)| Person {
        name,
        username,
        department: None,
    });
    apply_identities(client, people).await
}

async fn apply_identities(
    client: &Client,
    people: impl Iterator<Item = Person>,
) -> Result<(), String> {
    let api = Api::<Identity>::all(client.clone());
    futures::stream::iter(people)
        .map(|p| {
            let api = api.clone();
            async move {
                let name = p.name;
                let labels = p.department.map(|d| json!({DEPARTMENT_LABEL: d}));
                let obj = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
                    "metadata": {"name": name, "labels": labels.unwrap_or_else(|| json!({}))},
                    "spec": {"username": p.username}});
                api.patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(obj))
                    .await
                    .map_err(|e| format!("apply Identity {name}: {e}"))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .map(|_| ())
}

/// The pure checks `cargo test` runs: departments fill in order, the last one partly, and
/// the references' groups follow Roster's.
pub fn check() {
    let d = Departments { size: 500 };
    assert_eq!(d.all(1000).collect::<Vec<_>>(), ["d000", "d001"]);
    assert_eq!(d.all(1001).last().as_deref(), Some("d002"));
    assert_eq!(d.of(499), "d000");
    assert_eq!(d.of(500), "d001");
    assert_eq!(d.group(749, 750), "staff-d001");
    assert_eq!(d.group(750, 750), "staff");
    assert_eq!(Person::staff(3, d).department.as_deref(), Some("d000"));
}
