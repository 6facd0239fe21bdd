//! From per-connector outcomes to the Identity's status: conditions and the
//! deprovisioning receipt. Pure: no client required.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{
        AccountStatus, ConnectorReceipt, DeprovisioningReceipt, conditions, conditions::Desired,
    },
    lifecycle::ConnectorKey,
};

/// What one pass found and did on one connector.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountReport {
    /// The connector.
    pub key: ConnectorKey,
    /// The account's new status entry.
    pub entry: AccountStatus,
    /// Why the pass failed here: (reason, message).
    pub error: Option<(&'static str, String)>,
    /// Read-back shows no access left under the username, whoever owns the account: it is
    /// absent, or disabled holding nothing Roster granted or owns.
    pub access_gone: bool,
    /// Roster manages (or managed) an account here: such connectors go on a receipt.
    pub managed: bool,
    /// Access remains through an account Roster does not own, where the Identity should
    /// have none: the exception, in words. Such a connector goes on a receipt, unverified.
    pub unowned_access: Option<String>,
    /// The pass made its changes and reported no error, yet reading back shows more to
    /// do: the app lost or undid a write (a concurrent read-modify-write, a proxy that
    /// answered for it). Looked at again soon, like an error.
    pub unfinished: bool,
    /// This pass disabled the account or revoked something.
    pub removed_now: bool,
    /// This pass deleted the account.
    pub deleted_now: bool,
}

impl AccountReport {
    fn in_sync(&self) -> bool {
        self.error.is_none() && self.entry.drift.is_empty()
    }
}

/// `Synced`, `Drifted` and `Ready`, given the reference check and the reports.
pub fn conditions(references: Desired, reports: &[AccountReport]) -> Vec<Desired> {
    let failing: Vec<String> = reports
        .iter()
        .filter_map(|r| r.error.as_ref().map(|(_, m)| format!("{}: {m}", r.key)))
        .collect();
    let ready = match reports.iter().find_map(|r| r.error.as_ref()) {
        Some((reason, _)) if references.status == "True" => Desired::false_(
            conditions::READY,
            reason,
            crate::controller::status::truncate(&failing.join("; "), 1024),
        ),
        _ => references,
    };
    let drifted: Vec<String> = reports
        .iter()
        .filter(|r| !r.entry.drift.is_empty())
        .map(|r| format!("{}: {}", r.key, r.entry.drift.join(", ")))
        .collect();
    let synced = if reports.iter().all(AccountReport::in_sync) {
        Desired::true_(
            conditions::SYNCED,
            "InSync",
            format!("{} connector(s) match the declared state", reports.len()),
        )
    } else if !failing.is_empty() {
        Desired::false_(
            conditions::SYNCED,
            "Error",
            crate::controller::status::truncate(&failing.join("; "), 1024),
        )
    } else {
        Desired::false_(conditions::SYNCED, "Drift", "see status.accounts[].drift")
    };
    let drift = if drifted.is_empty() {
        Desired::false_(
            conditions::DRIFTED,
            "NoDrift",
            "downstream matches what is declared",
        )
    } else {
        Desired::true_(
            conditions::DRIFTED,
            "Drift",
            crate::controller::status::truncate(&drifted.join("; "), 1024),
        )
    };
    vec![ready, synced, drift]
}

/// The connectors `after` verifies that `before` did not, each with the seconds from
/// the receipt's `requestedAt` (Roster's first sight of the leaver) to its `verifiedAt`:
/// what the leaver-latency histogram observes, once per connector. Pure.
pub fn newly_verified(
    before: Option<&DeprovisioningReceipt>,
    after: Option<&DeprovisioningReceipt>,
) -> Vec<(String, f64)> {
    let Some(after) = after else {
        return Vec::new();
    };
    let Some(requested) = &after.requested_at else {
        return Vec::new();
    };
    let was_verified = |connector: &str| {
        before.is_some_and(|b| {
            b.connectors
                .iter()
                .any(|c| c.connector == connector && c.verified_at.is_some())
        })
    };
    after
        .connectors
        .iter()
        .filter(|c| !was_verified(&c.connector))
        .filter_map(|c| {
            let verified = c.verified_at.as_ref()?;
            let took = verified.0.duration_since(requested.0).as_secs_f64();
            Some((c.connector.clone(), took.max(0.0)))
        })
        .collect()
}

/// The receipt after this pass. `leaving` is whether the identity is deprovisioned
/// (Terminated, expired, or being deleted); a returning identity loses its receipt.
/// Timestamps are kept once set: they record when each thing first happened.
pub fn receipt(
    previous: Option<&DeprovisioningReceipt>,
    leaving: bool,
    reports: &[AccountReport],
    now: &Time,
) -> Option<DeprovisioningReceipt> {
    if !leaving {
        return None;
    }
    let mut out = previous.cloned().unwrap_or_default();
    out.requested_at.get_or_insert_with(|| now.clone());
    for r in reports {
        let key = r.key.to_string();
        // A connector once on the receipt stays on it until verified.
        let listed = out.connectors.iter().any(|c| c.connector == key);
        if !(r.managed || r.unowned_access.is_some() || listed) {
            continue;
        }
        let entry = match out.connectors.iter().position(|c| c.connector == key) {
            Some(i) => &mut out.connectors[i],
            None => {
                out.connectors.push(ConnectorReceipt {
                    connector: key,
                    ..Default::default()
                });
                let last = out.connectors.len() - 1;
                &mut out.connectors[last]
            }
        };
        if r.removed_now || r.access_gone {
            entry.revoked_at.get_or_insert_with(|| now.clone());
        }
        if r.access_gone && r.error.is_none() {
            entry.verified_at.get_or_insert_with(|| now.clone());
        }
        // Not a first time but the present: it clears once the access is gone.
        entry.exception = r
            .unowned_access
            .as_deref()
            .map(|e| crate::text::truncate(e, 256));
        if r.deleted_now {
            entry.deleted_at.get_or_insert_with(|| now.clone());
        }
    }
    out.connectors.sort_by(|a, b| a.connector.cmp(&b.connector));
    Some(out)
}

/// While a deleted Identity still has access somewhere without an error explaining it
/// (a protected account, a change not yet verified), `Ready=False` says where and what
/// to do. Pure.
pub fn blocked(reports: &[AccountReport]) -> Option<Desired> {
    let stuck: Vec<String> = reports
        .iter()
        .filter(|r| !r.access_gone && r.error.is_none())
        .map(|r| match r.entry.state {
            crate::api::AccountState::Protected => {
                format!("{}: the account is protected on this connector", r.key)
            }
            _ if r.unowned_access.is_some() => format!(
                "{}: {}",
                r.key,
                r.unowned_access.as_deref().unwrap_or_default()
            ),
            _ => format!("{}: access not yet verified gone", r.key),
        })
        .collect();
    if stuck.is_empty() {
        return None;
    }
    Some(Desired::false_(
        conditions::READY,
        "DeprovisioningBlocked",
        crate::controller::status::truncate(
            &format!(
                "{}; deletion waits — remove that access by hand (or unprotect the account), or annotate {}",
                stuck.join("; "),
                super::ABANDON_ANNOTATION
            ),
            1024,
        ),
    ))
}

/// Whether every connector's access is verified gone: deprovisioning is complete.
pub fn deprovisioned(reports: &[AccountReport]) -> bool {
    reports.iter().all(|r| r.access_gone && r.error.is_none())
}

/// The status entries, sorted by connector.
pub fn accounts(reports: &[AccountReport]) -> Vec<AccountStatus> {
    let mut out: Vec<AccountStatus> = reports.iter().map(|r| r.entry.clone()).collect();
    out.sort_by(|a, b| a.connector.cmp(&b.connector));
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn report(name: &str, gone: bool, removed: bool, drift: &[&str]) -> AccountReport {
        AccountReport {
            key: ConnectorKey::new("ns", name),
            entry: AccountStatus {
                connector: format!("ns/{name}"),
                drift: drift.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            },
            error: None,
            access_gone: gone,
            managed: true,
            unowned_access: None,
            unfinished: false,
            removed_now: removed,
            deleted_now: false,
        }
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn newly_verified_connectors_are_reported_once_with_their_latency() {
        let entry = |c: &str, verified: Option<i64>| ConnectorReceipt {
            connector: c.into(),
            verified_at: verified.map(at),
            ..Default::default()
        };
        let receipt = |entries: Vec<ConnectorReceipt>| DeprovisioningReceipt {
            requested_at: Some(at(10)),
            connectors: entries,
        };
        let first = receipt(vec![entry("ns/scim", Some(12)), entry("ns/ldap", None)]);
        assert_eq!(
            newly_verified(None, Some(&first)),
            vec![("ns/scim".to_owned(), 2.0)]
        );
        let second = receipt(vec![entry("ns/scim", Some(12)), entry("ns/ldap", Some(40))]);
        assert_eq!(
            newly_verified(Some(&first), Some(&second)),
            vec![("ns/ldap".to_owned(), 30.0)]
        );
        assert!(newly_verified(Some(&second), Some(&second)).is_empty());
        assert!(newly_verified(Some(&second), None).is_empty());
    }

    #[test]
    fn receipt_records_first_times_and_disappears_for_returning_identities() {
        let r1 = receipt(
            None,
            true,
            &[
                report("scim", true, true, &[]),
                report("ldap", false, false, &[]),
            ],
            &at(10),
        )
        .unwrap();
        assert_eq!(r1.requested_at, Some(at(10)));
        assert_eq!(r1.connectors[0].connector, "ns/ldap");
        assert_eq!(r1.connectors[0].revoked_at, None);
        assert_eq!(
            (
                r1.connectors[1].revoked_at.clone(),
                r1.connectors[1].verified_at.clone()
            ),
            (Some(at(10)), Some(at(10)))
        );
        let r2 = receipt(
            Some(&r1),
            true,
            &[
                report("scim", true, false, &[]),
                report("ldap", true, true, &[]),
            ],
            &at(20),
        )
        .unwrap();
        assert_eq!(
            r2.connectors[1].verified_at,
            Some(at(10)),
            "first verification is kept"
        );
        assert_eq!(r2.connectors[0].verified_at, Some(at(20)));
        assert_eq!(receipt(Some(&r2), false, &[], &at(30)), None);
    }

    #[test]
    fn a_protected_account_blocks_deletion_with_a_reason() {
        let mut protected = report("scim", false, false, &["protected account: left untouched"]);
        protected.entry.state = crate::api::AccountState::Protected;
        let c = blocked(&[protected, report("pg", true, true, &[])]).expect("blocked");
        assert_eq!(
            (c.status, c.reason.as_str()),
            ("False", "DeprovisioningBlocked")
        );
        assert!(
            c.message.starts_with("ns/scim: the account is protected"),
            "{}",
            c.message
        );
        assert!(blocked(&[report("pg", true, true, &[])]).is_none());
    }

    #[test]
    fn receipts_list_only_connectors_roster_managed() {
        let mut conflict = report("theirs", true, false, &[]);
        conflict.managed = false;
        let r = receipt(
            None,
            true,
            &[report("scim", true, true, &[]), conflict],
            &at(10),
        )
        .unwrap();
        let listed: Vec<&str> = r.connectors.iter().map(|c| c.connector.as_str()).collect();
        assert_eq!(listed, ["ns/scim"]);
    }

    #[test]
    fn conditions_summarise_errors_and_drift() {
        let ok = Desired::true_(conditions::READY, "Valid", "");
        let c = conditions(ok.clone(), &[report("scim", false, false, &[])]);
        assert_eq!(
            (c[0].status, c[1].status, c[2].status),
            ("True", "True", "False")
        );
        let c = conditions(
            ok.clone(),
            &[report("scim", false, false, &["lacks \"eng\""])],
        );
        assert_eq!((c[1].reason.as_str(), c[2].status), ("Drift", "True"));
        let mut failing = report("scim", false, false, &[]);
        failing.error = Some(("Unreachable", "cannot reach".into()));
        let c = conditions(ok, &[failing]);
        assert_eq!(
            (c[0].status, c[0].reason.as_str()),
            ("False", "Unreachable")
        );
        assert!(c[0].message.starts_with("ns/scim: "));
    }
}
