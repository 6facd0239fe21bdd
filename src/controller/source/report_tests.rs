use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::{SourceQuarantine, conditions::find},
    lifecycle::source::{mapping::RowProblem, plan::Write},
};

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

fn write(name: &str, create: bool) -> Write {
    let spec: crate::api::IdentitySpec =
        serde_json::from_value(serde_json::json!({ "username": name })).unwrap();
    Write {
        name: name.into(),
        digest: String::new(),
        spec,
        create,
        removed_at: None,
    }
}

fn plan() -> Plan {
    Plan {
        writes: vec![write("ada", true), write("grace", false)],
        removals: vec![write("linus", false)],
        clashes: vec![("root".into(), "created by hand".into())],
        problems: vec![RowProblem {
            row: 4,
            identity: None,
            message: "row 4 has no \"user\"".into(),
        }],
        owned: 5,
        active: 5,
        unplaced: 0,
    }
}

fn condition<'a>(s: &'a IdentitySourceStatus, t: &str) -> (&'a str, &'a str) {
    let c = find(&s.conditions, t).unwrap();
    (c.status.as_str(), c.reason.as_str())
}

#[test]
fn an_applied_read_counts_what_it_did() {
    let plan = plan();
    let verdict = Verdict::Release(at(0).0);
    let read = Applied {
        rows: 7,
        plan: &plan,
        verdict: &verdict,
        failures: &[],
        approval_problem: None,
    };
    let s = applied(&IdentitySourceStatus::default(), Some(2), &read, &at(0));
    assert_eq!(condition(&s, "Synced"), ("True", "Applied"));
    assert_eq!(condition(&s, "Quarantined"), ("False", "WithinSafeguard"));
    let message = &find(&s.conditions, "Synced").unwrap().message;
    assert!(
        message.starts_with("7 rows read: 1 created, 1 updated, 1 made leavers"),
        "{message}"
    );
    assert_eq!(
        (s.rows, s.identities, s.clash_count, s.row_error_count),
        (7, 6, 1, 1)
    );
    assert_eq!(s.last_sync_time, Some(at(0)));
}

#[test]
fn a_held_read_is_quarantined_and_made_no_leavers() {
    let plan = plan();
    let q = SourceQuarantine {
        since: at(0),
        message: "held".into(),
        held_count: 1,
        held: vec!["linus".into()],
    };
    let verdict = Verdict::Hold(q.clone());
    let read = Applied {
        rows: 0,
        plan: &plan,
        verdict: &verdict,
        failures: &[],
        approval_problem: Some("in the future".into()),
    };
    let s = applied(&IdentitySourceStatus::default(), None, &read, &at(1));
    assert_eq!(condition(&s, "Quarantined"), ("True", "EmptySource"));
    assert!(
        find(&s.conditions, "Quarantined")
            .unwrap()
            .message
            .contains("in the future")
    );
    assert!(
        find(&s.conditions, "Synced")
            .unwrap()
            .message
            .contains("0 made leavers")
    );
    assert_eq!(s.quarantine, Some(q));
}

#[test]
fn failed_writes_and_rows_without_usernames_are_not_synced() {
    let plan = plan();
    let verdict = Verdict::Release(at(0).0);
    let failures = [("ada".to_owned(), "forbidden".to_owned())];
    let read = Applied {
        rows: 7,
        plan: &plan,
        verdict: &verdict,
        failures: &failures,
        approval_problem: None,
    };
    let s = applied(&IdentitySourceStatus::default(), None, &read, &at(0));
    assert_eq!(condition(&s, "Synced"), ("False", "ApplyFailed"));
    assert_eq!(s.identities, 5, "the failed creation owns nothing");

    let unplaced = Plan {
        unplaced: 2,
        ..plan.clone()
    };
    let read = Applied {
        plan: &unplaced,
        failures: &[],
        ..read
    };
    let s = applied(&IdentitySourceStatus::default(), None, &read, &at(0));
    assert_eq!(condition(&s, "Synced"), ("False", "RowsWithoutUsername"));
}

#[test]
fn a_refused_read_keeps_what_the_last_good_one_found() {
    let plan = plan();
    let verdict = Verdict::Release(at(0).0);
    let read = Applied {
        rows: 7,
        plan: &plan,
        verdict: &verdict,
        failures: &[],
        approval_problem: None,
    };
    let good = applied(&IdentitySourceStatus::default(), Some(1), &read, &at(0));
    let bad = refused(
        &good,
        Some(1),
        &Refused {
            reason: "MalformedCsv",
            message: "row 3".into(),
        },
        &at(60),
    );
    assert_eq!(condition(&bad, "Synced"), ("False", "MalformedCsv"));
    assert_eq!((bad.rows, bad.identities), (7, 6));
    assert_eq!(bad.last_sync_time, good.last_sync_time);
}
