//! Who goes next when more identities want reconciling than may run at once.
//!
//! kube's runner bounds concurrency by holding expired requests in a hash set and taking
//! whichever the set yields first. Under a steady inflow (scans re-queueing drifted
//! identities, bindings fanning out) the same requests keep winning and others wait
//! forever: 276 of 1,000 new Identities were never reconciled in 28 minutes. So the
//! Identity controller runs unbounded in kube's terms and every reconcile waits here, in
//! first-come order (tokio's semaphore is fair), for one of a fixed number of permits.
//!
//! Leavers have a lane of their own: a leaver never waits behind a backlog of joiners.
//! Nor does someone who starts leaving while already waiting in the general lane: kube
//! runs one reconcile per object at a time, so the termination of a person whose
//! reconcile is queued behind a fan-out (a Connector's status change re-queues its
//! holders) only takes effect once that reconcile runs. A waiting request looks again
//! when its Identity changes ([`Wakers::wake`], from the watch) and when its `validUntil`
//! comes, and moves to the leavers' lane. (It used to look every 250 ms: 100,000 waiting
//! joiners would have been 400,000 wake-ups a second.)

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::{
    api::{Identity, LifecycleState},
    telemetry::{LaneGauges, Metrics},
};

/// Reconciles of identities that are not leaving, at once.
pub const GENERAL: usize = 32;
/// Reconciles of leavers at once, on top of [`GENERAL`].
pub const LEAVERS: usize = 8;
/// The longest a waiting request sleeps before looking at a far-off `validUntil` again.
const FAR: Duration = Duration::from_secs(24 * 3600);

/// One lane: its permits, and how many wait for one and hold one.
struct Lane {
    permits: Arc<Semaphore>,
    gauges: LaneGauges,
}

impl Lane {
    fn new(permits: usize, gauges: LaneGauges) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            gauges,
        }
    }

    /// Waits for a permit, counted as waiting until it has one (or gives up).
    async fn take(&self) -> Option<Turn> {
        let waiting = Counted::on(&self.gauges.waiting);
        // The semaphores are never closed, so acquiring fails only at shutdown.
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        drop(waiting);
        Some(Turn {
            _permit: permit,
            _running: Counted::on(&self.gauges.running),
            _holder: None,
        })
    }
}

/// A gauge raised for as long as this lives: dropped futures count down too.
struct Counted(Gauge);

impl Counted {
    fn on(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A turn in a lane; it lasts as long as this value.
pub struct Turn {
    _permit: OwnedSemaphorePermit,
    _running: Counted,
    /// Who holds it: busy ([`Lanes::is_busy`]) until the turn ends.
    _holder: Option<Queued>,
}

impl Turn {
    fn held_by(mut self, holder: Queued) -> Self {
        self._holder = Some(holder);
        self
    }
}

/// The two lanes, and who waits in them.
pub struct Lanes {
    general: Lane,
    leavers: Lane,
    waiting: Arc<Waiting>,
}

/// The identities waiting for a turn or holding one, by name: how many of their requests
/// do (kube runs one per object, so at most one in practice), and what wakes them while
/// they wait (a wake while the turn is held is dropped with the entry).
#[derive(Default)]
struct Waiting(std::sync::Mutex<std::collections::HashMap<String, (usize, Arc<Notify>)>>);

impl Waiting {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (usize, Arc<Notify>)>> {
        // Each update is one insert or removal: a panic elsewhere cannot tear it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counts one identity as waiting, then as holding its turn, for as long as this lives.
struct Queued {
    waiting: Arc<Waiting>,
    who: String,
    wake: Arc<Notify>,
}

impl Queued {
    fn on(waiting: &Arc<Waiting>, who: &str) -> Self {
        let wake = {
            let mut all = waiting.lock();
            let entry = all.entry(who.to_owned()).or_default();
            entry.0 += 1;
            entry.1.clone()
        };
        Self {
            waiting: waiting.clone(),
            who: who.to_owned(),
            wake,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut all = self.waiting.lock();
        if let Some(entry) = all.get_mut(&self.who) {
            entry.0 -= 1;
            if entry.0 == 0 {
                all.remove(&self.who);
            }
        }
    }
}

/// Wakes the requests of an identity that changed, so that they look whether it is
/// leaving now.
#[derive(Clone)]
pub struct Wakers(Arc<Waiting>);

impl Wakers {
    /// The identity named `who` changed (or went).
    pub fn wake(&self, who: &str) {
        if let Some((_, wake)) = self.0.lock().get(who) {
            // A permit is kept if the request is between two looks: the change is not lost.
            wake.notify_one();
        }
    }
}

impl Default for Lanes {
    fn default() -> Self {
        Self::new(GENERAL, LEAVERS)
    }
}

/// Whether `identity` is leaving at `now`: being deleted, suspended, terminated, or past
/// its own `validUntil`. Pure.
pub fn leaving(identity: &Identity, now: Timestamp) -> bool {
    until_leaving(identity, now) == Some(Duration::ZERO)
}

/// How long until `identity` leaves: zero if it is leaving at `now`, the time to its
/// `validUntil` if it has one, `None` if nothing says it will. Pure.
pub fn until_leaving(identity: &Identity, now: Timestamp) -> Option<Duration> {
    if identity.metadata.deletion_timestamp.is_some()
        || identity.spec.state != LifecycleState::Active
    {
        return Some(Duration::ZERO);
    }
    let until = identity.spec.valid_until.as_ref()?.0;
    Some(Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO))
}

impl Lanes {
    /// Lanes with `general` and `leavers` permits, counted on gauges of their own.
    pub fn new(general: usize, leavers: usize) -> Self {
        Self {
            general: Lane::new(general, LaneGauges::default()),
            leavers: Lane::new(leavers, LaneGauges::default()),
            waiting: Arc::default(),
        }
    }

    /// The default lanes, counted on `metrics`' queue-depth and running gauges.
    pub fn metered(metrics: &Metrics) -> Self {
        Self {
            general: Lane::new(GENERAL, metrics.lane("general")),
            leavers: Lane::new(LEAVERS, metrics.lane("leavers")),
            waiting: Arc::default(),
        }
    }

    /// Whether a reconcile of the identity named `who` waits for a turn or holds one: it
    /// reads the apps itself, so asking for another is no use (the inventory scan asks
    /// this; a pass in flight while a scan listed the app would otherwise have been sent
    /// round again for what it was doing).
    pub fn is_busy(&self, who: &str) -> bool {
        self.waiting.lock().contains_key(who)
    }

    /// What wakes waiting requests when their Identity changes.
    pub fn wakers(&self) -> Wakers {
        Wakers(self.waiting.clone())
    }

    /// Waits for a turn for the identity named `who`: in the leavers' lane while
    /// `until_leaving` says zero, else in the general lane until it does. It is asked
    /// again when [`Wakers::wake`] names `who` and when the time it gave has passed.
    pub async fn turn(
        &self,
        who: &str,
        until_leaving: impl Fn() -> Option<Duration>,
    ) -> Option<Turn> {
        let queued = Queued::on(&self.waiting, who);
        if until_leaving() == Some(Duration::ZERO) {
            return self.leavers.take().await.map(|t| t.held_by(queued));
        }
        let general_turn = {
            let general = self.general.take();
            tokio::pin!(general);
            loop {
                let due = match until_leaving() {
                    Some(Duration::ZERO) => break None,
                    due => due.map(|d| d.min(FAR)),
                };
                tokio::select! {
                    turn = &mut general => break Some(turn),
                    () = queued.wake.notified() => {}
                    () = tokio::time::sleep(due.unwrap_or(FAR)), if due.is_some() => {}
                }
            }
            // The general request ends here, before the wait for a leaver's turn: tokio
            // hands a freed permit to the first queued request whether or not it is
            // polled, so a request kept alive would take a general turn and sit on it.
        };
        let turn = match general_turn {
            Some(turn) => turn,
            None => self.leavers.take().await,
        };
        turn.map(|t| t.held_by(queued))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn staying() -> Option<Duration> {
        None
    }

    fn leaving_now() -> Option<Duration> {
        Some(Duration::ZERO)
    }

    /// Long enough for a woken request to have moved.
    const MOMENT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn turns_are_first_come_first_served() {
        let lanes = Arc::new(Lanes::new(1, 1));
        let first = lanes.turn("x", staying).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..20 {
            let (lanes, order) = (lanes.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = lanes.turn("x", staying).await;
                order.lock().unwrap().push(i);
            }));
            // Each waiter queues before the next one starts.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn who_is_busy_is_known_until_their_turn_ends_or_they_give_up() {
        let lanes = Arc::new(Lanes::new(1, 1));
        let busy = lanes.turn("ada", staying).await;
        assert!(lanes.is_busy("ada"), "ada holds her turn: she is busy");
        let bob = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.turn("bob", staying).await.is_some() })
        };
        let carol = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.turn("carol", staying).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(lanes.is_busy("bob") && lanes.is_busy("carol"));
        carol.abort();
        let _ = carol.await;
        assert!(!lanes.is_busy("carol"), "a dropped request waits no more");
        drop(busy);
        assert!(!lanes.is_busy("ada"), "ada's turn is over");
        assert!(bob.await.unwrap());
        assert!(!lanes.is_busy("bob"), "bob's turn ended with his task");
    }

    #[tokio::test]
    async fn a_leaver_does_not_wait_behind_joiners() {
        let lanes = Lanes::new(1, 1);
        let _busy = lanes.turn("x", staying).await;
        let leaver =
            tokio::time::timeout(Duration::from_secs(1), lanes.turn("x", leaving_now)).await;
        assert!(leaver.is_ok(), "the leaver lane is free while joiners wait");
    }

    #[tokio::test]
    async fn someone_who_starts_leaving_while_waiting_changes_lanes() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let lanes = Arc::new(Lanes::new(1, 1));
        let _busy = lanes.turn("x", staying).await;
        let left = Arc::new(AtomicBool::new(false));
        let waiting = {
            let (lanes, left) = (lanes.clone(), left.clone());
            tokio::spawn(async move {
                lanes
                    .turn("x", || {
                        left.load(Ordering::Relaxed).then_some(Duration::ZERO)
                    })
                    .await
            })
        };
        tokio::time::sleep(MOMENT).await;
        assert!(
            !waiting.is_finished(),
            "a joiner waits for the general lane"
        );
        left.store(true, Ordering::Relaxed);
        lanes.wakers().wake("x");
        let turn = tokio::time::timeout(MOMENT, waiting).await;
        assert!(
            turn.is_ok_and(|t| t.is_ok_and(|p| p.is_some())),
            "once leaving, it takes the leavers' lane"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn someone_whose_valid_until_comes_while_waiting_changes_lanes() {
        let lanes = Arc::new(Lanes::new(1, 1));
        let _busy = lanes.turn("x", staying).await;
        let ends = tokio::time::Instant::now() + Duration::from_secs(3600);
        let waiting = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .turn("x", || {
                        Some(ends.saturating_duration_since(tokio::time::Instant::now()))
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(3599)).await;
        assert!(!waiting.is_finished(), "still valid: it waits its turn");
        let turn = tokio::time::timeout(Duration::from_secs(2), waiting).await;
        assert!(
            turn.is_ok_and(|t| t.is_ok_and(|p| p.is_some())),
            "past validUntil, nothing woke it, and it took the leavers' lane"
        );
    }

    #[tokio::test]
    async fn someone_who_changed_lanes_leaves_the_general_turn_to_the_next() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let lanes = Arc::new(Lanes::new(1, 1));
        let busy_general = lanes.turn("x", staying).await;
        let _busy_leavers = lanes.turn("x", leaving_now).await;
        let left = Arc::new(AtomicBool::new(false));
        let mover = {
            let (lanes, left) = (lanes.clone(), left.clone());
            tokio::spawn(async move {
                lanes
                    .turn("x", || {
                        left.load(Ordering::Relaxed).then_some(Duration::ZERO)
                    })
                    .await
            })
        };
        tokio::time::sleep(MOMENT).await;
        left.store(true, Ordering::Relaxed);
        lanes.wakers().wake("x");
        // Now waiting in the leavers' lane, which stays busy.
        tokio::time::sleep(MOMENT).await;
        let joiner = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.turn("x", staying).await })
        };
        tokio::time::sleep(MOMENT).await;
        drop(busy_general);
        let turn = tokio::time::timeout(MOMENT, joiner).await;
        assert!(
            turn.is_ok_and(|t| t.is_ok_and(|p| p.is_some())),
            "the freed general turn goes to the joiner, not to the mover who left that lane"
        );
        assert!(!mover.is_finished(), "the mover waits for a leaver's turn");
    }

    #[tokio::test]
    async fn the_queue_depth_and_running_turns_are_gauged() {
        let metrics = Metrics::new();
        let lanes = Arc::new(Lanes::metered(&metrics));
        let mut held = Vec::new();
        for _ in 0..GENERAL {
            held.push(lanes.turn("x", staying).await);
        }
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let lanes = lanes.clone();
                tokio::spawn(async move { lanes.turn("x", staying).await.is_some() })
            })
            .collect();
        let leaver = lanes.turn("x", leaving_now).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = metrics.encode().unwrap();
        for line in [
            r#"roster_identity_queue_depth{lane="general"} 3"#,
            r#"roster_identity_queue_depth{lane="leavers"} 0"#,
            r#"roster_identity_reconciles_running{lane="general"} 32"#,
            r#"roster_identity_reconciles_running{lane="leavers"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        drop((held, leaver));
        for w in waiters {
            assert!(w.await.unwrap());
        }
        let text = metrics.encode().unwrap();
        for line in [
            r#"roster_identity_queue_depth{lane="general"} 0"#,
            r#"roster_identity_reconciles_running{lane="general"} 0"#,
            r#"roster_identity_reconciles_running{lane="leavers"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn who_is_leaving() {
        let now = Timestamp::from_second(2_000_000_000).unwrap();
        let mut i: Identity =
            serde_json::from_value(serde_json::json!({"apiVersion": "roster.dev/v1alpha1",
                "kind": "Identity", "metadata": {"name": "a"}, "spec": {"username": "a"}}))
            .unwrap();
        assert!(!leaving(&i, now));
        i.spec.valid_until = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::from_second(1_999_999_999).unwrap(),
        ));
        assert!(leaving(&i, now), "past validUntil");
        i.spec.valid_until = None;
        i.spec.state = LifecycleState::Suspended;
        assert!(leaving(&i, now));
    }
}

/// kube's applier driven the way the operator drives it, under a load that keeps
/// re-queueing a few objects (as status writes and scans do): every object must still
/// get its turn.
#[cfg(test)]
mod starvation {
    use std::{
        collections::BTreeSet,
        convert::Infallible,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::{
        api::ObjectMeta,
        runtime::{
            controller::{Action, Config, applier},
            reflector::{self, ObjectRef},
            watcher,
        },
    };

    use super::Lanes;

    const OBJECTS: usize = 300;
    const HOT: usize = 40;

    fn cm(i: usize) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{i}")),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    type Shared = (
        futures::channel::mpsc::UnboundedSender<ObjectRef<ConfigMap>>,
        Arc<Mutex<BTreeSet<String>>>,
        Option<Arc<Lanes>>,
    );

    /// How many of the objects were reconciled at least once within `reconciles`
    /// reconciles in all, with kube bounding concurrency (`kube_bound`) or the lanes.
    async fn reached(kube_bound: u16, lanes: Option<Arc<Lanes>>, reconciles: usize) -> usize {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for i in 0..OBJECTS {
            writer.apply_watcher_event(&watcher::Event::InitApply(cm(i)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let (tx, rx) = futures::channel::mpsc::unbounded::<ObjectRef<ConfigMap>>();
        for i in 0..OBJECTS {
            tx.unbounded_send(ObjectRef::from_obj(&cm(i))).unwrap();
        }
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let ctx = Arc::new((tx, seen.clone(), lanes));
        let stream = applier(
            |obj: Arc<ConfigMap>, ctx: Arc<Shared>| {
                Box::pin(async move {
                    let (tx, seen, lanes) = &*ctx;
                    let _turn = match lanes {
                        Some(l) => l.turn("x", || None).await,
                        None => None,
                    };
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    seen.lock().unwrap().insert(name.clone());
                    let i: usize = name.trim_start_matches("cm-").parse().unwrap_or(0);
                    if i < HOT {
                        // Its status write comes back as a watch event.
                        let _ = tx.unbounded_send(ObjectRef::from_obj(obj.as_ref()));
                    }
                    Ok::<_, Infallible>(Action::await_change())
                })
            },
            |_, _: &Infallible, _| Action::await_change(),
            ctx,
            reader,
            rx.map(Ok::<_, Infallible>),
            Config::default().concurrency(kube_bound),
        );
        let _ = stream.take(reconciles).collect::<Vec<_>>().await;
        seen.lock().unwrap().len()
    }

    // With kube bounding concurrency instead (`reached(4, None, ..)`), the same load
    // reached 86 to 112 of the 300 objects in five runs: the starvation seen live.
    #[tokio::test]
    async fn with_the_lanes_every_object_gets_a_turn_under_constant_requeues() {
        // Ten reconciles per object is ample for fair service (each needs one).
        let n = reached(0, Some(Arc::new(Lanes::new(4, 1))), OBJECTS * 10).await;
        assert_eq!(n, OBJECTS, "objects starved behind requeued ones");
    }
}
