//! A held Connector holds a policy removal without reading the account; anything the
//! ledger cannot rule out is read as before.

use std::sync::{Arc, atomic::AtomicUsize};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use tokio::sync::Semaphore;

use super::*;
use crate::{
    api::{ConnectorStatus, Identity, QuarantineStatus, TripStatus},
    connector::testing::Nothing,
    controller::empty_test_context,
    lifecycle::budget::Feeds,
};

/// A SCIM Connector, its revocation budget tripped when `tripped`.
fn connector(tripped: bool) -> Connector {
    let spec = serde_json::from_value(serde_json::json!({
        "scim": {"baseUrl": "http://127.0.0.1:9/v2", "tokenSecretRef": {"name": "t", "key": "t"}},
    }))
    .expect("a Connector spec");
    let mut c = Connector::new("app", spec);
    c.metadata.namespace = Some("ns".into());
    let since = Time(Timestamp::UNIX_EPOCH);
    c.status = tripped.then(|| ConnectorStatus {
        quarantine: Some(QuarantineStatus {
            since: since.clone(),
            planned_removals: 3,
            message: "over budget".into(),
            trips: vec![TripStatus {
                budget: "revocations".into(),
                since,
                planned: 3,
                message: "over budget".into(),
            }],
            held: Vec::new(),
            held_count: 0,
        }),
        ..Default::default()
    });
    c
}

fn identity() -> Identity {
    let spec = serde_json::from_value(serde_json::json!({"username": "ada"})).expect("spec");
    let mut i = Identity::new("ada", spec);
    i.metadata.generation = Some(1);
    i
}

fn desired(entitlements: &[&str]) -> DesiredAccount {
    DesiredAccount {
        username: "ada".into(),
        kind: Default::default(),
        attributes: Default::default(),
        active: true,
        entitlements: entitlements.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// One pass for Ada, whose status records `staff` and `contractors` granted, wanting
/// `want`: the report, and how many times the app was read.
async fn pass(tripped: bool, want: &[&str], cause: Cause) -> (AccountReport, usize) {
    let (ctx, connector, identity) = (empty_test_context(), connector(tripped), identity());
    let reads = Arc::new((AtomicUsize::new(0), Semaphore::new(100)));
    let backend = Nothing {
        gate: Some(reads.clone()),
        ..Nothing::default()
    };
    let key = ConnectorKey::new("ns", "app");
    let previous = AccountStatus {
        connector: key.to_string(),
        external_id: Some("u1".into()),
        state: AccountState::Active,
        entitlements: vec!["contractors".into(), "staff".into()],
        ..Default::default()
    };
    let managed = Managed {
        names: ["staff", "contractors", "eng"].map(str::to_owned).into(),
        authoritative: Default::default(),
    };
    let want = desired(want);
    let input = Input {
        identity: &identity,
        key: &key,
        desired: Some(&want),
        previous: Some(&previous),
        managed: &managed,
        cause,
        leaving: false,
        feeds: Feeds {
            roles: 1,
            bindings: 1,
            claimants: None,
        },
        grounds: Grounds::default(),
        now: Timestamp::now(),
    };
    let report = sync_on(&ctx, input, &connector, &backend).await;
    (report, reads.0.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn a_held_policy_removal_is_not_read() {
    let (report, reads) = pass(true, &["staff"], Cause::Policy).await;
    assert_eq!(reads, 0, "the app was read for a removal the breaker holds");
    let (why, message) = report.error.expect("held");
    assert_eq!(why, hold::HELD);
    assert!(message.contains("over budget"), "{message}");
    assert_eq!(
        report.entry.drift,
        ["holds \"contractors\", which it should not"]
    );
    assert_eq!(
        report.entry.entitlements,
        ["contractors", "staff"],
        "the ledger is kept"
    );
}

#[tokio::test]
async fn what_the_ledger_cannot_rule_out_is_read() {
    // Not tripped: read, as ever.
    let (_, reads) = pass(false, &["staff"], Cause::Policy).await;
    assert!(reads > 0);
    // A grant beside the revoke: read, and the grant is not held.
    let (_, reads) = pass(true, &["staff", "eng"], Cause::Policy).await;
    assert!(reads > 0);
    // An explicit leaver's account is always read.
    let (_, reads) = pass(true, &["staff"], Cause::ExplicitLeaver).await;
    assert!(reads > 0);
}
