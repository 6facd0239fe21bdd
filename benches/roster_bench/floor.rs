//! The references Roster's figures stand beside, measured on the same servers in the same
//! run: a bare client's joiner ceiling, bare paged listings (the floor of a drift scan),
//! and a naive per-user reconciler of the kind provisioning services run.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use futures::{StreamExt, TryStreamExt};
use ldap3::{
    Scope, SearchEntry,
    adapters::{Adapter, EntriesOnly, PagedResults},
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::harness::{ldap, scim};

/// Rows or entries per page, as Roster's connectors ask for.
const PAGE: usize = 100;

/// A piece of work done directly: how long it took and how many requests it made.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Floor {
    pub seconds: f64,
    pub requests: usize,
}

/// Counts requests as they are made.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Counter {
    fn one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "active": true})
}

fn add_member(id: &str) -> Value {
    json!([{"op": "add", "path": "members", "value": [{"value": id}]}])
}

/// A user to make, and the group it joins.
pub struct Joiner {
    pub name: String,
    pub group: String,
}

/// Makes each group `joiners` name on `app`, prefixed `{stem}-`; their ids by name.
async fn make_groups(
    app: &scim::Direct,
    stem: &str,
    joiners: &[Joiner],
) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for j in joiners {
        if !ids.contains_key(&j.group) {
            let id = app.group(&format!("{stem}-{}", j.group)).await;
            ids.insert(j.group.clone(), id);
        }
    }
    ids
}

/// The joiner ceiling on SCIM: `joiners` created and each added to its group, directly,
/// `concurrency` at a time, on a fresh tenant of the same server — the creates and
/// grants Roster makes, without its reads.
pub async fn scim_ceiling(joiners: &[Joiner], concurrency: usize) -> Result<Floor, String> {
    let app = scim::Direct::new(&scim::tenant("bare"));
    let groups = make_groups(&app, "bare", joiners).await;
    let count = Counter::default();
    let started = Instant::now();
    futures::stream::iter(joiners)
        .map(|Joiner { name, group }| {
            let (app, count) = (&app, &count);
            let group = groups.get(group).map_or("", String::as_str);
            async move {
                count.one();
                let made = app
                    .try_post("/Users", user(name))
                    .await
                    .map_err(|s| format!("bare create {name}: {s}"))?;
                let id = made["id"].as_str().unwrap_or_default();
                count.one();
                app.patch(&format!("/Groups/{group}"), add_member(id)).await;
                Ok::<_, String>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(Floor {
        seconds: started.elapsed().as_secs_f64(),
        requests: count.get(),
    })
}

/// Every user and group of a SCIM tenant, page by page.
pub async fn scim_list(app: &scim::Direct) -> Floor {
    let started = Instant::now();
    let mut requests = 0;
    for kind in ["Users", "Groups"] {
        let mut seen = 0;
        // Bounded: at most a page per hundred thousand resources' worth.
        for _ in 0..1_000 {
            requests += 1;
            let page = app
                .get(&format!("/{kind}?startIndex={}&count={PAGE}", seen + 1))
                .await;
            let got = page["Resources"].as_array().map_or(0, Vec::len);
            seen += got;
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            if got == 0 || seen >= total {
                break;
            }
        }
    }
    Floor {
        seconds: started.elapsed().as_secs_f64(),
        requests,
    }
}

/// Every entry below the people and groups containers, in paged searches.
pub async fn ldap_list() -> Result<Floor, String> {
    let mut admin = ldap::server().admin().await;
    let started = Instant::now();
    let mut requests = 0;
    for base in [ldap::PEOPLE, ldap::GROUPS] {
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE as i32)),
        ];
        let mut stream = admin
            .streaming_search_with(
                adapters,
                base,
                Scope::OneLevel,
                "(objectClass=*)",
                vec!["uid", "member"],
            )
            .await
            .map_err(|e| format!("bare LDAP list: {e}"))?;
        let mut entries = 0;
        while let Some(e) = stream
            .next()
            .await
            .map_err(|e| format!("bare LDAP list: {e}"))?
        {
            let _ = SearchEntry::construct(e);
            entries += 1;
        }
        let _ = stream.finish().await;
        requests += entries / PAGE + 1;
    }
    Ok(Floor {
        seconds: started.elapsed().as_secs_f64(),
        requests,
    })
}

/// Every role and membership in PostgreSQL, in keyset pages.
pub async fn pg_list(pg: &tokio_postgres::Client) -> Result<Floor, String> {
    let started = Instant::now();
    let mut requests = 0;
    for query in [
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname > $1 ORDER BY rolname LIMIT 100",
        "SELECT g.rolname || '/' || r.rolname FROM pg_auth_members m
           JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
          WHERE g.rolname || '/' || r.rolname > $1 ORDER BY 1 LIMIT 100",
    ] {
        let mut after = String::new();
        for _ in 0..100_000 {
            requests += 1;
            let rows = pg
                .query(query, &[&after])
                .await
                .map_err(|e| format!("bare PostgreSQL list: {e}"))?;
            match rows.last() {
                Some(last) if rows.len() == PAGE => after = last.get(0),
                _ => break,
            }
        }
    }
    Ok(Floor {
        seconds: started.elapsed().as_secs_f64(),
        requests,
    })
}

/// What the naive reconciler did in one cycle.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cycle {
    pub seconds: f64,
    pub reads: usize,
    pub writes: usize,
}

/// The naive reconciler: each user looked up by filter, then its group, then whatever
/// write is missing — one user at a time, every cycle, whether or not anything changed.
/// Runs `cycles` cycles over `joiners` on a fresh tenant, `concurrency` users at a time.
pub async fn naive(joiners: &[Joiner], concurrency: usize, cycles: usize) -> Vec<Cycle> {
    let app = scim::Direct::new(&scim::tenant("naive"));
    make_groups(&app, "naive", joiners).await;
    let mut out = Vec::new();
    for _ in 0..cycles {
        let (reads, writes) = (Counter::default(), Counter::default());
        let started = Instant::now();
        futures::stream::iter(joiners)
            .for_each_concurrent(concurrency, |Joiner { name, group }| {
                let (app, reads, writes) = (&app, &reads, &writes);
                async move {
                    reads.one();
                    let id = match app.find_user(name).await {
                        Some(u) => u["id"].as_str().unwrap_or_default().to_owned(),
                        None => {
                            writes.one();
                            let made = app.post("/Users", user(name)).await;
                            made["id"].as_str().unwrap_or_default().to_owned()
                        }
                    };
                    reads.one();
                    let filter = format!("displayName eq \"naive-{group}\"");
                    let filter = utf8_percent_encode(&filter, NON_ALPHANUMERIC);
                    let groups = app.get(&format!("/Groups?filter={filter}")).await;
                    let group = &groups["Resources"][0];
                    let member = group["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|v| v["value"] == id.as_str()));
                    if !member {
                        writes.one();
                        let gid = group["id"].as_str().unwrap_or_default();
                        app.patch(&format!("/Groups/{gid}"), add_member(&id)).await;
                    }
                }
            })
            .await;
        out.push(Cycle {
            seconds: started.elapsed().as_secs_f64(),
            reads: reads.get(),
            writes: writes.get(),
        });
    }
    out
}
