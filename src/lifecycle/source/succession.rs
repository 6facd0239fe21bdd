//! Who a leaver's Service identities answer to next, when the source's policy hands them
//! to the leaver's manager. Pure: from the Identities as the cache holds them.
//!
//! A handover is decided only for a service whose owner is a worker of this source who
//! has left, and only to a manager who can own it (a present, active Person). It is done
//! once per service and owner: a service that carries [`REASSIGNED_FROM_ANNOTATION`]
//! naming its current owner was handed over before and put back, by Git or a person, and
//! is left to them.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{SOURCE_ANNOTATION, mapping::identity_name};
use crate::{
    api::{Identity, IdentityKind},
    lifecycle::resolve::{Effective, effective_state},
};

/// Annotation a handover leaves on the service: the owner it was handed over from.
pub const REASSIGNED_FROM_ANNOTATION: &str = "roster.dev/owner-reassigned-from";

/// A service to hand to a new owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The Service identity.
    pub service: String,
    /// The owner who left.
    pub from: String,
    /// The leaver's manager, who takes it.
    pub to: String,
}

/// A service whose owner left and that cannot be handed over, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stranded {
    /// The Service identity.
    pub service: String,
    /// The owner who left.
    pub from: String,
    /// Why it stays with them.
    pub why: String,
}

/// What the policy does with the services of this source's leavers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Succession {
    /// Services to hand over.
    pub handovers: Vec<Handover>,
    /// Services left for a person.
    pub stranded: Vec<Stranded>,
}

fn gone(identity: &Identity, now: Timestamp) -> bool {
    identity.metadata.deletion_timestamp.is_some()
        || effective_state(identity, now).0 == Effective::Terminated
}

/// The handovers for the source `key` (`namespace/name`) among `identities` (by name).
pub fn succession(
    key: &str,
    identities: &BTreeMap<String, &Identity>,
    now: Timestamp,
) -> Succession {
    let mut out = Succession::default();
    let services = identities
        .iter()
        .filter(|(_, i)| i.spec.kind == IdentityKind::Service);
    for (service, identity) in services {
        let Some(from) = identity.spec.owner.as_deref() else {
            continue;
        };
        let Some(owner) = identities.get(from) else {
            continue; // an owner with no Identity is no worker of this source's
        };
        let ours = owner
            .annotations()
            .get(SOURCE_ANNOTATION)
            .map(String::as_str)
            == Some(key);
        if !ours || !gone(owner, now) {
            continue;
        }
        let stranded = |why: String| Stranded {
            service: service.clone(),
            from: from.to_owned(),
            why,
        };
        match manager_of(service, identity, owner, identities, now) {
            Ok(to) => out.handovers.push(Handover {
                service: service.clone(),
                from: from.to_owned(),
                to,
            }),
            Err(why) => out.stranded.push(stranded(why)),
        }
    }
    out
}

/// The Identity that takes `service` from `owner`, or why none can.
fn manager_of(
    service: &str,
    identity: &Identity,
    owner: &Identity,
    identities: &BTreeMap<String, &Identity>,
    now: Timestamp,
) -> Result<String, String> {
    let from = owner.name_any();
    if identity.annotations().get(REASSIGNED_FROM_ANNOTATION) == Some(&from) {
        return Err(format!(
            "it was handed over from {from:?} once and given back to them; the new owner is left to whoever keeps spec.owner"
        ));
    }
    let Some(username) = owner.spec.attributes.get("manager") else {
        return Err(format!("{from:?} has no manager attribute"));
    };
    let Some(name) = identity_name(username) else {
        return Err(format!("manager {username:?} names no Identity"));
    };
    let Some(manager) = identities.get(&name) else {
        return Err(format!("manager {username:?} has no Identity"));
    };
    if name == service || name == from {
        return Err(format!("manager {username:?} is the service or its owner"));
    }
    if manager.spec.kind != IdentityKind::Person {
        return Err(format!("manager {username:?} is not a Person"));
    }
    if gone(manager, now) || effective_state(manager, now).0 != Effective::Active {
        return Err(format!("manager {username:?} is not active"));
    }
    Ok(name)
}

#[cfg(test)]
#[path = "succession_tests.rs"]
mod tests;
