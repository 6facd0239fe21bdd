//! What one read of a source changes: the workers it declares against the Identities
//! that exist → Identities to create or update, leavers (which the safeguard may hold),
//! and clashes with Identities the source does not own. Pure.
//!
//! Ownership is the `roster.dev/source` annotation: only an Identity carrying this
//! source's key is ever written. Another writer's Identity of the same name — by hand,
//! from Git, from another source — is a clash, reported and never touched.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

use super::{
    export::Record,
    mapping::{self, RowProblem, Worker},
};
use crate::api::{FieldMapping, IdentitySpec, LifecycleState, MissingWorker};

/// An Identity as the planner needs to know it.
#[derive(Clone, Debug, PartialEq)]
pub struct Current {
    /// Its spec.
    pub spec: IdentitySpec,
    /// The source that created it (`namespace/name`), from its annotation.
    pub source: Option<String>,
    /// The digest of what its source last applied.
    pub digest: Option<String>,
    /// When its source last counted it as a leaver.
    pub removed_at: Option<Timestamp>,
}

/// One Identity to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The Identity's name.
    pub name: String,
    /// The fields the source sets.
    pub spec: IdentitySpec,
    /// The digest of `spec`, kept on the Identity to see next time whether it changed.
    pub digest: String,
    /// The Identity does not exist yet.
    pub create: bool,
    /// When the safeguard counted it as a leaver, carried over from the Identity.
    pub removed_at: Option<Timestamp>,
}

/// What one read changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Joiners and movers: applied whatever the safeguard says.
    pub writes: Vec<Write>,
    /// Writes that make an active Identity a leaver: the safeguard decides.
    pub removals: Vec<Write>,
    /// Identities the source names but does not own: (name, who owns it).
    pub clashes: Vec<(String, String)>,
    /// Rows that could not be used.
    pub problems: Vec<RowProblem>,
    /// Identities this source owns.
    pub owned: usize,
    /// Of those, the ones not leaving now: what the safeguard's percentage is of.
    pub active: usize,
    /// Owned Identities that are in no usable row and were not made leavers because
    /// some row has no username (whose row it is cannot be known).
    pub unplaced: usize,
}

/// Whether an Identity with `spec` has no access at `now`.
pub fn leaving(spec: &IdentitySpec, now: Timestamp) -> bool {
    spec.state != LifecycleState::Active || spec.valid_until.as_ref().is_some_and(|t| t.0 <= now)
}

/// Whether going from `current` to `desired` makes an active Identity a leaver now or
/// brings its end forward: what the safeguard counts.
pub fn is_removal(current: &IdentitySpec, desired: &IdentitySpec, now: Timestamp) -> bool {
    let sooner = match (&desired.valid_until, &current.valid_until) {
        (Some(d), Some(c)) => d.0 < c.0,
        (Some(_), None) => true,
        (None, _) => false,
    };
    !leaving(current, now) && (leaving(desired, now) || sooner)
}

/// A stable digest of `spec` (FNV-1a over its JSON): what the source applied, so that a
/// field it stops setting is noticed even when nothing else changed.
pub fn digest(spec: &IdentitySpec) -> String {
    digest_str(&serde_json::to_string(spec).unwrap_or_default())
}

/// FNV-1a of `text`, as 16 hex digits: stable across builds and releases, unlike std's
/// hasher.
pub fn digest_str(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Whether `current` already holds every field of `desired`, as the source last applied
/// it (`digest`).
fn holds(current: &Current, desired: &IdentitySpec, digest: &str) -> bool {
    if current.digest.as_deref() != Some(digest) {
        return false;
    }
    let (Ok(serde_json::Value::Object(want)), Ok(have)) = (
        serde_json::to_value(desired),
        serde_json::to_value(&current.spec),
    ) else {
        return false;
    };
    want.iter().all(|(k, v)| match (k.as_str(), v) {
        ("attributes", serde_json::Value::Object(attrs)) => attrs
            .iter()
            .all(|(a, value)| have.get(k).and_then(|m| m.get(a)) == Some(value)),
        _ => have.get(k) == Some(v),
    })
}

/// What a read of `records` changes, for the source `key` (`namespace/name`), given
/// every Identity by name.
pub fn plan(
    key: &str,
    records: &[Record],
    mapping: &FieldMapping,
    missing: MissingWorker,
    existing: &BTreeMap<String, Current>,
    now: Timestamp,
) -> Plan {
    let mut out = Plan::default();
    let workers = workers(records, mapping, &mut out.problems);
    let ours = |c: &Current| c.source.as_deref() == Some(key);
    for current in existing.values().filter(|c| ours(c)) {
        out.owned += 1;
        if !leaving(&current.spec, now) {
            out.active += 1;
        }
    }
    for worker in workers.values() {
        match existing.get(&worker.name) {
            Some(current) if !ours(current) => out
                .clashes
                .push((worker.name.clone(), owner_of(current.source.as_deref()))),
            Some(current) => consider(&mut out, &worker.name, Some(current), &worker.spec, now),
            None if leaving(&worker.spec, now) => {} // a worker long gone: no Identity
            None => consider(&mut out, &worker.name, None, &worker.spec, now),
        }
    }
    let named: BTreeSet<&str> = out
        .problems
        .iter()
        .filter_map(|p| p.identity.as_deref())
        .collect();
    let unnamed = out.problems.iter().any(|p| p.identity.is_none());
    let gone: Vec<(&String, &Current)> = existing
        .iter()
        .filter(|(n, c)| ours(c) && !workers.contains_key(*n) && !named.contains(n.as_str()))
        .collect();
    for (name, current) in gone {
        if unnamed {
            out.unplaced += 1;
            continue;
        }
        if let Some(spec) = departed(&current.spec, mapping, missing) {
            consider(&mut out, name, Some(current), &spec, now);
        }
    }
    out
}

/// Records the write that takes `current` to `desired`, if one is needed.
fn consider(
    out: &mut Plan,
    name: &str,
    current: Option<&Current>,
    desired: &IdentitySpec,
    now: Timestamp,
) {
    let digest = digest(desired);
    if current.is_some_and(|c| holds(c, desired, &digest)) {
        return;
    }
    let write = Write {
        name: name.to_owned(),
        spec: desired.clone(),
        digest,
        create: current.is_none(),
        removed_at: current.and_then(|c| c.removed_at),
    };
    match current {
        Some(c) if is_removal(&c.spec, desired, now) => out.removals.push(write),
        _ => out.writes.push(write),
    }
}

/// The workers of usable rows, by Identity name; rows naming one Identity twice are all
/// problems, because which of them is true cannot be known.
fn workers(
    records: &[Record],
    mapping: &FieldMapping,
    problems: &mut Vec<RowProblem>,
) -> BTreeMap<String, Worker> {
    let mut by_name: BTreeMap<String, Vec<Worker>> = BTreeMap::new();
    for record in records {
        match mapping::map(record, mapping) {
            Ok(w) => by_name.entry(w.name.clone()).or_default().push(w),
            Err(p) => problems.push(p),
        }
    }
    let mut out = BTreeMap::new();
    for (name, mut rows) in by_name {
        if rows.len() == 1 {
            if let Some(w) = rows.pop() {
                out.insert(name, w);
            }
            continue;
        }
        let lines: Vec<String> = rows.iter().map(|w| w.row.to_string()).collect();
        problems.push(RowProblem {
            row: rows[0].row,
            identity: Some(name.clone()),
            message: format!(
                "rows {} all name Identity {name:?}; none is applied",
                lines.join(", ")
            ),
        });
    }
    out
}

fn owner_of(source: Option<&str>) -> String {
    match source {
        Some(other) => format!("owned by IdentitySource {other}"),
        None => "created by hand or from Git (no roster.dev/source annotation)".into(),
    }
}

/// The spec the source applies for a worker whose row is gone: what it set before (the
/// mapped fields, as they are now), in the policy's state; `None` when the Identity is
/// already that far gone.
fn departed(
    current: &IdentitySpec,
    mapping: &FieldMapping,
    missing: MissingWorker,
) -> Option<IdentitySpec> {
    let state = match missing {
        MissingWorker::Terminate => LifecycleState::Terminated,
        MissingWorker::Suspend => LifecycleState::Suspended,
    };
    let already = current.state == state || current.state == LifecycleState::Terminated;
    if already {
        return None;
    }
    let keep = |set: bool, v: &Option<String>| if set { v.clone() } else { None };
    let mut attributes: BTreeMap<String, String> = current
        .attributes
        .iter()
        .filter(|(a, _)| mapping.attributes.contains_key(*a))
        .map(|(a, v)| (a.clone(), v.clone()))
        .collect();
    if let (Some(_), Some(m)) = (&mapping.manager, current.attributes.get("manager")) {
        attributes.insert("manager".into(), m.clone());
    }
    Some(IdentitySpec {
        kind: current.kind,
        username: current.username.clone(),
        owner: None,
        display_name: keep(mapping.display_name.is_some(), &current.display_name),
        given_name: keep(mapping.given_name.is_some(), &current.given_name),
        family_name: keep(mapping.family_name.is_some(), &current.family_name),
        emails: if mapping.email.is_some() {
            current.emails.iter().take(1).cloned().collect()
        } else {
            Vec::new()
        },
        attributes,
        state,
        valid_from: mapping.hire_date.as_ref().and(current.valid_from.clone()),
        valid_until: mapping
            .termination_date
            .as_ref()
            .and(current.valid_until.clone()),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
