//! The three governance numbers (design §1): entitlement accuracy, deprovisioning
//! completion, and exceptions that need a person. Computed from what Identity and
//! Connector status already record — every figure can be traced to an object an auditor
//! can `kubectl get`. Pure: the operator serves the figures on `/metrics` and
//! `roster report` prints them.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::api::{AccountState, Connector, HeldRemoval, Identity, conditions};

/// Managed accounts on one connector, by how they stand against the declared state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accuracy {
    /// Read back and found as declared: attributes, enabled state and entitlements.
    pub in_sync: u64,
    /// Different from the declared state, or not created yet.
    pub drifted: u64,
    /// The last pass on the account failed downstream.
    pub failing: u64,
}

impl Accuracy {
    /// The share of managed accounts that are as declared; `None` with no accounts.
    pub fn ratio(&self) -> Option<f64> {
        let total = self.in_sync + self.drifted + self.failing;
        (total > 0).then(|| self.in_sync as f64 / total as f64)
    }
}

/// Identities that are leaving, and how far their deprovisioning got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deprovisioning {
    /// Leavers whose access was read back gone on every connector.
    pub verified: u64,
    /// Leavers still waiting for that on at least one connector.
    pub pending: u64,
    /// How long the longest-waiting pending leaver has waited, in seconds.
    pub oldest_pending_seconds: Option<i64>,
}

impl Deprovisioning {
    /// The share of leavers fully deprovisioned; `None` with no leavers.
    pub fn ratio(&self) -> Option<f64> {
        let total = self.verified + self.pending;
        (total > 0).then(|| self.verified as f64 / total as f64)
    }
}

/// What kind of situation Roster cannot resolve by itself.
pub const EXCEPTION_KINDS: [&str; 10] = [
    // An account under an identity's username that Roster does not own.
    "conflict",
    // A managed account whose last downstream change failed.
    "failing-account",
    // A leaver's account that is protected on its connector: remove access by hand.
    "protected-leaver",
    // A deleted Identity whose access is not verified gone (DeprovisioningBlocked).
    "deprovisioning-blocked",
    // A Connector whose removals stopped at the deletion budget.
    "quarantined-connector",
    // Accounts carrying Roster's mark that no Identity claims.
    "orphaned-account",
    // Memberships of managed entitlements Roster did not grant and, being Additive,
    // leaves in place: someone decides whether they stay.
    "unowned-member",
    // A Connector seeing more explicit leavers than its leaverWave allows: a broken HR
    // feed, or a real layoff, for a person to confirm.
    "leaver-wave",
    // An explicit leaver whose removal a breaker holds (holdLeaverWaves, or a deletion
    // over budget).
    "held-leaver",
    // A leaver who still has access through an account Roster does not own (its mark
    // removed or changed downstream): Roster may not touch it, a person must.
    "leaver-unowned-access",
];

/// The governance numbers at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Entitlement accuracy per Connector (`namespace/name`).
    pub accuracy: BTreeMap<String, Accuracy>,
    /// Deprovisioning completion.
    pub deprovisioning: Deprovisioning,
    /// Exceptions needing a person, by kind (every kind of [`EXCEPTION_KINDS`] present).
    pub exceptions: BTreeMap<String, u64>,
    /// Removals the breakers hold, explicit leavers first: who waits for a person.
    pub held: Vec<Held>,
    /// Held removals beyond those listed: a Connector's status lists the first 64.
    pub held_unlisted: u64,
    /// Every Connector (`namespace/name`) and whether it works.
    pub connectors: BTreeMap<String, ConnectorHealth>,
}

/// Whether a Connector works, from its conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorHealth {
    /// Its Ready condition is True for the current generation: reachable, credentials
    /// accepted, spec valid. False before the first check.
    pub ready: bool,
    /// Its removals stopped at the deletion budget.
    pub quarantined: bool,
}

/// One removal a Connector's breakers hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The Connector (`namespace/name`).
    pub connector: String,
    /// The Identity whose account it is, its cause and the breakers holding it.
    #[serde(flatten)]
    pub removal: HeldRemoval,
}

impl Held {
    /// Explicit leavers sort first: each is a person who left and may still have access.
    fn order(&self) -> (bool, &str, &str) {
        (
            self.removal.cause != "ExplicitLeaver",
            &self.connector,
            &self.removal.identity,
        )
    }
}

/// Measures `identities` and `connectors` at `now`.
pub fn measure<'a>(
    identities: impl IntoIterator<Item = &'a Identity>,
    connectors: impl IntoIterator<Item = &'a Connector>,
    now: Timestamp,
) -> Figures {
    let mut f = Figures {
        exceptions: EXCEPTION_KINDS
            .iter()
            .map(|k| ((*k).to_owned(), 0))
            .collect(),
        ..Figures::default()
    };
    let mut count = |kind: &str, n: u64| {
        if let Some(c) = f.exceptions.get_mut(kind) {
            *c += n;
        }
    };
    let mut accuracy: BTreeMap<String, Accuracy> = BTreeMap::new();
    let mut deprovisioning = Deprovisioning::default();
    for identity in identities {
        let Some(status) = &identity.status else {
            continue;
        };
        let leaving = status.deprovisioning.as_ref();
        for account in &status.accounts {
            match account.state {
                AccountState::Active | AccountState::Disabled | AccountState::Pending => {
                    let a = accuracy.entry(account.connector.clone()).or_default();
                    if account.error.is_some() {
                        a.failing += 1;
                        count("failing-account", 1);
                    } else if account.state == AccountState::Pending || !account.drift.is_empty() {
                        a.drifted += 1;
                    } else {
                        a.in_sync += 1;
                    }
                }
                AccountState::Conflict => count("conflict", 1),
                AccountState::Protected if leaving.is_some() => count("protected-leaver", 1),
                AccountState::Protected | AccountState::Deleted => {}
            }
        }
        if conditions::find(&status.conditions, conditions::READY)
            .is_some_and(|c| c.status == "False" && c.reason == "DeprovisioningBlocked")
        {
            count("deprovisioning-blocked", 1);
        }
        if let Some(receipt) = leaving {
            let unowned = receipt.connectors.iter().filter(|c| c.exception.is_some());
            count("leaver-unowned-access", unowned.count() as u64);
            if receipt.connectors.iter().all(|c| c.verified_at.is_some()) {
                deprovisioning.verified += 1;
            } else {
                deprovisioning.pending += 1;
                if let Some(since) = &receipt.requested_at {
                    let waited = now.duration_since(since.0).as_secs();
                    deprovisioning.oldest_pending_seconds = Some(
                        deprovisioning
                            .oldest_pending_seconds
                            .unwrap_or(0)
                            .max(waited),
                    );
                }
            }
        }
    }
    for connector in connectors {
        let key = format!(
            "{}/{}",
            connector.metadata.namespace.as_deref().unwrap_or_default(),
            connector.metadata.name.as_deref().unwrap_or_default()
        );
        let health = health(connector);
        if health.quarantined {
            count("quarantined-connector", 1);
        }
        f.connectors.insert(key.clone(), health);
        let Some(status) = &connector.status else {
            continue;
        };
        if let Some(inventory) = &status.inventory {
            count(
                "orphaned-account",
                u64::try_from(inventory.orphaned).unwrap_or(0),
            );
            count(
                "unowned-member",
                u64::try_from(inventory.unowned_members).unwrap_or(0),
            );
        }
        if status.leaver_wave.is_some() {
            count("leaver-wave", 1);
        }
        if let Some(q) = &status.quarantine {
            let leavers = q
                .held
                .iter()
                .filter(|h| h.cause == "ExplicitLeaver")
                .count();
            count("held-leaver", u64::try_from(leavers).unwrap_or(0));
            f.held.extend(q.held.iter().map(|h| Held {
                connector: key.clone(),
                removal: h.clone(),
            }));
            let unlisted = usize::try_from(q.held_count)
                .unwrap_or(0)
                .saturating_sub(q.held.len());
            f.held_unlisted += u64::try_from(unlisted).unwrap_or(0);
        }
    }
    f.held.sort_by(|a, b| a.order().cmp(&b.order()));
    f.accuracy = accuracy;
    f.deprovisioning = deprovisioning;
    f
}

/// A Connector's health from its conditions. A Ready condition of an older generation
/// does not count, as the Argo CD health check does not count it either.
fn health(connector: &Connector) -> ConnectorHealth {
    let Some(status) = &connector.status else {
        return ConnectorHealth::default();
    };
    let is_true =
        |kind: &str| conditions::find(&status.conditions, kind).is_some_and(|c| c.status == "True");
    let current = match (connector.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (Some(_), None) => false,
        (None, _) => true,
    };
    ConnectorHealth {
        ready: current && is_true(conditions::READY),
        quarantined: is_true(conditions::QUARANTINED),
    }
}

/// The figures as a short text report.
pub fn render(f: &Figures) -> String {
    let percent = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let mut out = String::from("Entitlement accuracy (managed accounts read back as declared)\n");
    let width = f.accuracy.keys().map(String::len).max().unwrap_or(0).max(9);
    out.push_str(&format!(
        "  {:width$}  {:>7}  {:>7}  {:>7}  {:>8}\n",
        "CONNECTOR", "IN SYNC", "DRIFTED", "FAILING", "ACCURACY"
    ));
    for (connector, a) in &f.accuracy {
        out.push_str(&format!(
            "  {connector:width$}  {:>7}  {:>7}  {:>7}  {:>8}\n",
            a.in_sync,
            a.drifted,
            a.failing,
            percent(a.ratio())
        ));
    }
    if f.accuracy.is_empty() {
        out.push_str("  (no managed accounts)\n");
    }
    render_connectors(f, &mut out);
    let d = &f.deprovisioning;
    out.push_str(&format!(
        "\nDeprovisioning completion: {} ({} verified, {} pending",
        percent(d.ratio()),
        d.verified,
        d.pending
    ));
    match d.oldest_pending_seconds {
        Some(s) => out.push_str(&format!("; the oldest has waited {s} s)\n")),
        None => out.push_str(")\n"),
    }
    let total: u64 = f.exceptions.values().sum();
    out.push_str(&format!("\nExceptions needing a person: {total}\n"));
    for (kind, n) in &f.exceptions {
        out.push_str(&format!("  {kind:24} {n}\n"));
    }
    render_held(f, &mut out);
    out
}

/// How many Connectors there are, and which do not work.
fn render_connectors(f: &Figures, out: &mut String) {
    let named = |pick: fn(&ConnectorHealth) -> bool| {
        let names: Vec<&str> = f
            .connectors
            .iter()
            .filter(|(_, h)| pick(h))
            .map(|(k, _)| k.as_str())
            .collect();
        match names.len() {
            0 => "0".to_owned(),
            n => format!("{n}: {}", names.join(", ")),
        }
    };
    out.push_str(&format!(
        "\nConnectors: {} (not ready {}; quarantined {})\n",
        f.connectors.len(),
        named(|h| !h.ready),
        named(|h| h.quarantined)
    ));
}

/// Who the breakers hold, and how to release them.
fn render_held(f: &Figures, out: &mut String) {
    let total = u64::try_from(f.held.len()).unwrap_or(u64::MAX) + f.held_unlisted;
    out.push_str(&format!("\nHeld removals: {total}\n"));
    if total == 0 {
        return;
    }
    let width = |get: fn(&Held) -> &str, title: &str| {
        f.held
            .iter()
            .map(|h| get(h).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (cw, iw) = (
        width(|h| &h.connector, "CONNECTOR"),
        width(|h| &h.removal.identity, "IDENTITY"),
    );
    out.push_str(&format!(
        "  {:cw$}  {:iw$}  {:14}  BUDGETS\n",
        "CONNECTOR", "IDENTITY", "CAUSE"
    ));
    for h in &f.held {
        out.push_str(&format!(
            "  {:cw$}  {:iw$}  {:14}  {}\n",
            h.connector,
            h.removal.identity,
            h.removal.cause,
            h.removal.budgets.join(",")
        ));
    }
    if f.held_unlisted > 0 {
        out.push_str(&format!("  … and {} more\n", f.held_unlisted));
    }
    out.push_str(
        "  Release all: kubectl annotate connector -n NS NAME --overwrite roster.dev/approve-removals=$(date -u +%FT%TZ) roster.dev/approved-by=$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')\n  \
         Only explicit leavers held by a wave: the same with roster.dev/approve-leavers\n",
    );
}

#[cfg(test)]
#[path = "governance_tests.rs"]
mod tests;
