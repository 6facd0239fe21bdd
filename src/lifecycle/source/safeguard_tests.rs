use k8s_openapi::jiff::SignedDuration;

use super::*;

const NOW: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn safeguard() -> ImportSafeguard {
    ImportSafeguard {
        max_removals: 5,
        max_percent: 20,
        window_seconds: 3600,
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i:03}")).collect()
}

fn judge_with(
    planned: &[String],
    active: usize,
    rows: usize,
    recorded: &[Removal],
    approved_at: Option<Timestamp>,
    quarantine: Option<&SourceQuarantine>,
) -> Verdict {
    let planned: Vec<&str> = planned.iter().map(String::as_str).collect();
    judge(&Inputs {
        safeguard: &safeguard(),
        rows,
        active,
        planned: &planned,
        recorded,
        approved_at,
        quarantine,
        now: at(NOW),
    })
}

fn held(v: &Verdict) -> &SourceQuarantine {
    match v {
        Verdict::Hold(q) => q,
        Verdict::Release(_) => panic!("released: {v:?}"),
    }
}

#[test]
fn leavers_within_the_limits_are_released_now() {
    let v = judge_with(&names(5), 100, 95, &[], None, None);
    assert_eq!(v, Verdict::Release(at(NOW)));
}

#[test]
fn one_more_than_the_limit_holds_them_all() {
    let v = judge_with(&names(6), 100, 94, &[], None, None);
    let q = held(&v);
    assert_eq!(q.held_count, 6);
    assert_eq!(q.held.len(), 6);
    assert_eq!(q.since.0, at(NOW));
    assert!(q.message.contains("limit of 5"), "{}", q.message);
}

#[test]
fn the_percentage_of_active_identities_holds_a_small_source() {
    // 3 of 10 is 30 % > 20 %.
    assert!(matches!(
        judge_with(&names(3), 10, 7, &[], None, None),
        Verdict::Hold(_)
    ));
    assert!(matches!(
        judge_with(&names(2), 10, 8, &[], None, None),
        Verdict::Release(_)
    ));
    // One leaver always fits, however small the source.
    assert!(matches!(
        judge_with(&names(1), 1, 1, &[], None, None),
        Verdict::Release(_)
    ));
}

#[test]
fn an_empty_export_is_held_whatever_the_limits() {
    let generous = ImportSafeguard {
        max_removals: 1000,
        max_percent: 100,
        window_seconds: 3600,
    };
    let planned = names(3);
    let planned: Vec<&str> = planned.iter().map(String::as_str).collect();
    let v = judge(&Inputs {
        safeguard: &generous,
        rows: 0,
        active: 3,
        planned: &planned,
        recorded: &[],
        approved_at: None,
        quarantine: None,
        now: at(NOW),
    });
    assert!(held(&v).message.contains("no rows"), "{v:?}");
}

#[test]
fn a_slow_drip_trips_once_the_window_is_full() {
    // Four already left in the last hour; one more fits, two more do not.
    let recorded: Vec<Removal> = names(4)
        .into_iter()
        .enumerate()
        .map(|(i, n)| (at(NOW - 600 * (i as i64 + 1)), format!("old-{n}")))
        .collect();
    assert!(matches!(
        judge_with(&names(1), 100, 99, &recorded, None, None),
        Verdict::Release(_)
    ));
    assert!(matches!(
        judge_with(&names(2), 100, 98, &recorded, None, None),
        Verdict::Hold(_)
    ));
    // Leavers older than the window no longer count.
    let old: Vec<Removal> = recorded
        .iter()
        .map(|(t, n)| (*t - SignedDuration::from_hours(2), n.clone()))
        .collect();
    assert!(matches!(
        judge_with(&names(2), 100, 98, &old, None, None),
        Verdict::Release(_)
    ));
}

#[test]
fn an_approval_releases_what_was_held_and_no_more() {
    let q = held(&judge_with(&names(6), 100, 94, &[], None, None)).clone();
    let approval = at(NOW + 60);
    let v = judge_with(&names(6), 100, 94, &[], Some(approval), Some(&q));
    assert_eq!(v, Verdict::Release(approval), "stamped with the approval");
    // An approval older than the quarantine releases nothing.
    let stale = judge_with(&names(6), 100, 94, &[], Some(at(NOW - 1)), Some(&q));
    assert!(matches!(stale, Verdict::Hold(_)));
    // More held than when the person approved: held again, from a new start.
    let mut later = Inputs {
        safeguard: &safeguard(),
        rows: 90,
        active: 100,
        planned: &[],
        recorded: &[],
        approved_at: Some(approval),
        quarantine: Some(&q),
        now: at(NOW + 120),
    };
    let more = names(10);
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    later.planned = &more;
    let again = judge(&later);
    assert_eq!(held(&again).since.0, at(NOW + 120));
    assert_eq!(held(&again).held_count, 10);
}

#[test]
fn while_held_the_quarantine_keeps_its_start() {
    let q = held(&judge_with(&names(8), 100, 92, &[], None, None)).clone();
    let fewer = judge_with(&names(7), 100, 93, &[], None, Some(&q));
    assert_eq!(held(&fewer).since, q.since);
}

#[test]
fn nothing_planned_clears_a_quarantine() {
    let q = held(&judge_with(&names(8), 100, 92, &[], None, None)).clone();
    assert_eq!(
        judge_with(&[], 100, 100, &[], None, Some(&q)),
        Verdict::Release(at(NOW))
    );
}

#[test]
fn removals_released_by_an_approval_do_not_count_against_the_next_window() {
    let approval = at(NOW - 60);
    let released: Vec<Removal> = names(6).into_iter().map(|n| (approval, n)).collect();
    let v = judge_with(&names(1), 100, 93, &released, Some(approval), None);
    assert_eq!(v, Verdict::Release(at(NOW)));
}
