use super::*;
use crate::lifecycle::AccountAttributes;

fn grantor(binding: &str, role: &str) -> Grantor {
    Grantor {
        role_binding: format!("team/{binding}"),
        role: role.into(),
    }
}

fn grounds(state: Option<&str>) -> Grounds {
    Grounds {
        state: state.map(str::to_owned),
        grantors: [
            ("eng".to_owned(), [grantor("eng-all", "engineer")].into()),
            (
                "ops".to_owned(),
                [grantor("oncall", "operator"), grantor("sre", "operator")].into(),
            ),
        ]
        .into(),
    }
}

fn account(active: bool, entitlements: &[&str], owner: Option<&str>) -> ObservedAccount {
    ObservedAccount {
        id: "1".into(),
        username: "ada".into(),
        owner: owner.map(str::to_owned),
        active,
        attributes: AccountAttributes::default(),
        entitlements: entitlements.iter().map(|e| (*e).to_owned()).collect(),
        version: None,
    }
}

#[test]
fn a_grant_names_the_bindings_and_roles_that_give_it() {
    let g = grounds(None);
    assert_eq!(
        g.cause(&Change::Grant("ops".into())),
        Cause::Granted {
            by: vec![grantor("oncall", "operator"), grantor("sre", "operator")]
        }
    );
    // A create or enable is grounded in every binding giving access here.
    let Cause::Granted { by } = g.cause(&Change::Create { active: true }) else {
        panic!("a create is granted");
    };
    assert_eq!(by.len(), 3);
    assert!(
        g.cause(&Change::Grant("eng".into()))
            .describe()
            .contains("RoleBinding team/eng-all (Role engineer)")
    );
}

#[test]
fn a_removal_names_the_lifecycle_state_or_the_lost_grant() {
    let leaver = grounds(Some("Terminated"));
    for change in [
        Change::Disable,
        Change::Revoke("eng".into()),
        Change::Delete,
    ] {
        assert_eq!(
            leaver.cause(&change),
            Cause::Lifecycle {
                state: "Terminated".into()
            },
            "{change:?}"
        );
    }
    let mover = grounds(None);
    assert_eq!(
        mover.cause(&Change::Revoke("old".into())),
        Cause::NoLongerGranted
    );
    assert_eq!(mover.cause(&Change::Adopt), Cause::Adoption);
    assert_eq!(
        mover.cause(&Change::Update(vec!["displayName"])),
        Cause::Attributes
    );
}

#[test]
fn read_back_confirms_only_what_the_app_shows() {
    let id = "ada-id";
    let held = account(true, &["eng"], Some(id));
    let gone = None;
    let cases = [
        (Change::Grant("eng".into()), Some(&held), true),
        (Change::Grant("ops".into()), Some(&held), false),
        (Change::Revoke("ops".into()), Some(&held), true),
        (Change::Revoke("eng".into()), Some(&held), false),
        (Change::Revoke("eng".into()), gone, true),
        (Change::Disable, Some(&held), false),
        (Change::Disable, gone, true),
        (Change::Enable, Some(&held), true),
        (Change::Delete, Some(&held), false),
        (Change::Delete, gone, true),
        (Change::Create { active: true }, Some(&held), true),
        (Change::Create { active: false }, Some(&held), false),
        (Change::Create { active: true }, gone, false),
        (Change::Adopt, Some(&held), true),
        (Change::Grant("eng".into()), gone, false),
    ];
    for (change, acc, shown) in cases {
        let want = if shown {
            ReadBack::Confirmed
        } else {
            ReadBack::NotShown
        };
        assert_eq!(
            ReadBack::of(&change, acc, id),
            want,
            "{change:?} on {acc:?}"
        );
    }
    let stranger = account(true, &[], Some("someone-else"));
    assert_eq!(
        ReadBack::of(&Change::Adopt, Some(&stranger), id),
        ReadBack::NotShown
    );
}

#[test]
fn one_record_per_change_tried_with_its_cause_and_read_back() {
    let g = grounds(Some("Terminated"));
    let approval = Approval {
        at: "2026-12-02T09:59:00Z".parse().expect("a time"),
        by: Some("alice".into()),
    };
    let after = account(false, &["eng"], Some("ada-id"));
    let applied = [Change::Revoke("ops".into()), Change::Disable];
    let failing = Change::Revoke("eng".into());
    let facts = Facts {
        time: "2026-12-02T10:00:00Z".parse().expect("a time"),
        connector: "team/scim",
        identity: Some("ada-id"),
        account: "ada",
        grounds: Some(&g),
        approval: Some(&approval),
        applied: &applied,
        failed: Some((&failing, "Unreachable", "connection refused".into())),
        read_back: Ok(Some(&after)),
    };
    let records = records(&facts);
    assert_eq!(records.len(), 3, "two made and one failed");
    assert!(records.iter().all(|r| r.cause
        == Cause::Lifecycle {
            state: "Terminated".into()
        }));
    assert!(
        records
            .iter()
            .all(|r| r.approval.as_ref() == Some(&approval))
    );
    assert_eq!(records[0].read_back, ReadBack::Confirmed);
    assert_eq!(records[1].read_back, ReadBack::Confirmed);
    assert_eq!(
        records[2].read_back,
        ReadBack::NotShown,
        "eng is still held"
    );
    assert!(
        matches!(&records[2].outcome, Outcome::Failed { reason, .. } if reason == "Unreachable")
    );
    assert_eq!(entitlement(&records[2].change), Some("eng"));

    // The scan's removals are the scan's; an approval never rides on a grant; an
    // account that cannot be read back says so.
    let grant = [Change::Grant("eng".into())];
    let scan = Facts {
        grounds: None,
        applied: &grant,
        failed: None,
        read_back: Err("timed out".into()),
        ..facts
    };
    let records = super::records(&scan);
    assert_eq!(records[0].cause, Cause::Scan);
    assert_eq!(records[0].approval, None);
    assert_eq!(records[0].read_back.name(), "unread");
}

#[test]
fn the_lifecycle_state_says_why_an_identity_is_not_active() {
    use crate::api::LifecycleState::{Active, Terminated};
    assert_eq!(lifecycle_state(Active, Effective::Active, false), None);
    let state = |d, e, deleting| lifecycle_state(d, e, deleting).unwrap_or_default();
    assert_eq!(
        state(Terminated, Effective::Terminated, false),
        "Terminated"
    );
    assert!(state(Active, Effective::Terminated, false).contains("validUntil"));
    assert!(state(Active, Effective::NotStarted, false).contains("validFrom"));
    assert_eq!(state(Active, Effective::Active, true), "being deleted");
}
