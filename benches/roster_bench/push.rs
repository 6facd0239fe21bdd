//! Leavers pushed by HR over SCIM: people an HR system pushes to an IdentitySource's SCIM
//! endpoint join, then leave one at a time by a `DELETE /Users/{id}`; the clock runs
//! from the push answered to every app read back showing no access. No poll sits in
//! between: the push is kept as a ScimUser, and its watch triggers the source's read.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    figures::Latency,
    leavers::gone,
    world::{Person, World},
};

const TOKEN: &str = "roster-bench-push-token";

/// What the SCIM push phase measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PushLeavers {
    /// The people pushed.
    pub people: usize,
    /// From the first push to joined everywhere, for all of them.
    pub joined_seconds: f64,
    /// From a `DELETE` answered to the leaver read back gone on every app.
    pub leavers: Option<Latency>,
}

/// `people` join by a push to the operator's SCIM endpoint at `endpoint`
/// (`http://host:port`), then `leavers` of them are deleted one by one.
pub async fn scenario(
    w: &World,
    endpoint: &str,
    people: usize,
    leavers: usize,
    limit: Duration,
) -> Result<PushLeavers, String> {
    let everyone: Vec<Person> = (0..people).map(|i| Person::new('p', i)).collect();
    let apply = |obj: Value| crate::harness::apply(&w.client, &w.ns, obj);
    apply(
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "hr-push"},
        "spec": {"role": "staff",
            "subjects": {"expression": "identity.username.startsWith(\"bench.p\")"}}}),
    )
    .await;
    apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hr-push-token"}, "stringData": {"token": TOKEN}}))
    .await;
    // Limits that let every timed leaver through: this measures speed, the integration
    // tests the safeguard. A push is read at once; the poll is only a backstop.
    apply(json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "IdentitySource", "metadata": {"name": "hr-push"},
        "spec": {"scim": {"tokenSecretRef": {"name": "hr-push-token", "key": "token"}},
            "pollSeconds": 3600,
            "mapping": {"username": "userName", "attributes": {"department": "department"}},
            "safeguard": {"maxRemovals": 100_000, "maxPercent": 100, "windowSeconds": 60}}}))
    .await;
    let users = format!("{endpoint}/sources/{}/hr-push/scim/v2/Users", w.ns);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(people);
    for p in &everyone {
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": p.username, "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "hr"}});
        let answer = http
            .post(&users)
            .bearer_auth(TOKEN)
            .json(&user)
            .send()
            .await
            .map_err(|e| format!("push {}: {e}", p.username))?;
        if answer.status() != 201 {
            return Err(format!("push {}: {}", p.username, answer.status()));
        }
        let body: Value = answer.json().await.map_err(|e| format!("push: {e}"))?;
        ids.push(body["id"].as_str().unwrap_or_default().to_owned());
    }
    let pushed = |n: &str| n.starts_with("bench.p");
    while w.synced_among(pushed).await? < people {
        if started.elapsed() > limit {
            return Err(format!("{people} pushed people not Synced after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let joined_seconds = started.elapsed().as_secs_f64();
    let mut took = Vec::with_capacity(leavers);
    for (leaver, id) in everyone.iter().zip(&ids).take(leavers) {
        let started = Instant::now();
        let answer = http
            .delete(format!("{users}/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(|e| format!("delete {}: {e}", leaver.username))?;
        if answer.status() != 204 {
            return Err(format!("delete {}: {}", leaver.username, answer.status()));
        }
        while !gone(w, &leaver.username).await {
            if started.elapsed() > limit {
                return Err(format!(
                    "{} still has access after {limit:?}",
                    leaver.username
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(started.elapsed());
    }
    Ok(PushLeavers {
        people,
        joined_seconds,
        leavers: Latency::of(&took),
    })
}
