//! Writing status: only when something other than a timestamp changed, by server-side
//! apply (so that fields we stop setting are removed), with an Event when an object's
//! `Ready` condition turns bad.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType, Recorder},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{Context, Error, MANAGER};
use crate::api::conditions;

/// Longest message carried into an Event; the API server refuses notes over 1 kB.
const EVENT_NOTE_LIMIT: usize = 1000;

/// Applies `desired` as `obj`'s status when it differs from the current one, and returns
/// whether it wrote. `current` is the status the cache holds; `kind` labels the
/// `roster_status_writes_total` counter.
pub async fn apply_if_changed<K, S>(
    ctx: &Context,
    kind: &'static str,
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.observe_status_write(kind);
    Ok(true)
}

/// Publishes a Warning Event when the `Ready` condition turned `False` or changed its
/// reason while `False`, so that `kubectl describe` and event exporters show why.
/// Publishing is best effort: a lost Event is logged, never fatal.
pub async fn warn_on_ready_change<K>(
    recorder: &Recorder,
    obj: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    let Some(now) = conditions::find(after, conditions::READY) else {
        return;
    };
    let was = conditions::find(before, conditions::READY);
    let changed = was.is_none_or(|w| w.status != now.status || w.reason != now.reason);
    if now.status != "False" || !changed {
        return;
    }
    publish(
        recorder,
        obj,
        EventType::Warning,
        &now.reason,
        "Validate",
        &now.message,
    )
    .await;
}

/// Publishes an Event about `obj`, its note truncated to what the API server accepts.
/// Best effort: a lost Event is logged, never fatal.
pub async fn publish<K>(
    recorder: &Recorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, EVENT_NOTE_LIMIT)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %err, reason, "could not publish Event");
    }
}

/// An Event of its own for one audit record, never folded into another: the Recorder
/// merges Events of one reason and action on one object into a series that keeps only
/// the first note, and each change's evidence must stay readable.
pub async fn publish_record<K>(
    client: &kube::Client,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) where
    K: Resource<DynamicType = ()>,
{
    use k8s_openapi::{
        api::events::v1::Event as K8sEvent,
        apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
        jiff::Timestamp,
    };
    // Unique in this process by the counter, across restarts by the time.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let regarding = obj.object_ref(&());
    let namespace = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let now = Timestamp::now();
    let stem: String = regarding
        .name
        .as_deref()
        .unwrap_or(MANAGER)
        .chars()
        .take(200)
        .collect();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let event = K8sEvent {
        metadata: ObjectMeta {
            name: Some(format!("{stem}.{:x}.{n:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        action: Some(action.to_owned()),
        reason: Some(reason.to_owned()),
        note: Some(truncate(note, EVENT_NOTE_LIMIT)),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding),
        reporting_controller: Some(MANAGER.to_owned()),
        reporting_instance: Some(MANAGER.to_owned()),
        type_: Some(
            match type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        ..K8sEvent::default()
    };
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), &namespace);
    if let Err(err) = events.create(&Default::default(), &event).await {
        tracing::warn!(error = %err, reason, "could not publish Event");
    }
}

pub use crate::text::truncate;
