//! SCIM, against the real scim2-server: a tenant of this test's own, all of whose users
//! and groups are read. Hostile names reach the server in JSON bodies and filter strings
//! (`userName eq "…"`, `displayName eq "…"`), and ids in URL paths.

use roster::connector::{Connector, scim::ScimConnector, target::Network};
use serde_json::Value;

use super::{Downstream, Snapshot, Tally, only_member_added};
use crate::harness::scim;

struct Scim {
    c: ScimConnector,
    direct: scim::Direct,
}

/// One resource's attributes, but its `meta` (timestamps, versions) and a user's
/// `groups` (the server's mirror of what the groups hold).
fn attributes(
    resource: &Value,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let object = resource.as_object().cloned().unwrap_or_default();
    object
        .into_iter()
        .filter(|(k, _)| k != "meta" && k != "groups")
        .map(|(k, v)| {
            let values = match (k.as_str(), v) {
                ("members", Value::Array(members)) => members
                    .iter()
                    .map(|m| m["value"].as_str().unwrap_or_default().to_owned())
                    .collect(),
                (_, v) => [v.to_string()].into(),
            };
            (k, values)
        })
        .collect()
}

/// The snapshot key of the group named `name`.
fn group_key(s: &Snapshot, name: &str) -> Option<String> {
    let name = Value::String(name.to_owned()).to_string();
    s.iter()
        .find(|(k, a)| {
            k.starts_with("Group/") && a.get("displayName").is_some_and(|d| d.contains(&name))
        })
        .map(|(k, _)| k.clone())
}

#[async_trait::async_trait]
impl Downstream for Scim {
    fn connector(&self) -> &dyn Connector {
        &self.c
    }

    async fn snapshot(&self) -> Snapshot {
        let mut out = Snapshot::new();
        for kind in ["Users", "Groups"] {
            let page = self.direct.get(&format!("/{kind}?count=1000")).await;
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            assert_eq!(
                page["totalResults"].as_u64(),
                Some(items.len() as u64),
                "all {kind} on one page"
            );
            for r in &items {
                let id = r["id"].as_str().expect("an id");
                out.insert(format!("{}/{id}", &kind[..kind.len() - 1]), attributes(r));
            }
        }
        out
    }

    async fn make_entitlement(&self, _i: usize, hostile: &str) -> (String, bool) {
        if group_key(&self.snapshot().await, hostile).is_none() {
            let group = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": hostile,
            });
            let _refused = self.direct.try_post("/Groups", group).await;
        }
        let there = group_key(&self.snapshot().await, hostile).is_some();
        (hostile.to_owned(), there)
    }

    fn is_the_grant(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        account: &str,
        _username: &str,
        entitlement: &str,
    ) -> Result<(), String> {
        let group = group_key(after, entitlement).ok_or("the group is gone")?;
        let id = account.strip_prefix("User/").ok_or("not a user")?;
        only_member_added(before, after, &group, "members", id)
    }
}

#[tokio::test]
async fn hostile_names_change_only_their_own_user_in_scim() {
    let base = scim::tenant("hostile");
    let d = Scim {
        c: ScimConnector::new(&base, scim::TOKEN, None, &Network::loopback_plaintext())
            .expect("connector"),
        direct: scim::Direct::new(&base),
    };
    let Tally { made, granted } = super::run(&d, 32).await;
    assert!(
        made >= 24 && granted >= 24,
        "too few hostile names went through to test anything: {made} made, {granted} granted of 32"
    );
}
