//! `resolve`: what each identity should have on each connector, at a given instant.
//!
//! An identity has an account on a connector exactly when some active binding gives it an
//! entitlement there; accounts follow bindings, with no other switch.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{
    audit::Grantor,
    bounds::Bounds,
    budget::Feeds,
    model::{AccountAttributes, ConnectorKey, DesiredAccount, Managed},
    subjects::{SubjectError, SubjectMatcher},
};
use crate::api::{Connector, Identity, LifecycleState, MembershipAuthority, Role, RoleBinding};

/// Where an identity is in its lifecycle at an instant, its state and validity combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effective {
    /// `validFrom` is still ahead: no access yet.
    NotStarted,
    /// Gets every entitlement its bindings give.
    Active,
    /// Accounts exist but are disabled.
    Suspended,
    /// Left: no access anywhere.
    Terminated,
}

/// A binding, compiled.
struct CompiledBinding {
    namespace: String,
    name: String,
    role: String,
    valid_from: Option<Timestamp>,
    valid_until: Option<Timestamp>,
    matcher: Result<SubjectMatcher, SubjectError>,
}

/// Everything resolve reads besides the identity: compiled once per snapshot of the
/// caches, then used for any number of identities.
pub struct Catalog {
    bindings: Vec<CompiledBinding>,
    /// (namespace, role name) → entitlements on connectors that exist.
    roles: BTreeMap<(String, String), Vec<(ConnectorKey, String)>>,
    /// Connector → every entitlement some Role names on it (the entitlements Roster
    /// manages there), and which of them are authoritative.
    managed: BTreeMap<ConnectorKey, Managed>,
    /// Connector → how many Roles and RoleBindings feed it.
    feeds: BTreeMap<ConnectorKey, Feeds>,
}

/// What the Roles naming one entitlement say about its membership.
#[derive(Default)]
struct Say {
    additive: bool,
    authoritative: bool,
}

impl Catalog {
    /// Builds the catalog from the caches' contents. A Role entitlement on a Connector that
    /// does not exist, or outside its `allowedEntitlements`, is left out (the Role reports
    /// it); a binding whose subjects do not
    /// compile grants nothing (the binding reports it).
    pub fn new(
        roles: &[Arc<Role>],
        bindings: &[Arc<RoleBinding>],
        connectors: &[Arc<Connector>],
    ) -> Self {
        let existing: BTreeMap<ConnectorKey, (MembershipAuthority, &[String])> = connectors
            .iter()
            .filter_map(|c| {
                Some((
                    ConnectorKey::new(c.namespace()?, c.name_any()),
                    (c.spec.membership, c.spec.allowed_entitlements.as_slice()),
                ))
            })
            .collect();
        // Outside a Connector's bounds an entitlement is granted to no one (the Role
        // reports it), as if the Role did not name it.
        let grantable = |key: &ConnectorKey, name: &str| {
            existing
                .get(key)
                .is_some_and(|(_, allowed)| Bounds::new(allowed).allows(name))
        };
        let mut by_role = BTreeMap::new();
        let mut said: BTreeMap<(ConnectorKey, String), Say> = BTreeMap::new();
        for role in roles {
            let Some(ns) = role.namespace() else { continue };
            let entitlements: Vec<(ConnectorKey, String)> = role
                .spec
                .entitlements
                .iter()
                .map(|e| {
                    (
                        ConnectorKey::new(ns.clone(), e.connector.clone()),
                        e.name.clone(),
                    )
                })
                .filter(|(key, name)| grantable(key, name))
                .collect();
            for e in &role.spec.entitlements {
                let key = ConnectorKey::new(ns.clone(), e.connector.clone());
                if !grantable(&key, &e.name) {
                    continue;
                }
                let say = said.entry((key, e.name.clone())).or_default();
                match e.membership {
                    Some(MembershipAuthority::Additive) => say.additive = true,
                    Some(MembershipAuthority::Authoritative) => say.authoritative = true,
                    None => {}
                }
            }
            by_role.insert((ns, role.name_any()), entitlements);
        }
        let mut managed: BTreeMap<ConnectorKey, Managed> = BTreeMap::new();
        for ((key, name), say) in said {
            // Additive wins any disagreement; silence inherits the Connector's setting.
            let authoritative = !say.additive
                && (say.authoritative
                    || existing.get(&key).map(|(m, _)| *m)
                        == Some(MembershipAuthority::Authoritative));
            let m = managed.entry(key).or_default();
            if authoritative {
                m.authoritative.insert(name.clone());
            }
            m.names.insert(name);
        }
        let bindings: Vec<CompiledBinding> = bindings
            .iter()
            .filter_map(|b| {
                Some(CompiledBinding {
                    namespace: b.namespace()?,
                    name: b.name_any(),
                    role: b.spec.role.clone(),
                    valid_from: b.spec.valid_from.as_ref().map(|t| t.0),
                    valid_until: b.spec.valid_until.as_ref().map(|t| t.0),
                    matcher: SubjectMatcher::new(&b.spec.subjects),
                })
            })
            .collect();
        let mut feeds: BTreeMap<ConnectorKey, Feeds> = BTreeMap::new();
        for entitlements in by_role.values() {
            let keys: BTreeSet<&ConnectorKey> = entitlements.iter().map(|(k, _)| k).collect();
            for key in keys {
                feeds.entry(key.clone()).or_default().roles += 1;
            }
        }
        for b in &bindings {
            let Some(entitlements) = by_role.get(&(b.namespace.clone(), b.role.clone())) else {
                continue;
            };
            let keys: BTreeSet<&ConnectorKey> = entitlements.iter().map(|(k, _)| k).collect();
            for key in keys {
                feeds.entry(key.clone()).or_default().bindings += 1;
            }
        }
        Self {
            bindings,
            roles: by_role,
            managed,
            feeds,
        }
    }

    /// How many Roles and RoleBindings feed `connector`: none is suspicious while Roster
    /// manages accounts there (see [`crate::lifecycle::budget::empty_feed`]).
    pub fn feeds(&self, connector: &ConnectorKey) -> Feeds {
        self.feeds.get(connector).copied().unwrap_or_default()
    }

    /// The entitlements Roster manages on `connector`, and their membership authority.
    pub fn managed(&self, connector: &ConnectorKey) -> Managed {
        self.managed.get(connector).cloned().unwrap_or_default()
    }
}

/// What resolve decided for one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The identity's effective lifecycle state.
    pub effective: Effective,
    /// The account it should have on each connector; a connector not listed gets none.
    pub accounts: BTreeMap<ConnectorKey, DesiredAccount>,
    /// Connector → entitlement → the RoleBindings (and Roles) that give it: the cause
    /// audit records name.
    pub grantors: BTreeMap<ConnectorKey, BTreeMap<String, BTreeSet<Grantor>>>,
    /// The next instant at which the answer changes by itself (a `validFrom` or
    /// `validUntil` passing): the controller requeues for then.
    pub next_change: Option<Timestamp>,
}

/// The identity's effective state at `now`, and when that next changes by itself.
pub fn effective_state(identity: &Identity, now: Timestamp) -> (Effective, Option<Timestamp>) {
    let spec = &identity.spec;
    let from = spec.valid_from.as_ref().map(|t| t.0);
    let until = spec.valid_until.as_ref().map(|t| t.0);
    if spec.state == LifecycleState::Terminated || until.is_some_and(|u| u <= now) {
        return (Effective::Terminated, None);
    }
    if let Some(f) = from.filter(|f| *f > now) {
        return (Effective::NotStarted, Some(f));
    }
    let state = match spec.state {
        LifecycleState::Suspended => Effective::Suspended,
        _ => Effective::Active,
    };
    (state, until)
}

/// The connectors where the identity's bindings would give it an account if it were
/// active now: where a leaver may hold an account no status recorded (a crash between a
/// create and the status write). Pure.
pub fn reachable(identity: &Identity, catalog: &Catalog, now: Timestamp) -> BTreeSet<ConnectorKey> {
    let mut active = identity.clone();
    active.spec.state = LifecycleState::Active;
    active.spec.valid_from = None;
    active.spec.valid_until = None;
    resolve(&active, catalog, now)
        .accounts
        .into_keys()
        .collect()
}

/// The desired accounts of `identity` at `now`.
pub fn resolve(identity: &Identity, catalog: &Catalog, now: Timestamp) -> Resolution {
    let (effective, mut next_change) = effective_state(identity, now);
    let mut accounts: BTreeMap<ConnectorKey, DesiredAccount> = BTreeMap::new();
    let mut grantors: BTreeMap<ConnectorKey, BTreeMap<String, BTreeSet<Grantor>>> = BTreeMap::new();
    if matches!(effective, Effective::NotStarted | Effective::Terminated) {
        return Resolution {
            effective,
            accounts,
            grantors: BTreeMap::new(),
            next_change,
        };
    }
    let mut sooner = |t: Timestamp| {
        if t > now && next_change.is_none_or(|n| t < n) {
            next_change = Some(t);
        }
    };
    for binding in &catalog.bindings {
        let Ok(matcher) = &binding.matcher else {
            continue;
        };
        if matcher.matches(identity) != Ok(true) {
            continue;
        }
        // A matching binding's window bounds matter even while it is inactive.
        binding
            .valid_from
            .into_iter()
            .chain(binding.valid_until)
            .for_each(&mut sooner);
        let started = binding.valid_from.is_none_or(|f| f <= now);
        let ended = binding.valid_until.is_some_and(|u| u <= now);
        if !started || ended {
            continue;
        }
        let Some(entitlements) = catalog
            .roles
            .get(&(binding.namespace.clone(), binding.role.clone()))
        else {
            continue;
        };
        let grantor = Grantor {
            role_binding: format!("{}/{}", binding.namespace, binding.name),
            role: binding.role.clone(),
        };
        for (connector, name) in entitlements {
            accounts
                .entry(connector.clone())
                .or_insert_with(|| desired_account(identity, effective))
                .entitlements
                .insert(name.clone());
            grantors
                .entry(connector.clone())
                .or_default()
                .entry(name.clone())
                .or_default()
                .insert(grantor.clone());
        }
    }
    Resolution {
        effective,
        accounts,
        grantors,
        next_change,
    }
}

fn desired_account(identity: &Identity, effective: Effective) -> DesiredAccount {
    let spec = &identity.spec;
    DesiredAccount {
        username: spec.username.clone(),
        kind: spec.kind,
        attributes: AccountAttributes {
            display_name: spec.display_name.clone(),
            given_name: spec.given_name.clone(),
            family_name: spec.family_name.clone(),
            emails: spec.emails.clone(),
        },
        active: effective == Effective::Active,
        entitlements: BTreeSet::new(),
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
