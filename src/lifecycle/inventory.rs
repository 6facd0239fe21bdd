//! The connector-wide view: one full listing of a downstream app, joined with every
//! identity at once. It finds what the per-identity fast path cannot see — accounts
//! changed out of band, strangers in groups Roster manages, marked accounts no identity
//! claims — at the cost of O(pages) requests. Pure.

use std::collections::{BTreeMap, BTreeSet, HashSet};

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
    /// Every account's id: a listing paged by index over an app that changes meanwhile
    /// shows an account again on the next page, and the copy is not a second account.
    ids: HashSet<String>,
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
            ids: HashSet::new(),
            out: Assessment::default(),
        }
    }

    fn is_protected(&self, username: &str) -> bool {
        self.protected.contains(&self.policy.names.key(username))
    }

    /// Assesses one account (its entitlements filled in); an account already assessed
    /// is skipped. The first copy is the one that counts: [`Held::fill`] gave it the
    /// account's memberships, and a copy would look like an account that lost them.
    pub fn add(&mut self, account: &ObservedAccount) {
        if !self.ids.insert(account.id.clone()) {
            return;
        }
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
#[path = "inventory_tests.rs"]
mod tests;
