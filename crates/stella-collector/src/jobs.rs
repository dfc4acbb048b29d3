//! The background jobs of a running server (DORA gauges, scheduled bundles, incident TTLs and webhooks,
//! the config-file and DNS watches). Each gets a stop signal; the collector's staged shutdown stops and
//! awaits them after the receivers and before the pipelines drain, so no job writes into a closing store
//! and none is cut off halfway through a bundle.
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The running jobs and their shared stop signal.
#[derive(Default)]
pub struct Jobs {
    stop: CancellationToken,
    running: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Jobs {
    /// Runs `job` (given the stop signal it must heed) until it returns. Once stopping, new jobs are not
    /// started.
    pub fn spawn<F>(&self, name: &'static str, job: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.stop.is_cancelled() {
            tracing::debug!(job = name, "not started: the server is stopping");
            return;
        }
        let handle = tokio::spawn(job(self.stop.clone()));
        let mut running = self.running.lock().unwrap_or_else(|poison| poison.into_inner());
        running.retain(|(_, handle)| !handle.is_finished());
        running.push((name, handle));
    }

    /// Signals every job to stop and waits for each, at most `deadline` apiece.
    pub async fn stop(&self, deadline: Duration) {
        self.stop.cancel();
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|poison| poison.into_inner()));
        for (name, handle) in running {
            if tokio::time::timeout(deadline, handle).await.is_err() {
                tracing::warn!(job = name, ?deadline, "a background job did not stop in time");
            }
        }
    }
}

/// Sleeps for `duration` unless `stop` fires first; `true` when it did (the job should return).
pub async fn stopped_during(stop: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn stop_waits_for_a_job_to_finish_its_work_and_refuses_new_ones() {
        let jobs = Jobs::default();
        let finished = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&finished);
        jobs.spawn("test", |stop| async move {
            stop.cancelled().await;
            // Work after the signal (a bundle being completed) still runs to its end.
            tokio::task::yield_now().await;
            seen.store(true, Ordering::SeqCst);
        });
        jobs.stop(Duration::from_secs(30)).await;
        assert!(finished.load(Ordering::SeqCst), "stop returned before the job ended");
        let late = Arc::new(AtomicBool::new(false));
        let started = Arc::clone(&late);
        jobs.spawn("late", |_| async move { started.store(true, Ordering::SeqCst) });
        tokio::task::yield_now().await;
        assert!(!late.load(Ordering::SeqCst) && jobs.running.lock().unwrap().is_empty());
    }
}
