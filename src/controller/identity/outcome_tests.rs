use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::AdoptionPolicy,
    controller::identity::report::{blocked, receipt},
    lifecycle::{
        AccountAttributes, NameCase,
        budget::{Cause, breaker_for},
    },
};

const ME: &str = "ada";

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn account(owner: Option<&str>, active: bool, entitlements: &[&str]) -> ObservedAccount {
    ObservedAccount {
        id: "1".into(),
        username: "ada".into(),
        owner: owner.map(str::to_owned),
        active,
        attributes: AccountAttributes::default(),
        entitlements: set(entitlements),
        version: None,
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

fn was(state: AccountState, granted: &[&str]) -> AccountStatus {
    AccountStatus {
        connector: "ns/scim".into(),
        state,
        entitlements: granted.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

/// Settles a leaver's pass that changed nothing: `verified` is what the app shows.
fn leaver(verified: &ObservedAccount, previous: &AccountStatus, policy: &Policy) -> AccountReport {
    let key = ConnectorKey::new("ns", "scim");
    let ledger = Ledger {
        granted: previous.entitlements.iter().cloned().collect(),
        disabled_at: None,
    };
    let managed = Managed {
        names: set(&["eng"]),
        authoritative: BTreeSet::new(),
    };
    settle(Facts {
        key: &key,
        identity: ME,
        leaving: true,
        desired: None,
        observed: Some(verified),
        verified: Some(verified),
        ledger: &ledger,
        managed: &managed,
        policy,
        enforce: true,
        previous: Some(previous),
        applied: &[],
        failed: None,
        read_back: true,
        counted: &[],
        error: None,
        now: Timestamp::UNIX_EPOCH,
    })
}

#[test]
fn an_enabled_account_whose_mark_was_removed_is_not_access_gone() {
    let previous = was(AccountState::Active, &["eng"]);
    for owner in [None, Some("someone-else")] {
        let r = leaver(&account(owner, true, &["eng"]), &previous, &policy());
        assert!(
            !r.access_gone,
            "owner {owner:?}: the account is still enabled"
        );
        let why = r.unowned_access.clone().expect("an exception for a person");
        assert!(why.contains("still has access"), "{why}");
        assert_eq!(r.entry.state, AccountState::Conflict);
        assert_eq!(
            r.entry.last_verified, None,
            "not in sync: a person must act"
        );
        assert!(r.entry.drift.first().is_some_and(|d| d == &why));

        let now = Time(Timestamp::UNIX_EPOCH);
        let rc = receipt(None, true, std::slice::from_ref(&r), &now).expect("receipt");
        assert_eq!(rc.connectors.len(), 1);
        assert_eq!(rc.connectors[0].verified_at, None, "never verified");
        assert_eq!(rc.connectors[0].exception.as_deref(), Some(why.as_str()));
        let b = blocked(std::slice::from_ref(&r)).expect("deletion waits for a person");
        assert!(b.message.contains("still has access"), "{}", b.message);

        // A person disables the account and takes the group away: the next pass, from
        // the Conflict entry this one wrote, verifies the receipt and clears the exception.
        let later = leaver(&account(owner, false, &[]), &r.entry, &policy());
        assert!(later.access_gone && later.unowned_access.is_none());
        let rc = receipt(Some(&rc), true, std::slice::from_ref(&later), &now).expect("receipt");
        assert!(rc.connectors[0].verified_at.is_some(), "{rc:?}");
        assert_eq!(rc.connectors[0].exception, None);
    }
}

#[test]
fn a_disabled_unmarked_account_keeping_a_grant_of_ours_still_has_access() {
    let r = leaver(
        &account(None, false, &["eng"]),
        &was(AccountState::Active, &["eng"]),
        &policy(),
    );
    assert!(!r.access_gone);
    assert!(r.unowned_access.is_some());
}

#[test]
fn access_is_gone_when_disabled_and_stripped_whoever_owns_the_account() {
    let previous = was(AccountState::Active, &["eng"]);
    for owner in [Some(ME), None, Some("someone-else")] {
        let r = leaver(
            &account(owner, false, &["other-app-group"]),
            &previous,
            &policy(),
        );
        assert!(r.access_gone, "owner {owner:?}");
        assert_eq!(r.unowned_access, None);
        let now = Time(Timestamp::UNIX_EPOCH);
        let rc = receipt(None, true, std::slice::from_ref(&r), &now).expect("receipt");
        assert!(rc.connectors[0].verified_at.is_some());
        assert_eq!(rc.connectors[0].exception, None);
    }
}

#[test]
fn a_protected_leaver_is_blocked_as_protected_not_as_unowned() {
    let protect = Policy {
        protected: true,
        ..policy()
    };
    let r = leaver(
        &account(None, true, &[]),
        &was(AccountState::Protected, &[]),
        &protect,
    );
    assert!(!r.access_gone);
    assert_eq!(r.unowned_access, None);
    assert_eq!(r.entry.state, AccountState::Protected);
}

#[test]
fn a_stranger_under_the_username_of_someone_staying_is_no_exception() {
    // Not leaving, never Roster's: the connector was listed only because a Role once
    // named it; the account is someone's own business.
    let key = ConnectorKey::new("ns", "scim");
    let theirs = account(None, true, &[]);
    let r = settle(Facts {
        key: &key,
        identity: ME,
        leaving: false,
        desired: None,
        observed: Some(&theirs),
        verified: Some(&theirs),
        ledger: &Ledger::default(),
        managed: &Managed::default(),
        policy: &policy(),
        enforce: true,
        previous: Some(&was(AccountState::Conflict, &[])),
        applied: &[],
        failed: None,
        read_back: true,
        counted: &[],
        error: None,
        now: Timestamp::UNIX_EPOCH,
    });
    assert_eq!(r.unowned_access, None);
    assert!(!r.managed);
}

/// Settles a leaver's pass on an account of ours that held `eng`.
fn removing(enforce: bool, applied: &[Change], verified: &ObservedAccount) -> AccountReport {
    let key = ConnectorKey::new("ns", "scim");
    let ledger = Ledger {
        granted: set(&["eng"]),
        disabled_at: None,
    };
    let managed = Managed {
        names: set(&["eng"]),
        authoritative: BTreeSet::new(),
    };
    settle(Facts {
        key: &key,
        identity: ME,
        leaving: true,
        desired: None,
        observed: Some(&account(Some(ME), true, &["eng"])),
        verified: Some(verified),
        ledger: &ledger,
        managed: &managed,
        policy: &policy(),
        enforce,
        previous: Some(&was(AccountState::Active, &["eng"])),
        applied,
        failed: None,
        read_back: true,
        counted: &applied
            .iter()
            .filter_map(|c| breaker_for(c, Cause::Policy))
            .collect::<Vec<_>>(),
        error: None,
        now: Timestamp::UNIX_EPOCH,
    })
}

#[test]
fn what_was_applied_says_what_was_removed_and_observe_mode_keeps_the_ledger() {
    let done = removing(
        true,
        &[Change::Revoke("eng".into()), Change::Disable],
        &account(Some(ME), false, &[]),
    );
    assert!(done.removed_now && !done.deleted_now && done.access_gone);
    let recorded = done
        .entry
        .budgeted_at
        .clone()
        .expect("recorded for a restart");
    let at = Some(Time(Timestamp::UNIX_EPOCH));
    assert_eq!(
        (recorded.removals, recorded.revocations, recorded.leavers),
        (at.clone(), at, None),
        "a policy disable and revoke count against both budgets"
    );
    assert!(
        done.entry.entitlements.is_empty(),
        "the ledger follows the app"
    );
    assert_eq!(done.entry.state, AccountState::Disabled);

    let observing = removing(false, &[], &account(Some(ME), true, &["eng"]));
    assert!(!observing.removed_now && !observing.access_gone);
    assert_eq!(
        observing.entry.entitlements,
        ["eng"],
        "Observe keeps the ledger"
    );
    assert!(
        observing
            .entry
            .drift
            .last()
            .is_some_and(|d| d.starts_with("Observe mode: 2 change(s)")),
        "{:?}",
        observing.entry.drift
    );
}

#[test]
fn a_write_the_app_did_not_keep_leaves_the_pass_unfinished() {
    // The revoke "succeeded" but reading back shows the group still held (a server's
    // read-modify-write lost it to a concurrent PATCH): look again soon.
    let lost = removing(
        true,
        &[Change::Revoke("eng".into()), Change::Disable],
        &account(Some(ME), false, &["eng"]),
    );
    assert!(lost.unfinished && !lost.access_gone);
    let kept = removing(
        true,
        &[Change::Revoke("eng".into()), Change::Disable],
        &account(Some(ME), false, &[]),
    );
    assert!(!kept.unfinished);
    let observing = removing(false, &[], &account(Some(ME), true, &["eng"]));
    assert!(
        !observing.unfinished,
        "Observe mode changes nothing, so retries nothing"
    );
}

#[test]
fn a_grant_whose_read_back_failed_stays_in_the_ledger() {
    // A joiner's pass: the create went through, the grant's connection closed before
    // the answer (the app may have kept it), and the read back could not reach the app.
    let key = ConnectorKey::new("ns", "pg");
    let desired = DesiredAccount {
        username: "ada".into(),
        kind: crate::api::IdentityKind::Person,
        active: true,
        attributes: AccountAttributes::default(),
        entitlements: set(&["staff", "eng"]),
    };
    let managed = Managed {
        names: set(&["staff", "eng"]),
        authoritative: BTreeSet::new(),
    };
    let (grant_eng, grant_staff) = (Change::Grant("eng".into()), Change::Grant("staff".into()));
    let applied = [Change::Create { active: true }, grant_eng];
    let settled = |read_back: bool, verified: Option<&ObservedAccount>| {
        settle(Facts {
            key: &key,
            identity: ME,
            leaving: false,
            desired: Some(&desired),
            observed: None,
            verified,
            ledger: &Ledger::default(),
            managed: &managed,
            policy: &POLICY,
            enforce: true,
            previous: None,
            applied: &applied,
            failed: Some(&grant_staff),
            read_back,
            counted: &[],
            error: Some(("Unreachable", "connection closed".into())),
            now: Timestamp::UNIX_EPOCH,
        })
    };
    let unread = settled(false, None);
    assert_eq!(
        unread.entry.entitlements,
        ["eng", "staff"],
        "what Roster granted or tried to is Roster's, until a read says otherwise"
    );
    // Read back, the app shows what it kept: a claim it does not hold is dropped.
    let kept = account(Some(ME), true, &["eng"]);
    let read = settled(true, Some(&kept));
    assert_eq!(read.entry.entitlements, ["eng"]);
}

const POLICY: Policy = Policy {
    protected: false,
    adoption: AdoptionPolicy::Never,
    delete_after: None,
    now: Timestamp::UNIX_EPOCH,
    names: NameCase::Exact,
};
