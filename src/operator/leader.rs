//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas can run and
//! only one writes — downstream or to status.
//!
//! As in client-go, a follower judges expiry by its own clock: it takes the Lease once it
//! has seen the same record unchanged for the Lease's duration, so clock skew between
//! nodes does not matter. The leader counts its own term from the moment it *sent* its
//! last successful renewal and gives up at [`Timing::renew_deadline`], shorter than the
//! duration a follower waits: a deposed leader stops before the next one can start. The
//! process then exits ([`super::Error::LeadershipLost`]); what it had in flight dies
//! with it, and every downstream write is idempotent for the next leader.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::watch;

/// Where the Lease lives and who this process is.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This process's identity: unique among replicas.
    pub identity: String,
    /// The durations.
    pub timing: Timing,
}

/// The durations of an election (client-go's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a follower waits on an unchanged Lease before taking it.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and a follower looks.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The part of a Lease that says who holds it; a change of any field is a renewal seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Who holds it; `None` or empty: free.
    pub holder: Option<String>,
    /// The holder's last renewal, as it wrote it.
    pub renewed: Option<String>,
    /// How long the holder asked others to wait.
    pub duration: Duration,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renewed: spec.renew_time.map(|t| t.0.to_string()),
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            ),
        }
    }
}

/// What to do about the Lease now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write the Lease with this process as its holder.
    Take,
    /// Someone else holds it and has renewed recently enough.
    Wait,
}

/// Whether `me` may write the Lease, having seen `record` unchanged for `unchanged`. Pure.
pub fn step(record: Option<&Record>, me: &str, unchanged: Duration) -> Step {
    match record {
        None => Step::Take,
        Some(r) => match r.holder.as_deref() {
            None => Step::Take,
            Some(holder) if holder == me => Step::Take,
            Some(_) if unchanged >= r.duration => Step::Take,
            Some(_) => Step::Wait,
        },
    }
}

/// Leadership held: a background task renews it; [`Leadership::lost`] resolves if it
/// cannot.
pub struct Leadership {
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    elector: Elector,
}

impl Leadership {
    /// Resolves when leadership is lost: a renewal failed past the renew deadline, or
    /// another process holds the Lease.
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and frees the Lease so that a standby takes over at once.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.elector.release().await {
            tracing::warn!(error = %e, "could not release the leader Lease; a standby takes over when it expires");
        }
    }
}

/// Waits until this process holds the Lease (or `stop` resolves: `None`).
pub async fn acquire(
    client: &Client,
    opts: LeaderOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Option<Leadership> {
    let mut elector = Elector {
        api: Api::namespaced(client.clone(), &opts.namespace),
        opts,
        seen: None,
    };
    tracing::info!(lease = %elector.opts.name, namespace = %elector.opts.namespace, identity = %elector.opts.identity, "waiting to lead");
    let taken = async {
        loop {
            match elector.try_take().await {
                Ok(Some(at)) => return at,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read or write the Lease")
                }
            }
            tokio::time::sleep(elector.opts.timing.retry_period).await;
        }
    };
    let renewed_at = tokio::select! {
        at = taken => at,
        () = stop => return None,
    };
    tracing::info!(identity = %elector.opts.identity, "leading");
    let (tx, lost) = watch::channel(false);
    let renewer = tokio::spawn(keep(elector.clone(), renewed_at, tx));
    Some(Leadership {
        lost,
        renewer,
        elector,
    })
}

/// Renews every retry period; signals `lost` once the renew deadline passes without a
/// successful renewal, or another holder is found.
async fn keep(mut elector: Elector, mut renewed_at: Instant, lost: watch::Sender<bool>) {
    let timing = elector.opts.timing;
    loop {
        tokio::time::sleep(timing.retry_period).await;
        let deadline = renewed_at + timing.renew_deadline;
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(left, elector.try_take()).await;
        match attempt {
            Ok(Ok(Some(at))) => renewed_at = at,
            Ok(Ok(None)) => {
                tracing::error!("leadership lost: another process holds the Lease");
                let _ = lost.send(true);
                return;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the leader Lease"),
            Err(_) => {}
        }
        if Instant::now() >= renewed_at + timing.renew_deadline {
            tracing::error!(deadline = ?timing.renew_deadline, "leadership lost: no renewal within the renew deadline");
            let _ = lost.send(true);
            return;
        }
    }
}

#[derive(Clone)]
struct Elector {
    api: Api<Lease>,
    opts: LeaderOptions,
    /// The record last seen and when it was first seen so.
    seen: Option<(Record, Instant)>,
}

impl Elector {
    /// Takes or renews the Lease if this process may; returns when the successful write
    /// was sent, `None` if another holder keeps it.
    async fn try_take(&mut self) -> Result<Option<Instant>, kube::Error> {
        let current = self.api.get_opt(&self.opts.name).await?;
        let record = current.as_ref().map(Record::of);
        let now = Instant::now();
        let unchanged = match (&self.seen, &record) {
            (Some((before, since)), Some(r)) if before == r => now.duration_since(*since),
            _ => Duration::ZERO,
        };
        if let Some(r) = &record
            && self.seen.as_ref().is_none_or(|(before, _)| before != r)
        {
            self.seen = Some((r.clone(), now));
        }
        if step(record.as_ref(), &self.opts.identity, unchanged) == Step::Wait {
            return Ok(None);
        }
        let sent = Instant::now();
        let written = match current {
            None => {
                self.api
                    .create(&PostParams::default(), &self.lease(None))
                    .await
            }
            Some(lease) => {
                let next = self.lease(Some(&lease));
                self.api
                    .replace(&self.opts.name, &PostParams::default(), &next)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.seen = Some((Record::of(&lease), Instant::now()));
                Ok(Some(sent))
            }
            // Someone else wrote first (409): look again next time.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The Lease with this process holding it, from `current` (keeping its version, so
    /// the write fails if anyone else wrote since).
    fn lease(&self, current: Option<&Lease>) -> Lease {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.opts.identity.as_str());
        let transitions = spec.lease_transitions.unwrap_or(0);
        Lease {
            metadata: ObjectMeta {
                name: Some(self.opts.name.clone()),
                namespace: Some(self.opts.namespace.clone()),
                resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.opts.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.opts.timing.lease_duration.as_secs()).unwrap_or(15),
                ),
                acquire_time: if ours {
                    spec.acquire_time
                } else {
                    Some(now.clone())
                },
                renew_time: Some(now),
                lease_transitions: Some(if ours || current.is_none() {
                    transitions
                } else {
                    transitions.saturating_add(1)
                }),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Frees the Lease if this process still holds it.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(current) = self.api.get_opt(&self.opts.name).await? else {
            return Ok(());
        };
        let mut spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.opts.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        let mut freed = current;
        freed.spec = Some(spec);
        self.api
            .replace(&self.opts.name, &PostParams::default(), &freed)
            .await?;
        tracing::info!("released the leader Lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str) -> Record {
        Record {
            holder: Some(holder.into()),
            renewed: Some("t1".into()),
            duration: Duration::from_secs(15),
        }
    }

    #[test]
    fn a_lease_is_taken_when_free_ours_or_unchanged_for_its_duration() {
        let secs = Duration::from_secs;
        assert_eq!(step(None, "a", secs(0)), Step::Take, "no Lease yet");
        let free = Record {
            holder: None,
            ..held_by("x")
        };
        assert_eq!(step(Some(&free), "a", secs(0)), Step::Take, "released");
        assert_eq!(step(Some(&held_by("a")), "a", secs(0)), Step::Take, "renew");
        let theirs = held_by("b");
        assert_eq!(step(Some(&theirs), "a", secs(14)), Step::Wait);
        assert_eq!(
            step(Some(&theirs), "a", secs(15)),
            Step::Take,
            "seen unchanged for the whole duration: the holder is gone"
        );
    }

    #[test]
    fn a_deposed_leader_stops_before_a_follower_may_take_over() {
        let t = Timing::default();
        // The leader counts from when it sent its renewal, before the follower can have
        // seen it; it gives up at the renew deadline, the follower waits the duration.
        assert!(t.renew_deadline + t.retry_period < t.lease_duration);
    }
}
