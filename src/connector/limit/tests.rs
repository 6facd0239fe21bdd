//! The bucket, the in-flight bound and the leavers' precedence, on a double.

use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::connector::testing::Nothing;

/// A limiter in front of a double whose `observe` waits to be released, generous in
/// rate, with `max_in_flight` slots.
fn gated(max_in_flight: i32) -> (Arc<RateLimited>, Arc<(AtomicUsize, Semaphore)>) {
    let gate = Arc::new((AtomicUsize::new(0), Semaphore::new(0)));
    let limited = RateLimited::new(
        Arc::new(Nothing {
            gate: Some(gate.clone()),
            ..Nothing::default()
        }),
        &RateLimit {
            requests_per_second: 10_000,
            burst: 10_000,
            max_in_flight,
        },
    );
    (Arc::new(limited), gate)
}

#[tokio::test]
async fn an_operation_that_never_answers_fails_at_its_deadline() {
    let stuck = Arc::new((AtomicUsize::new(0), Semaphore::new(0)));
    let limited = RateLimited::new(
        Arc::new(Nothing {
            gate: Some(stuck),
            ..Nothing::default()
        }),
        &RateLimit {
            requests_per_second: 100,
            burst: 100,
            max_in_flight: 1,
        },
    )
    .with_deadline(Duration::from_millis(50));
    match limited.observe("x").await {
        Err(ConnectorError::Unreachable { reason, .. }) => {
            assert!(reason.starts_with("no answer within"), "{reason}");
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
    // The slot it held is free again: the next call is admitted.
    assert!(limited.gate.in_flight.available_permits() == 1);
}

/// After the burst, the bucket has no token left: the next call would wait.
#[tokio::test]
async fn the_burst_is_spent_by_calls() {
    let limited = RateLimited::new(
        Arc::new(Nothing::default()),
        &RateLimit {
            requests_per_second: 1,
            burst: 2,
            max_in_flight: 1,
        },
    );
    assert!(
        limited.gate.limiter.check().is_ok(),
        "a fresh bucket has tokens"
    );
    limited.observe("x").await.unwrap();
    assert!(
        limited.gate.limiter.check().is_err(),
        "burst of 2 spent by one check and one call"
    );
}

#[tokio::test]
async fn a_leavers_operation_does_not_wait_for_the_busy_slots() {
    let (limited, gate) = gated(2);
    let entered = || gate.0.load(Ordering::SeqCst);
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(50));
    let mut calls = Vec::new();
    for _ in 0..3 {
        let l = limited.clone();
        calls.push(tokio::spawn(async move { l.observe("joiner").await }));
    }
    settle().await;
    assert_eq!(entered(), 2, "two slots: the third joiner waits");
    let l = limited.clone();
    calls.push(tokio::spawn(urgently(
        async move { l.observe("leaver").await },
    )));
    settle().await;
    assert_eq!(entered(), 3, "the leaver went in beside the busy slots");
    gate.1.add_permits(4);
    for call in calls {
        assert!(call.await.is_ok_and(|r| r.is_ok()));
    }
    assert_eq!(entered(), 4);
}

/// Other work spends its four fifths; the last fifth is still there for a leaver.
#[tokio::test]
async fn a_fifth_of_the_rate_stays_free_for_leavers() {
    let limited = RateLimited::new(
        Arc::new(Nothing::default()),
        &RateLimit {
            requests_per_second: 1,
            burst: 10,
            max_in_flight: 10,
        },
    );
    for _ in 0..8 {
        limited
            .observe("joiner")
            .await
            .expect("within the others' burst");
    }
    assert!(
        limited.gate.others.check().is_err(),
        "the others' share is spent"
    );
    let leaver = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        urgently(limited.observe("leaver")),
    )
    .await;
    assert!(leaver.is_ok(), "the leaver's call takes a reserved token");
    // Past the leaver's precedence: what holds the joiner now is the bucket alone.
    tokio::time::sleep(GRACE).await;
    let joiner =
        tokio::time::timeout(std::time::Duration::from_millis(200), limited.observe("j")).await;
    assert!(
        joiner.is_err(),
        "another joiner waits for the others' bucket"
    );
}

#[test]
fn nonsense_limits_become_one() {
    let limited = RateLimited::new(
        Arc::new(Nothing::default()),
        &RateLimit {
            requests_per_second: 0,
            burst: -5,
            max_in_flight: 0,
        },
    );
    assert!(limited.gate.limiter.check().is_ok());
    assert!(limited.gate.limiter.check().is_err(), "a burst of one");
}

/// A single-threaded app shares itself between every open request: while a leaver's
/// operation runs, other work starts nothing new there, and not for a moment after
/// either, when the leaver's next operation follows.
#[tokio::test(start_paused = true)]
async fn other_work_starts_nothing_while_a_leavers_operation_runs() {
    let (limited, gate) = gated(8);
    let entered = || gate.0.load(Ordering::SeqCst);
    let l = limited.clone();
    let leaver = tokio::spawn(urgently(async move { l.observe("leaver").await }));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(entered(), 1, "the leaver's operation runs");
    let l = limited.clone();
    let joiner = tokio::spawn(async move { l.observe("joiner").await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        entered(),
        1,
        "a free slot, but the joiner waits for the leaver"
    );
    gate.1.add_permits(1);
    assert!(leaver.await.is_ok_and(|r| r.is_ok()));
    tokio::time::sleep(GRACE / 2).await;
    assert_eq!(
        entered(),
        1,
        "and a moment longer, for the leaver's next operation"
    );
    tokio::time::sleep(GRACE).await;
    assert_eq!(entered(), 2, "then the joiner goes");
    gate.1.add_permits(1);
    assert!(joiner.await.is_ok_and(|r| r.is_ok()));
}

/// A leaver's operation that never ends holds other work back only so long.
#[tokio::test(start_paused = true)]
async fn other_work_holds_back_for_leavers_only_so_long() {
    let (limited, gate) = gated(8);
    let entered = || gate.0.load(Ordering::SeqCst);
    let l = limited.clone();
    let _stuck = tokio::spawn(urgently(async move { l.observe("leaver").await }));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let l = limited.clone();
    let _joiner = tokio::spawn(async move { l.observe("joiner").await });
    tokio::time::sleep(MAX_YIELD - Duration::from_secs(1)).await;
    assert_eq!(entered(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(entered(), 2, "the joiner went after MAX_YIELD");
}

#[tokio::test]
async fn backends_through_one_gate_share_its_slots() {
    let (first, gate) = gated(1);
    let second = Arc::new(RateLimited::through(
        Arc::new(Nothing {
            gate: Some(gate.clone()),
            ..Nothing::default()
        }),
        first.gate.clone(),
    ));
    let busy = {
        let first = first.clone();
        tokio::spawn(async move { first.observe("a").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let waiting = {
        let second = second.clone();
        tokio::spawn(async move { second.observe("b").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        gate.0.load(Ordering::SeqCst),
        1,
        "one slot between them: the second backend's call waits"
    );
    gate.1.add_permits(2);
    assert!(busy.await.is_ok_and(|r| r.is_ok()));
    assert!(waiting.await.is_ok_and(|r| r.is_ok()));
}
