//! The source's `ownedServices: ReassignToManager` policy carried out: each Service
//! identity a leaver of the source owns is handed to the leaver's manager, by a patch on
//! the version the decision saw, so a person's concurrent change is never overwritten. The decision is `lifecycle::source::succession`'s.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{events::EventType, reflector::ObjectRef},
};

use super::field_manager;
use crate::{
    api::{Identity, IdentitySource, OwnedServices},
    controller::{Context, status},
    lifecycle::source::succession::{self, Handover, REASSIGNED_FROM_ANNOTATION},
};

/// Hands the services of `key`'s leavers to their managers, if the policy says so.
pub async fn hand_over(ctx: &Context, src: &IdentitySource, key: &str, now: Timestamp) {
    if src.spec.policy.owned_services != OwnedServices::ReassignToManager {
        return;
    }
    let cached = ctx.stores.identities.state();
    let by_name: BTreeMap<String, &Identity> =
        cached.iter().map(|i| (i.name_any(), i.as_ref())).collect();
    let decided = succession::succession(key, &by_name, now);
    for stranded in &decided.stranded {
        tracing::debug!(source = key, service = %stranded.service, owner = %stranded.from,
            why = %stranded.why, "service not handed over");
    }
    for handover in &decided.handovers {
        let Some(service) = by_name.get(&handover.service) else {
            continue;
        };
        match patch(ctx, key, service, handover).await {
            Ok(()) => announce(ctx, key, handover).await,
            // The owner changed since the cache saw it (the test failed), or the write
            // was refused: the next read decides again from what is there then.
            Err(e) => tracing::info!(source = key, service = %handover.service,
                error = %e, "service not handed over"),
        }
    }
}

/// Sets the service's owner, on the version the decision saw: a merge patch carrying its
/// `resourceVersion` is refused (409) if anything changed since, owner included.
async fn patch(
    ctx: &Context,
    key: &str,
    service: &Identity,
    handover: &Handover,
) -> Result<(), kube::Error> {
    let body = serde_json::json!({
        "metadata": {
            "resourceVersion": service.resource_version(),
            "annotations": {REASSIGNED_FROM_ANNOTATION: handover.from},
        },
        "spec": {"owner": handover.to},
    });
    let params = PatchParams {
        field_manager: Some(field_manager(key)),
        ..PatchParams::default()
    };
    Api::<Identity>::all(ctx.client.clone())
        .patch(&handover.service, &params, &Patch::Merge(&body))
        .await
        .map(|_| ())
}

async fn announce(ctx: &Context, key: &str, handover: &Handover) {
    let Some(service) = ctx
        .stores
        .identities
        .get(&ObjectRef::new(&handover.service))
    else {
        return;
    };
    let note = format!(
        "IdentitySource {key} handed this Service to {:?}, the manager of its owner {:?}, who left (policy ownedServices: ReassignToManager)",
        handover.to, handover.from
    );
    status::publish_record(
        &ctx.client,
        service.as_ref(),
        EventType::Normal,
        "OwnerReassigned",
        "Reassign",
        &note,
    )
    .await;
}
