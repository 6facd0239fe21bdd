//! Who, by name, each app shows: enabled accounts and the members of one group, read from
//! the servers directly. Counts can balance while the wrong people hold access; a roll
//! cannot.

use std::collections::{BTreeMap, BTreeSet};

use ldap3::{Scope, SearchEntry};

use super::{apps::Apps, ldap};

/// One app's people whose usernames start with a stem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roll {
    /// Usernames with an enabled account.
    pub enabled: BTreeSet<String>,
    /// Usernames holding the group, enabled or not.
    pub holding: BTreeSet<String>,
}

/// What one app shows against what was declared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gaps {
    /// Declared active, not enabled.
    pub not_enabled: BTreeSet<String>,
    /// Declared gone, still enabled.
    pub still_enabled: BTreeSet<String>,
    /// Declared to hold the group, not holding it.
    pub missing: BTreeSet<String>,
    /// Holding the group, not declared to.
    pub excess: BTreeSet<String>,
}

impl Gaps {
    /// Whether the app shows exactly what was declared.
    pub fn none(&self) -> bool {
        *self == Self::default()
    }

    /// Counts, for a line of progress.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.not_enabled.len(),
            self.still_enabled.len(),
            self.missing.len(),
            self.excess.len(),
        ]
    }
}

impl Roll {
    /// How this roll differs from `active` (who should be enabled) and `holders` (who
    /// should hold the group), within `everyone` (all names the test declared).
    pub fn gaps(
        &self,
        everyone: &BTreeSet<String>,
        active: &BTreeSet<String>,
        holders: &BTreeSet<String>,
    ) -> Gaps {
        let known = |s: &BTreeSet<String>| -> BTreeSet<String> {
            s.intersection(everyone).cloned().collect()
        };
        let (enabled, holding) = (known(&self.enabled), known(&self.holding));
        Gaps {
            not_enabled: active.difference(&enabled).cloned().collect(),
            still_enabled: enabled.difference(active).cloned().collect(),
            missing: holders.difference(&holding).cloned().collect(),
            excess: holding.difference(holders).cloned().collect(),
        }
    }
}

impl Apps {
    /// The SCIM, LDAP and PostgreSQL rolls of `{stem}.` people and the group
    /// `{stem}-{suffix}` (PostgreSQL: `{stem}_{suffix}`).
    pub async fn rolls(&self, stem: &str, suffix: &str) -> [Roll; 3] {
        [
            self.scim_roll(stem, suffix).await,
            ldap_roll(stem, suffix).await,
            self.pg_roll(stem, suffix).await,
        ]
    }

    async fn scim_roll(&self, stem: &str, suffix: &str) -> Roll {
        let users = self.scim.all_users(&format!("{stem}.")).await;
        let names: BTreeMap<&str, &str> = users
            .iter()
            .filter_map(|u| Some((u["id"].as_str()?, u["userName"].as_str()?)))
            .collect();
        let enabled = users
            .iter()
            .filter(|u| u["active"] != false)
            .filter_map(|u| u["userName"].as_str().map(str::to_owned))
            .collect();
        let group = format!("{stem}-{suffix}");
        let filter = format!("displayName eq {}", serde_json::Value::String(group));
        let url = format!("/Groups?filter={}", url_escape(&filter).unwrap_or_default());
        let holding = self.scim.get(&url).await["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| names.get(m["value"].as_str()?).map(|n| (*n).to_owned()))
            .collect();
        Roll { enabled, holding }
    }

    async fn pg_roll(&self, stem: &str, suffix: &str) -> Roll {
        let rows = self
            .pg
            .query(
                "SELECT r.rolname, r.rolcanlogin, EXISTS (SELECT 1 FROM pg_auth_members m
                        JOIN pg_roles g ON g.oid = m.roleid
                        WHERE m.member = r.oid AND g.rolname = $2)
                 FROM pg_roles r WHERE starts_with(r.rolname, $1)",
                &[&format!("{stem}."), &format!("{stem}_{suffix}")],
            )
            .await
            .expect("list roles");
        let mut roll = Roll::default();
        for row in rows {
            let name: String = row.get(0);
            if row.get::<_, bool>(1) {
                roll.enabled.insert(name.clone());
            }
            if row.get::<_, bool>(2) {
                roll.holding.insert(name);
            }
        }
        roll
    }
}

fn url_escape(s: &str) -> Option<String> {
    let url = reqwest::Url::parse_with_params("http://x/", &[("f", s)]).ok()?;
    url.query()?.strip_prefix("f=").map(str::to_owned)
}

async fn ldap_roll(stem: &str, suffix: &str) -> Roll {
    let mut admin = ldap::server().admin().await;
    let people = format!("{stem}.");
    let filter = format!("(uid={}*)", ldap3::ldap_escape(&people));
    let enabled = admin
        .search(ldap::PEOPLE, Scope::OneLevel, &filter, vec!["uid"])
        .await
        .expect("search people")
        .0
        .into_iter()
        .map(SearchEntry::construct)
        .filter_map(|e| e.attrs.get("uid").and_then(|v| v.first().cloned()))
        .collect();
    let holding = admin
        .search(
            &format!(
                "cn={},{}",
                ldap3::dn_escape(format!("{stem}-{suffix}")),
                ldap::GROUPS
            ),
            Scope::Base,
            "(objectClass=*)",
            vec!["member"],
        )
        .await
        .expect("search the group")
        .0
        .into_iter()
        .map(SearchEntry::construct)
        .flat_map(|e| e.attrs.get("member").cloned().unwrap_or_default())
        .filter_map(|dn| {
            let uid = dn.strip_prefix("uid=")?.split(',').next()?;
            uid.starts_with(&people).then(|| uid.to_owned())
        })
        .collect();
    Roll { enabled, holding }
}
