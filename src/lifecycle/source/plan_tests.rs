use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::IdentityKind;

const KEY: &str = "hr/workday";

fn now() -> Timestamp {
    "2027-03-01T12:00:00Z".parse().unwrap()
}

fn mapping() -> FieldMapping {
    FieldMapping {
        username: "user".into(),
        termination_date: Some("left".into()),
        state: Some("status".into()),
        attributes: [("department".to_owned(), "dept".to_owned())].into(),
        ..FieldMapping::default()
    }
}

fn row(n: usize, cells: &[(&str, &str)]) -> Record {
    Record {
        row: n,
        cells: cells
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        nested: Vec::new(),
        errors: Vec::new(),
    }
}

fn worker(user: &str, dept: &str) -> Record {
    row(1, &[("user", user), ("dept", dept)])
}

/// The Identity a previous read applied for `user` in `dept`.
fn applied(user: &str, dept: &str) -> Current {
    let spec = IdentitySpec {
        kind: IdentityKind::Person,
        username: user.into(),
        owner: None,
        display_name: None,
        given_name: None,
        family_name: None,
        emails: Vec::new(),
        attributes: [("department".to_owned(), dept.to_owned())].into(),
        state: LifecycleState::Active,
        valid_from: None,
        valid_until: None,
    };
    Current {
        digest: Some(digest(&spec)),
        spec,
        source: Some(KEY.into()),
        removed_at: None,
    }
}

fn run(records: &[Record], existing: &BTreeMap<String, Current>) -> Plan {
    plan(
        KEY,
        records,
        &mapping(),
        MissingWorker::Terminate,
        existing,
        now(),
    )
}

fn names(writes: &[Write]) -> Vec<&str> {
    writes.iter().map(|w| w.name.as_str()).collect()
}

#[test]
fn joiners_are_created_and_an_unchanged_read_writes_nothing() {
    let p = run(
        &[worker("ada", "eng"), worker("grace", "ops")],
        &BTreeMap::new(),
    );
    assert_eq!(names(&p.writes), ["ada", "grace"]);
    assert!(p.writes.iter().all(|w| w.create));
    assert!(p.removals.is_empty());

    let existing = BTreeMap::from([
        ("ada".to_owned(), applied("ada", "eng")),
        ("grace".to_owned(), applied("grace", "ops")),
    ]);
    let again = run(&[worker("ada", "eng"), worker("grace", "ops")], &existing);
    assert_eq!(again.writes, []);
    assert_eq!((again.owned, again.active), (2, 2));
}

#[test]
fn a_mover_is_an_update_not_a_removal() {
    let existing = BTreeMap::from([("ada".to_owned(), applied("ada", "eng"))]);
    let p = run(&[worker("ada", "finance")], &existing);
    assert_eq!(names(&p.writes), ["ada"]);
    assert!(!p.writes[0].create);
    assert_eq!(p.writes[0].spec.attributes["department"], "finance");
}

#[test]
fn a_field_changed_by_someone_else_is_put_back() {
    let mut edited = applied("ada", "eng");
    edited
        .spec
        .attributes
        .insert("department".into(), "sales".into());
    let p = run(
        &[worker("ada", "eng")],
        &BTreeMap::from([("ada".to_owned(), edited)]),
    );
    assert_eq!(names(&p.writes), ["ada"]);
}

#[test]
fn fields_others_set_beside_the_source_are_not_a_change() {
    let mut shared = applied("ada", "eng");
    shared
        .spec
        .attributes
        .insert("costCenter".into(), "42".into());
    shared.spec.display_name = Some("Ada".into());
    let p = run(
        &[worker("ada", "eng")],
        &BTreeMap::from([("ada".to_owned(), shared)]),
    );
    assert_eq!(p.writes, []);
}

#[test]
fn a_missing_row_is_a_leaver_under_the_policy() {
    let existing = BTreeMap::from([
        ("ada".to_owned(), applied("ada", "eng")),
        ("grace".to_owned(), applied("grace", "ops")),
    ]);
    let p = run(&[worker("ada", "eng")], &existing);
    assert_eq!(names(&p.removals), ["grace"]);
    let gone = &p.removals[0].spec;
    assert_eq!(gone.state, LifecycleState::Terminated);
    assert_eq!(gone.attributes["department"], "ops", "what it set is kept");

    let suspend = plan(
        KEY,
        &[worker("ada", "eng")],
        &mapping(),
        MissingWorker::Suspend,
        &existing,
        now(),
    );
    assert_eq!(suspend.removals[0].spec.state, LifecycleState::Suspended);
}

#[test]
fn status_and_termination_dates_make_leavers() {
    let existing = BTreeMap::from([
        ("ada".to_owned(), applied("ada", "eng")),
        ("grace".to_owned(), applied("grace", "ops")),
        ("linus".to_owned(), applied("linus", "ops")),
    ]);
    let p = run(
        &[
            row(
                1,
                &[("user", "ada"), ("dept", "eng"), ("status", "Terminated")],
            ),
            row(
                2,
                &[("user", "grace"), ("dept", "ops"), ("left", "2027-02-01")],
            ),
            row(
                3,
                &[("user", "linus"), ("dept", "ops"), ("left", "2027-09-30")],
            ),
        ],
        &existing,
    );
    assert_eq!(
        names(&p.removals),
        ["ada", "grace", "linus"],
        "a scheduled end counts when it is set, not when it comes"
    );
    let later = Time("2027-10-01T00:00:00Z".parse().unwrap());
    assert_eq!(p.removals[2].spec.valid_until, Some(later));
}

#[test]
fn an_identity_it_did_not_create_is_a_clash_and_untouched() {
    let mut by_hand = applied("ada", "eng");
    by_hand.source = None;
    let mut other = applied("grace", "ops");
    other.source = Some("hr/other".into());
    let existing = BTreeMap::from([("ada".to_owned(), by_hand), ("grace".to_owned(), other)]);
    let p = run(&[worker("ada", "finance"), worker("grace", "x")], &existing);
    assert_eq!(p.writes, []);
    assert_eq!(p.removals, []);
    let clashes: Vec<&str> = p.clashes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(clashes, ["ada", "grace"]);
    assert!(p.clashes[1].1.contains("hr/other"));

    // Nor does its absence from the export make it a leaver.
    let p = run(&[], &existing);
    assert_eq!((p.removals.len(), p.owned), (0, 0));
}

#[test]
fn an_unusable_row_leaves_its_worker_as_they_are() {
    let existing = BTreeMap::from([("ada".to_owned(), applied("ada", "eng"))]);
    let p = run(
        &[row(1, &[("user", "ada"), ("dept", "x"), ("status", "??")])],
        &existing,
    );
    assert_eq!((p.writes.len(), p.removals.len()), (0, 0));
    assert_eq!(p.problems.len(), 1);
}

#[test]
fn a_row_without_a_username_stops_absences_from_counting() {
    let existing = BTreeMap::from([
        ("ada".to_owned(), applied("ada", "eng")),
        ("grace".to_owned(), applied("grace", "ops")),
    ]);
    let p = run(
        &[worker("ada", "eng"), row(2, &[("dept", "ops")])],
        &existing,
    );
    assert_eq!(p.removals, []);
    assert_eq!(p.unplaced, 1);
}

#[test]
fn two_rows_for_one_identity_apply_neither() {
    let p = run(
        &[worker("Ada", "eng"), worker("ada", "ops")],
        &BTreeMap::new(),
    );
    assert_eq!(p.writes, []);
    assert!(p.problems[0].message.contains("all name Identity \"ada\""));
}

#[test]
fn a_worker_long_gone_gets_no_identity_and_a_rehire_is_no_removal() {
    let p = run(
        &[row(1, &[("user", "old"), ("status", "Terminated")])],
        &BTreeMap::new(),
    );
    assert_eq!(p.writes, []);

    let mut left = applied("ada", "eng");
    left.spec.state = LifecycleState::Terminated;
    left.removed_at = Some("2027-01-01T00:00:00Z".parse().unwrap());
    let p = run(
        &[worker("ada", "eng")],
        &BTreeMap::from([("ada".to_owned(), left)]),
    );
    assert_eq!(names(&p.writes), ["ada"]);
    assert_eq!(p.writes[0].spec.state, LifecycleState::Active);
    assert!(
        p.writes[0].removed_at.is_some(),
        "the count is carried over"
    );
}

#[test]
fn a_leaver_already_gone_is_not_written_again() {
    let mut left = applied("ada", "eng");
    left.spec.state = LifecycleState::Terminated;
    let p = run(&[], &BTreeMap::from([("ada".to_owned(), left)]));
    assert_eq!((p.writes.len(), p.removals.len()), (0, 0));
    assert_eq!((p.owned, p.active), (1, 0));
}

#[test]
fn a_later_end_date_is_an_update_and_an_earlier_one_a_removal() {
    let mut scheduled = applied("ada", "eng");
    scheduled.spec.valid_until = Some(Time("2027-06-01T00:00:00Z".parse().unwrap()));
    scheduled.digest = Some(digest(&scheduled.spec));
    let existing = BTreeMap::from([("ada".to_owned(), scheduled)]);
    let later = run(
        &[row(
            1,
            &[("user", "ada"), ("dept", "eng"), ("left", "2027-08-01")],
        )],
        &existing,
    );
    assert_eq!((later.writes.len(), later.removals.len()), (1, 0));
    let sooner = run(
        &[row(
            1,
            &[("user", "ada"), ("dept", "eng"), ("left", "2027-04-01")],
        )],
        &existing,
    );
    assert_eq!((sooner.writes.len(), sooner.removals.len()), (0, 1));
}
