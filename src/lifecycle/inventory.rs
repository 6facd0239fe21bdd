//! The connector-wide view: one full listing of a downstream app, joined with every
//! identity at once. It finds what the per-identity fast path cannot see — accounts
//! changed out of band, strangers in groups Roster manages, marked accounts no identity
//! claims — at the cost of O(pages) requests. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    model::{DesiredAccount, EntitlementMembers, Managed, ObservedAccount},
    plan::{Ledger, Policy, plan},
};

/// An identity as the scan needs it.
pub struct Claim<'a> {
    /// The Identity's name (the ownership mark's value).
    pub identity: &'a str,
    /// Its username.
    pub username: &'a str,
    /// What it should have on this connector.
    pub desired: Option<&'a DesiredAccount>,
    /// What its status ledger says Roster granted here.
    pub ledger: Ledger,
}

/// A membership of an account Roster does not own in an entitlement Roster manages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stray {
    /// The account's id.
    pub account_id: String,
    /// Its username.
    pub username: String,
    /// The managed entitlement it holds.
    pub entitlement: String,
}

/// What a scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Accounts carrying Roster's mark for an existing identity.
    pub managed: usize,
    /// Identities whose account differs from what they should have (or is missing):
    /// their fast path must look again. Identity name → first difference.
    pub drifted: BTreeMap<String, String>,
    /// Those of `drifted` whose account does not exist at all.
    pub absent: BTreeSet<String>,
    /// Usernames of marked accounts no identity claims.
    pub orphaned: Vec<String>,
    /// Accounts without Roster's mark.
    pub unmanaged: usize,
    /// Memberships of unowned accounts in authoritative entitlements (protected accounts
    /// excepted): Roster removes them.
    pub strays: Vec<Stray>,
    /// Memberships of unowned accounts in additive entitlements: reported, left in place.
    pub unowned_members: Vec<Stray>,
}

/// Fills each account's entitlements from the entitlement listing.
pub fn join(accounts: &mut [ObservedAccount], entitlements: &[EntitlementMembers]) {
    let mut held = Held::default();
    for e in entitlements {
        held.add(e);
    }
    for a in accounts.iter_mut() {
        held.fill(a);
    }
}

/// Which entitlements each account holds, by account id, folded from entitlement pages
/// as they come: the scan keeps this, not the pages.
#[derive(Debug, Default)]
pub struct Held {
    by_account: BTreeMap<String, BTreeSet<String>>,
}

impl Held {
    /// Folds in one entitlement and its members.
    pub fn add(&mut self, entitlement: &EntitlementMembers) {
        for member in &entitlement.members {
            self.by_account
                .entry(member.clone())
                .or_default()
                .insert(entitlement.name.clone());
        }
    }

    /// Sets `account`'s entitlements to those it holds; each account is filled once.
    pub fn fill(&mut self, account: &mut ObservedAccount) {
        account.entitlements = self.by_account.remove(&account.id).unwrap_or_default();
    }
}

/// Assesses a full listing against every identity's claim. `policy` supplies adoption,
/// grace and time; `protected` lists usernames never to touch.
pub fn assess(
    accounts: &[ObservedAccount],
    claims: &[Claim<'_>],
    managed: &Managed,
    protected: &BTreeSet<String>,
    policy: &Policy,
) -> Assessment {
    let mut assessor = Assessor::new(claims, managed, protected, policy);
    for account in accounts {
        assessor.add(account);
    }
    assessor.finish()
}

/// [`assess`] one account at a time, so that a scan can stream its pages: it keeps the
/// findings and each account's folded username, never the accounts.
pub struct Assessor<'a> {
    claims: &'a [Claim<'a>],
    by_identity: BTreeMap<&'a str, &'a Claim<'a>>,
    managed: &'a Managed,
    policy: &'a Policy,
    /// Protected usernames and wanted ones (claims with a desired account), folded once:
    /// the scan compares every account with every claim, and folding each pair would
    /// allocate accounts × claims strings.
    protected: BTreeSet<String>,
    wanted: BTreeSet<String>,
    /// Every account's username, folded.
    seen: BTreeSet<String>,
    out: Assessment,
}

impl<'a> Assessor<'a> {
    /// An assessor of accounts against `claims`.
    pub fn new(
        claims: &'a [Claim<'a>],
        managed: &'a Managed,
        protected: &BTreeSet<String>,
        policy: &'a Policy,
    ) -> Self {
        // Names compare as the app compares them: on an app that folds case, `Alice` is
        // the account of the Identity whose username is `alice`, not a stranger.
        let names = policy.names;
        Self {
            claims,
            by_identity: claims.iter().map(|c| (c.identity, c)).collect(),
            managed,
            policy,
            protected: protected.iter().map(|p| names.key(p)).collect(),
            wanted: claims
                .iter()
                .filter(|c| c.desired.is_some())
                .map(|c| names.key(c.username))
                .collect(),
            seen: BTreeSet::new(),
            out: Assessment::default(),
        }
    }

    fn is_protected(&self, username: &str) -> bool {
        self.protected.contains(&self.policy.names.key(username))
    }

    /// Assesses one account (its entitlements filled in).
    pub fn add(&mut self, account: &ObservedAccount) {
        let key = self.policy.names.key(&account.username);
        let Some(owner) = account.owner.as_deref() else {
            self.unowned(account, &key);
            self.seen.insert(key);
            return;
        };
        self.seen.insert(key);
        let Some(claim) = self.by_identity.get(owner) else {
            self.out.orphaned.push(account.username.clone());
            return;
        };
        self.out.managed += 1;
        let p = plan(
            claim.identity,
            claim.desired,
            Some(account),
            &claim.ledger,
            self.managed,
            &Policy {
                protected: self.is_protected(claim.username),
                ..self.policy.clone()
            },
        );
        if let Some(first) = p.drift.first().filter(|_| !p.changes.is_empty()) {
            self.out.drifted.insert(owner.to_owned(), first.clone());
        }
    }

    fn unowned(&mut self, account: &ObservedAccount, key: &str) {
        self.out.unmanaged += 1;
        // A protected account is never touched; an identity whose username this is
        // decides on its own path (conflict or adoption). A stranger in a managed group
        // is drift here.
        if self.protected.contains(key) || self.wanted.contains(key) {
            return;
        }
        for e in account.entitlements.intersection(&self.managed.names) {
            let member = Stray {
                account_id: account.id.clone(),
                username: account.username.clone(),
                entitlement: e.clone(),
            };
            if self.managed.authoritative.contains(e) {
                self.out.strays.push(member);
            } else {
                self.out.unowned_members.push(member);
            }
        }
    }

    /// How many accounts were assessed.
    pub fn accounts(&self) -> usize {
        self.out.managed + self.out.orphaned.len() + self.out.unmanaged
    }

    /// The findings, once every account was added.
    pub fn finish(mut self) -> Assessment {
        for claim in self.claims {
            if claim.desired.is_some()
                && !self.seen.contains(&self.policy.names.key(claim.username))
                && !self.is_protected(claim.username)
            {
                self.out
                    .drifted
                    .insert(claim.identity.to_owned(), "account does not exist".into());
                self.out.absent.insert(claim.identity.to_owned());
            }
        }
        self.out.orphaned.sort();
        self.out.strays.sort();
        self.out.unowned_members.sort();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::{
        api::AdoptionPolicy,
        lifecycle::model::{AccountAttributes, NameCase},
    };

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn account(id: &str, username: &str, owner: Option<&str>) -> ObservedAccount {
        ObservedAccount {
            id: id.into(),
            username: username.into(),
            owner: owner.map(str::to_owned),
            active: true,
            attributes: AccountAttributes::default(),
            entitlements: BTreeSet::new(),
            version: None,
        }
    }

    fn desired(username: &str, entitlements: &[&str]) -> DesiredAccount {
        DesiredAccount {
            username: username.into(),
            kind: Default::default(),
            attributes: AccountAttributes::default(),
            active: true,
            entitlements: set(entitlements),
        }
    }

    fn policy() -> Policy {
        Policy {
            protected: false,
            adoption: AdoptionPolicy::Never,
            delete_after: None,
            now: Timestamp::UNIX_EPOCH,
            names: NameCase::Exact,
        }
    }

    #[test]
    fn join_fills_entitlements_from_members() {
        let mut accounts = vec![account("1", "ada", None), account("2", "bob", None)];
        join(
            &mut accounts,
            &[
                EntitlementMembers {
                    name: "eng".into(),
                    members: vec!["1".into(), "2".into()],
                },
                EntitlementMembers {
                    name: "ops".into(),
                    members: vec!["2".into()],
                },
            ],
        );
        assert_eq!(accounts[0].entitlements, set(&["eng"]));
        assert_eq!(accounts[1].entitlements, set(&["eng", "ops"]));
    }

    #[test]
    fn where_the_app_folds_case_a_case_variant_is_no_stranger() {
        // `Ada` downstream is the account of the Identity whose username is `ada` on an
        // app that folds case; `ROOT` protects `root`. Under Authoritative membership
        // a stranger's groups are revoked, so mistaking either costs someone access.
        let mut ada = account("1", "Ada", None);
        ada.entitlements = set(&["eng"]);
        let mut root = account("2", "root", None);
        root.entitlements = set(&["eng"]);
        let d_ada = desired("ada", &["eng"]);
        let claims = [Claim {
            identity: "ada",
            username: "ada",
            desired: Some(&d_ada),
            ledger: Ledger::default(),
        }];
        let managed = Managed {
            names: set(&["eng"]),
            authoritative: set(&["eng"]),
        };
        let assess_as = |names| {
            assess(
                &[ada.clone(), root.clone()],
                &claims,
                &managed,
                &set(&["ROOT"]),
                &Policy { names, ..policy() },
            )
        };
        let folded = assess_as(NameCase::Folded);
        assert!(folded.strays.is_empty(), "{:?}", folded.strays);
        assert!(
            !folded.drifted.contains_key("ada"),
            "her account exists: {:?}",
            folded.drifted
        );
        let exact = assess_as(NameCase::Exact);
        let strays: Vec<&str> = exact.strays.iter().map(|s| s.username.as_str()).collect();
        assert_eq!(
            strays,
            ["Ada", "root"],
            "an exact-case app has two strangers"
        );
    }

    #[test]
    fn finds_drift_orphans_strays_and_missing_accounts() {
        let mut ada = account("1", "ada", Some("ada"));
        ada.entitlements = set(&[]); // lost "eng" out of band
        let mut mallory = account("2", "mallory", None);
        mallory.entitlements = set(&["eng", "book-club"]);
        let mut admin = account("3", "break-glass", None);
        admin.entitlements = set(&["eng"]);
        let ghost = account("4", "ghost", Some("gone"));
        let (d_ada, d_bob) = (desired("ada", &["eng"]), desired("bob", &["eng"]));
        let claims = [
            Claim {
                identity: "ada",
                username: "ada",
                desired: Some(&d_ada),
                ledger: Ledger::default(),
            },
            Claim {
                identity: "bob",
                username: "bob",
                desired: Some(&d_bob),
                ledger: Ledger::default(),
            },
        ];
        let a = assess(
            &[ada, mallory.clone(), admin.clone(), ghost.clone()],
            &claims,
            &Managed {
                names: set(&["eng"]),
                authoritative: set(&["eng"]),
            },
            &set(&["break-glass"]),
            &policy(),
        );
        assert_eq!(a.managed, 1);
        assert_eq!(
            a.drifted.get("ada").map(String::as_str),
            Some("lacks \"eng\"")
        );
        assert_eq!(
            a.drifted.get("bob").map(String::as_str),
            Some("account does not exist")
        );
        assert_eq!(a.absent, set(&["bob"]), "only bob's account is missing");
        assert_eq!(a.orphaned, ["ghost"]);
        assert_eq!(a.unmanaged, 2);
        assert_eq!(
            a.strays,
            [Stray {
                account_id: "2".into(),
                username: "mallory".into(),
                entitlement: "eng".into()
            }],
            "the protected account and the unmanaged group are left alone"
        );
        assert!(a.unowned_members.is_empty());

        // Under additive membership the same stranger is reported, not removed.
        let additive = assess(
            &[mallory, admin, ghost],
            &claims,
            &Managed {
                names: set(&["eng"]),
                authoritative: set(&[]),
            },
            &set(&["break-glass"]),
            &policy(),
        );
        assert!(additive.strays.is_empty());
        assert_eq!(
            additive
                .unowned_members
                .iter()
                .map(|m| (m.username.as_str(), m.entitlement.as_str()))
                .collect::<Vec<_>>(),
            [("mallory", "eng")]
        );
    }

    #[test]
    fn an_identitys_own_unmarked_account_is_not_a_stray() {
        let mut carol = account("1", "carol", None);
        carol.entitlements = set(&["eng"]);
        let d = desired("carol", &["eng"]);
        let claims = [Claim {
            identity: "carol",
            username: "carol",
            desired: Some(&d),
            ledger: Ledger::default(),
        }];
        let managed = Managed {
            names: set(&["eng"]),
            authoritative: set(&["eng"]),
        };
        let a = assess(&[carol], &claims, &managed, &set(&[]), &policy());
        assert!(a.strays.is_empty());
        assert!(
            a.drifted.is_empty(),
            "the conflict is reported on the identity, not fixed here"
        );
    }
}
