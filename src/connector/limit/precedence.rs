//! Leavers first at the app itself, not only in Roster's own queue.
//!
//! Skipping the in-flight bound keeps a leaver's operation from queuing behind Roster's
//! other work, but the app still serves whatever else Roster has in flight beside it. A
//! single-threaded app (scim2-server) shares its one core between every open request: a
//! leaver's five requests beside eight re-checks of held contractors took 8–12 s at 2,000
//! identities. So while a leaver's operation runs on an app, and for [`GRACE`] after it,
//! other work on that app starts nothing new; what is already in flight finishes.

use std::{future::Future, time::Duration};

use tokio::{
    sync::watch,
    time::{Instant, sleep_until, timeout},
};

tokio::task_local! {
    static URGENT: bool;
}

/// Runs `work` with its downstream operations marked urgent: they skip the in-flight
/// bound, and other work on the same app waits for them (a leaver's deprovisioning).
pub async fn urgently<F: Future>(work: F) -> F::Output {
    URGENT.scope(true, work).await
}

/// Whether the running task's operations are urgent.
pub(super) fn is_urgent() -> bool {
    URGENT.try_with(|u| *u).unwrap_or(false)
}

/// How long after a leaver's operation ends other work still holds back: a leaver's pass
/// is a few operations in a row (read, disable, revoke, read back), with only the
/// operator's own bookkeeping between them.
pub const GRACE: Duration = Duration::from_millis(250);

/// The longest one operation of other work holds back: an app whose leavers' operations
/// never end (each may take up to the call deadline) must not stop everything else on it
/// for good.
pub const MAX_YIELD: Duration = Duration::from_secs(30);

/// Urgent operations running on one app, and when the last one ended.
#[derive(Clone, Copy, Debug, Default)]
struct Urgent {
    running: usize,
    ended: Option<Instant>,
}

/// The gate on one app.
pub(super) struct Precedence {
    state: watch::Sender<Urgent>,
}

impl Default for Precedence {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(Urgent::default()),
        }
    }
}

/// An urgent operation in progress; other work may start again [`GRACE`] after the last
/// one is dropped.
pub(super) struct Running<'a>(&'a Precedence);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.state.send_modify(|u| {
            u.running = u.running.saturating_sub(1);
            u.ended = Some(Instant::now());
        });
    }
}

impl Precedence {
    /// Counts an urgent operation in until the value returned is dropped.
    pub(super) fn enter(&self) -> Running<'_> {
        self.state.send_modify(|u| u.running += 1);
        Running(self)
    }

    /// Waits (at most [`MAX_YIELD`]) until no urgent operation runs on the app and the
    /// last one ended [`GRACE`] ago.
    pub(super) async fn after_urgent(&self) {
        let mut seen = self.state.subscribe();
        // Giving up after MAX_YIELD is the point of the bound, not an error.
        let _ = timeout(MAX_YIELD, async {
            loop {
                let now = *seen.borrow_and_update();
                let quiet_from = now.ended.map(|t| t + GRACE);
                if now.running > 0 {
                    // The sender lives in `self`: `changed` cannot fail while we wait.
                    let _ = seen.changed().await;
                } else if let Some(at) = quiet_from.filter(|at| *at > Instant::now()) {
                    tokio::select! {
                        () = sleep_until(at) => {}
                        _ = seen.changed() => {}
                    }
                } else {
                    return;
                }
            }
        })
        .await;
    }
}
