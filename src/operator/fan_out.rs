//! The work a change sets off — which identities a binding matches, evaluating its CEL
//! expression for every identity — runs here, off the watch tasks. A watch task that
//! evaluated 10,000 identities against every binding would stop reading its watch (and
//! filling its cache) for as long as that takes, and block a runtime thread with it.
//! Jobs run one at a time, in the order they came, on the blocking pool.

use tokio::{sync::mpsc, task::JoinHandle};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where watch tasks hand over their fan-out work.
#[derive(Clone)]
pub struct FanOut {
    jobs: mpsc::UnboundedSender<Job>,
}

impl FanOut {
    /// A fan-out and the task that runs its jobs until every sender is gone.
    pub fn start() -> (Self, JoinHandle<()>) {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                // A job that panics loses its own triggers only: the next scan finds
                // the accounts they would have fixed, a restart the joiners they would
                // have provisioned.
                if let Err(err) = tokio::task::spawn_blocking(job).await {
                    tracing::error!(error = %err, "a fan-out job failed");
                }
            }
        });
        (Self { jobs }, task)
    }

    /// Queues `job`; returns at once. After shutdown the job is dropped.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.send(Box::new(job));
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc as std_mpsc, time::Duration};

    use super::*;

    #[tokio::test]
    async fn a_job_runs_elsewhere_while_the_caller_goes_on() {
        let (fan, _task) = FanOut::start();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let (done_tx, done_rx) = std_mpsc::channel::<std::thread::ThreadId>();
        // The job waits for the caller: were it run inline, `run` would never return.
        fan.run(move || {
            let _ = release_rx.recv_timeout(Duration::from_secs(10));
            let _ = done_tx.send(std::thread::current().id());
        });
        release_tx.send(()).unwrap();
        let ran_on =
            tokio::task::spawn_blocking(move || done_rx.recv_timeout(Duration::from_secs(10)))
                .await
                .unwrap()
                .expect("the job ran");
        assert_ne!(ran_on, std::thread::current().id());
    }

    #[tokio::test]
    async fn jobs_run_in_order() {
        let (fan, _task) = FanOut::start();
        let (tx, rx) = std_mpsc::channel();
        for i in 0..20 {
            let tx = tx.clone();
            fan.run(move || tx.send(i).unwrap());
        }
        let got = tokio::task::spawn_blocking(move || {
            (0..20)
                .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }
}
