//! The IdentitySource loop: read the export → plan against the Identities → let the
//! safeguard judge the leavers → apply → status. Runs again every `pollSeconds`.
//!
//! Identities are written by server-side apply under a field manager of the source's
//! own, with force: the fields the mapping names are the source's, taken back from any
//! other writer at the next read; fields it does not map stay whoever else's (Git, a
//! person). Only Identities carrying the source's `roster.dev/source` annotation are
//! ever written. Deleting a source leaves its Identities as they are.

mod handover;
mod read;
pub mod report;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};

use super::{Context, Error, budget::APPROVE_ANNOTATION, instrumented, status};
use crate::{
    api::{Identity, IdentitySource, IdentitySourceStatus},
    lifecycle::{
        budget::{Removal, approval_problem},
        source::{
            self, current_of,
            plan::{self, Plan, Write},
            safeguard::{self, Verdict},
        },
    },
    text::truncate,
};
use report::{Applied, Refused};

/// How soon a read whose writes failed is retried.
const RETRY: Duration = Duration::from_secs(15);
/// The longest field manager name the apiserver takes.
const MANAGER_MAX: usize = 128;

/// Leavers each source applied in this process, beside what the Identities record: the
/// cache may not yet hold the annotations of the last read's writes when the next read
/// counts.
#[derive(Default)]
pub struct Recent {
    inner: std::sync::Mutex<BTreeMap<String, Vec<Removal>>>,
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Removal>>> {
        // Each use is one push or one read: a panic elsewhere cannot tear the map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn of(&self, key: &str) -> Vec<Removal> {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    fn add(&self, key: &str, at: Timestamp, names: &[String], window: i64) {
        let mut map = self.lock();
        let list = map.entry(key.to_owned()).or_default();
        let start = at - k8s_openapi::jiff::SignedDuration::from_secs(window.max(0));
        list.retain(|(t, _)| *t > start);
        list.extend(names.iter().map(|n| (at, n.clone())));
    }
}

/// The field manager a source's writes go under.
pub fn field_manager(key: &str) -> String {
    truncate(&format!("roster.dev/source/{key}"), MANAGER_MAX)
}

/// Reconciles one IdentitySource.
pub async fn reconcile(src: Arc<IdentitySource>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("IdentitySource", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let ns = src
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(src.name_any()))?;
        let key = format!("{ns}/{}", src.name_any());
        let poll = Duration::from_secs(src.spec.poll_seconds.clamp(5, 86_400).unsigned_abs());
        let current = src.status.clone().unwrap_or_default();
        let generation = src.metadata.generation;
        let now = Timestamp::now();
        let (mapping, records) = match read::mapped(&ctx, &src, &ns).await? {
            Ok(read) => read,
            Err(refused) => {
                refuse(&ctx, &src, &refused).await?;
                return Ok(Action::requeue(poll));
            }
        };
        let existing: BTreeMap<String, plan::Current> = ctx
            .stores
            .identities
            .state()
            .iter()
            .map(|i| (i.name_any(), current_of(i)))
            .collect();
        let plan = plan::plan(
            &key,
            &records,
            &mapping,
            src.spec.policy.missing,
            &existing,
            now,
        );
        let (verdict, problem) = judge(&ctx, &src, &key, &plan, &existing, records.len(), now);
        let failures = apply(&ctx, &src, &key, &plan, &verdict).await;
        let read = Applied {
            rows: records.len(),
            plan: &plan,
            verdict: &verdict,
            failures: &failures,
            approval_problem: problem,
        };
        let desired = report::applied(&current, generation, &read, &crate::time::now());
        write_status(&ctx, &src, &desired).await?;
        announce(&ctx, &src, &key, &current, &plan, &verdict, &failures).await;
        handover::hand_over(&ctx, &src, &key, now).await;
        Ok(Action::requeue(if failures.is_empty() {
            poll
        } else {
            RETRY
        }))
    })
    .await
}

/// Records a read that could not be applied: `Synced=False` with why, and a Warning
/// Event when that is news.
async fn refuse(ctx: &Context, src: &IdentitySource, refused: &Refused) -> Result<(), Error> {
    let current = src.status.clone().unwrap_or_default();
    let generation = src.metadata.generation;
    let desired = report::refused(&current, generation, refused, &crate::time::now());
    if write_status(ctx, src, &desired).await? {
        let (reason, note) = (refused.reason, &refused.message);
        status::publish(&ctx.recorder, src, EventType::Warning, reason, "Read", note).await;
    }
    Ok(())
}

/// Writes `desired` as the source's status when it changed; whether it wrote.
async fn write_status(
    ctx: &Context,
    src: &IdentitySource,
    desired: &IdentitySourceStatus,
) -> Result<bool, Error> {
    let ns = src.namespace().unwrap_or_default();
    let api = Api::<IdentitySource>::namespaced(ctx.client.clone(), &ns);
    let current = src.status.as_ref();
    status::apply_if_changed(ctx, "IdentitySource", &api, src, current, desired).await
}

/// The safeguard's verdict on the read's leavers, and what is wrong with the approval.
fn judge(
    ctx: &Context,
    src: &IdentitySource,
    key: &str,
    plan: &Plan,
    existing: &BTreeMap<String, plan::Current>,
    rows: usize,
    now: Timestamp,
) -> (Verdict, Option<String>) {
    let mut recorded: Vec<Removal> = existing
        .iter()
        .filter(|(_, c)| c.source.as_deref() == Some(key))
        .filter_map(|(n, c)| Some((c.removed_at?, n.clone())))
        .collect();
    recorded.extend(ctx.source_removals.of(key));
    let approval = src.annotations().get(APPROVE_ANNOTATION);
    let problem = approval.and_then(|v| approval_problem(v, now));
    let approved_at = approval
        .filter(|_| problem.is_none())
        .and_then(|v| v.trim().parse::<Timestamp>().ok());
    let planned: Vec<&str> = plan.removals.iter().map(|w| w.name.as_str()).collect();
    let verdict = safeguard::judge(&safeguard::Inputs {
        safeguard: &src.spec.safeguard,
        rows,
        active: plan.active,
        planned: &planned,
        recorded: &recorded,
        approved_at,
        quarantine: src.status.as_ref().and_then(|s| s.quarantine.as_ref()),
        now,
    });
    (verdict, problem)
}

/// Applies the read's joiners and movers, and its leavers when released; returns the
/// writes the apiserver refused.
async fn apply(
    ctx: &Context,
    src: &IdentitySource,
    key: &str,
    plan: &Plan,
    verdict: &Verdict,
) -> Vec<(String, String)> {
    let (_, mut failures) = apply_each(ctx, key, &plan.writes).await;
    let Verdict::Release(at) = verdict else {
        return failures;
    };
    let leavers: Vec<Write> = plan
        .removals
        .iter()
        .map(|w| Write {
            removed_at: Some(*at),
            ..w.clone()
        })
        .collect();
    let (done, failed) = apply_each(ctx, key, &leavers).await;
    failures.extend(failed);
    let window = src.spec.safeguard.window_seconds;
    ctx.source_removals.add(key, *at, &done, window);
    failures
}

/// Applies each of `writes` as the source `key`: the names applied, and the failures.
async fn apply_each(
    ctx: &Context,
    key: &str,
    writes: &[Write],
) -> (Vec<String>, Vec<(String, String)>) {
    let api = Api::<Identity>::all(ctx.client.clone());
    let params = PatchParams::apply(&field_manager(key)).force();
    let (mut done, mut failures) = (Vec::new(), Vec::new());
    for write in writes {
        let body = source::object(write, key);
        match api.patch(&write.name, &params, &Patch::Apply(&body)).await {
            Ok(_) => done.push(write.name.clone()),
            Err(err) => failures.push((write.name.clone(), err.to_string())),
        }
    }
    (done, failures)
}

/// Events: one on the source when it begins holding leavers, one on each leaver, and one
/// on each Identity newly found clashing.
async fn announce(
    ctx: &Context,
    src: &IdentitySource,
    key: &str,
    before: &IdentitySourceStatus,
    plan: &Plan,
    verdict: &Verdict,
    failures: &[(String, String)],
) {
    let cached = |name: &str| ctx.stores.identities.get(&ObjectRef::new(name));
    match verdict {
        Verdict::Hold(q) if before.quarantine.as_ref().map(|b| &b.since) != Some(&q.since) => {
            let (reason, action) = ("SafeguardTripped", "Hold");
            status::publish(
                &ctx.recorder,
                src,
                EventType::Warning,
                reason,
                action,
                &q.message,
            )
            .await;
        }
        Verdict::Hold(_) => {}
        Verdict::Release(_) => {
            let failed = |name: &str| failures.iter().any(|(n, _)| n == name);
            for leaver in plan.removals.iter().filter(|w| !failed(&w.name)) {
                let Some(identity) = cached(&leaver.name) else {
                    continue;
                };
                let note = format!(
                    "IdentitySource {key} made this Identity {:?}: the worker left the source",
                    leaver.spec.state
                );
                let (reason, action) = ("SourceLeaver", "Import");
                status::publish_record(
                    &ctx.client,
                    identity.as_ref(),
                    EventType::Normal,
                    reason,
                    action,
                    &note,
                )
                .await;
            }
        }
    }
    let known: Vec<&str> = before.clashes.iter().map(|c| c.identity.as_str()).collect();
    for (name, why) in plan
        .clashes
        .iter()
        .filter(|(n, _)| !known.contains(&n.as_str()))
    {
        let Some(identity) = cached(name) else {
            continue;
        };
        let note = format!(
            "IdentitySource {key} has a row for this Identity but does not own it ({why}); it is left untouched"
        );
        let (reason, action) = ("SourceClash", "Import");
        status::publish(
            &ctx.recorder,
            identity.as_ref(),
            EventType::Warning,
            reason,
            action,
            &note,
        )
        .await;
    }
}
