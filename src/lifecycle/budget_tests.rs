use super::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn budget(max: usize, percent: usize) -> Limits {
    Limits::Budget {
        max,
        percent,
        window: 3600,
        what: "accounts removed",
    }
}

#[test]
fn accounts_removed_in_the_window_and_after_approval_count_once_each() {
    let r = |t: i64, who: &str| (at(t), who.to_owned());
    let removals = [
        r(0, "a"),
        r(5_000, "b"),
        r(6_000, "c"),
        r(7_000, "d"),
        r(7_100, "d"),
    ];
    assert_eq!(
        counted(&removals, 3600, None, at(7_200)).len(),
        3,
        "a is outside the hour; d once"
    );
    assert_eq!(
        counted(&removals, 3600, Some(at(6_000)), at(7_200)).len(),
        1,
        "approval resets it"
    );
}

#[test]
fn count_and_percent_limits() {
    assert!(budget(3, 100).exceeded(3, 100).is_none());
    assert!(
        budget(3, 100)
            .exceeded(4, 100)
            .unwrap()
            .contains("limit of 3")
    );
    assert!(budget(100, 10).exceeded(10, 100).is_none());
    assert!(budget(100, 10).exceeded(11, 100).unwrap().contains("10%"));
    assert!(
        budget(100, 10).exceeded(1, 3).is_none(),
        "a lone removal on a small app"
    );
    assert!(budget(100, 10).exceeded(2, 3).is_some());
    assert!(
        budget(0, 100).exceeded(1, 10).is_some(),
        "a zero budget holds every removal"
    );
}

#[test]
fn a_wave_is_the_larger_of_a_floor_and_a_share() {
    let wave = Limits::Wave {
        floor: 25,
        percent: 5,
        window: 3600,
        hold: false,
    };
    assert!(wave.exceeded(25, 200).is_none(), "25 of 200 is no wave");
    assert!(wave.exceeded(26, 200).is_some());
    assert!(wave.exceeded(500, 10_000).is_none(), "5% of 10,000");
    assert!(wave.exceeded(501, 10_000).is_some());
    assert!(!wave.holds(), "a wave only flags by default");
}

#[test]
fn the_default_budgets_let_30_leavers_in_200_through_and_stop_a_bad_commit() {
    let spec: ConnectorSpec =
        serde_json::from_value(serde_json::json!({"kubernetes": {}})).unwrap();
    let leavers = Limits::of(&spec, Breaker::Leavers);
    assert!(
        leavers.exceeded(30, 200).is_some(),
        "30 in an hour of 200 is flagged"
    );
    assert!(!leavers.holds(), "but not held");
    let removals = Limits::of(&spec, Breaker::Removals);
    assert!(removals.exceeded(40, 200).is_none());
    assert!(
        removals.exceeded(41, 200).is_some(),
        "a bad commit stops at 20%"
    );
    assert!(removals.exceeded(101, 10_000).is_some(), "or at 100");
    assert!(Limits::of(&spec, Breaker::Revocations).holds());
}

#[test]
fn approval_must_come_after_the_trip() {
    let trip = Trip {
        since: at(100),
        planned: 12,
        message: String::new(),
    };
    assert!(!approved(&trip, None));
    assert!(!approved(&trip, Some(at(99))));
    assert!(approved(&trip, Some(at(100))));
}

#[test]
fn an_approval_in_the_future_or_unreadable_is_refused() {
    let now = at(1_000);
    assert!(approval_problem(&at(1_000).to_string(), now).is_none());
    assert!(
        approval_problem(&at(1_100).to_string(), now).is_none(),
        "skew"
    );
    assert!(
        approval_problem(&at(90_000).to_string(), now)
            .unwrap()
            .contains("future")
    );
    assert!(
        approval_problem("yesterday", now)
            .unwrap()
            .contains("RFC 3339")
    );
}

#[test]
fn names_round_trip() {
    for b in Breaker::ALL {
        assert_eq!(Breaker::parse(b.name()), Some(b));
    }
    for c in [Cause::ExplicitLeaver, Cause::Policy] {
        assert_eq!(Cause::parse(c.name()), Some(c));
    }
}

#[test]
fn each_change_meets_the_breaker_of_its_cause() {
    use Cause::*;
    let revoke = Change::Revoke("eng".into());
    assert_eq!(
        breaker_for(&Change::Disable, ExplicitLeaver),
        Some(Breaker::Leavers)
    );
    assert_eq!(breaker_for(&revoke, ExplicitLeaver), None);
    assert_eq!(
        breaker_for(&Change::Delete, ExplicitLeaver),
        Some(Breaker::Removals)
    );
    assert_eq!(
        breaker_for(&Change::Disable, Policy),
        Some(Breaker::Removals)
    );
    assert_eq!(breaker_for(&revoke, Policy), Some(Breaker::Revocations));
    assert_eq!(breaker_for(&Change::Grant("eng".into()), Policy), None);
    assert_eq!(breaker_for(&Change::Enable, Policy), None);
}

#[test]
fn an_empty_feed_is_suspicious_only_while_roster_manages_accounts() {
    let fed = Feeds {
        roles: 2,
        bindings: 3,
        claimants: None,
    };
    assert_eq!(empty_feed(&fed, 10), None);
    for (feeds, says) in [
        (Feeds { roles: 0, ..fed }, "no Role names"),
        (Feeds { bindings: 0, ..fed }, "no RoleBinding binds"),
        (
            Feeds {
                claimants: Some(0),
                ..fed
            },
            "no Identity has an account",
        ),
    ] {
        let why = empty_feed(&feeds, 10).expect("suspicious");
        assert!(
            why.starts_with(says) && why.contains("manages 10 accounts"),
            "{why}"
        );
        assert_eq!(
            empty_feed(&feeds, 0),
            None,
            "nothing to lose: a new Connector"
        );
    }
}
