//! Supervised background workers: a worker whose task ends or panics before
//! the process stops is restarted with back-off and counted
//! (`yixin_worker_restarts_total{worker}`); each worker reports whether it
//! is up, and `/readyz` says which critical one is not (the `workers`
//! check).
//!
//! A worker is a function that builds its task from a [`WorkerHandle`]; it
//! is called again for each restart. Through the handle the task says when
//! it is down (reconnecting to a backend, say) and up again.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use yixin_queue::Backoff;

use crate::ReadinessCheck;

/// A run that lasted this long counts as healthy: the next restart starts
/// from the shortest back-off again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct WorkerState {
    critical: bool,
    /// `None`: up; else why not.
    down: Option<String>,
    restarts: u64,
}

/// The workers of one process and their health.
#[derive(Clone, Default)]
pub struct Workers {
    states: Arc<Mutex<BTreeMap<&'static str, WorkerState>>>,
    backoff: Option<(Duration, Duration)>,
}

/// What a running worker uses to report its health.
#[derive(Clone)]
pub struct WorkerHandle {
    name: &'static str,
    states: Arc<Mutex<BTreeMap<&'static str, WorkerState>>>,
}

impl WorkerHandle {
    /// The worker is doing its job.
    pub fn up(&self) {
        self.set(None);
    }

    /// The worker cannot do its job now (`why`: e.g. reconnecting); a
    /// critical one makes `/readyz` answer 503 until [`up`](Self::up).
    pub fn down(&self, why: impl Into<String>) {
        self.set(Some(why.into()));
    }

    /// Whether this worker is reported up.
    pub fn is_up(&self) -> bool {
        lock(&self.states)
            .get(self.name)
            .is_some_and(|s| s.down.is_none())
    }

    fn set(&self, down: Option<String>) {
        let mut states = lock(&self.states);
        if let Some(state) = states.get_mut(self.name) {
            if state.down.is_some() != down.is_some() {
                metrics::gauge!("yixin_worker_up", "worker" => self.name).set(if down.is_none() {
                    1.0
                } else {
                    0.0
                });
                match &down {
                    None => tracing::info!(worker = self.name, "worker up"),
                    Some(why) => tracing::warn!(worker = self.name, why, "worker down"),
                }
            }
            state.down = down;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Aborts the worker's task if the supervisor itself is dropped or aborted.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Workers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restart back-off bounds (default 100 ms doubling to 5 s).
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Some((min, max));
        self
    }

    /// Runs the task `make` builds, and builds and runs it again whenever it
    /// ends or panics while `shutdown` is still false. A `critical` worker
    /// that is down or restarting makes `/readyz` answer 503. Starts up.
    pub fn supervise<F, Fut>(
        &self,
        name: &'static str,
        critical: bool,
        mut shutdown: watch::Receiver<bool>,
        make: F,
    ) -> JoinHandle<()>
    where
        F: Fn(WorkerHandle) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        lock(&self.states).insert(
            name,
            WorkerState {
                critical,
                down: None,
                restarts: 0,
            },
        );
        metrics::gauge!("yixin_worker_up", "worker" => name).set(1.0);
        metrics::counter!("yixin_worker_restarts_total", "worker" => name).increment(0);
        let handle = WorkerHandle {
            name,
            states: self.states.clone(),
        };
        let mut backoff = match self.backoff {
            Some((min, max)) => Backoff::new(min, max),
            None => Backoff::reconnect(),
        };
        tokio::spawn(async move {
            loop {
                let started = tokio::time::Instant::now();
                let task = tokio::spawn(make(handle.clone()));
                let guard = AbortOnDrop(task.abort_handle());
                let outcome = task.await;
                drop(guard);
                if *shutdown.borrow() {
                    return;
                }
                match outcome {
                    Ok(()) => tracing::error!(worker = name, "worker ended; restarting"),
                    Err(e) if e.is_panic() => {
                        tracing::error!(worker = name, "worker panicked; restarting")
                    }
                    Err(_) => tracing::error!(worker = name, "worker cancelled; restarting"),
                }
                metrics::counter!("yixin_worker_restarts_total", "worker" => name).increment(1);
                if let Some(state) = lock(&handle.states).get_mut(name) {
                    state.restarts += 1;
                }
                handle.down("restarting");
                if started.elapsed() >= HEALTHY_RUN {
                    backoff.reset();
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.changed() => return,
                }
                handle.up();
            }
        })
    }

    /// How many times `name` was restarted.
    pub fn restarts(&self, name: &str) -> u64 {
        lock(&self.states).get(name).map_or(0, |s| s.restarts)
    }

    /// The critical workers that are not up, with why.
    pub fn down(&self) -> Vec<(&'static str, String)> {
        lock(&self.states)
            .iter()
            .filter(|(_, s)| s.critical)
            .filter_map(|(name, s)| s.down.clone().map(|why| (*name, why)))
            .collect()
    }

    /// The `/readyz` check over these workers.
    pub fn readiness(&self) -> Arc<dyn ReadinessCheck> {
        Arc::new(WorkersReady(self.clone()))
    }
}

struct WorkersReady(Workers);

#[async_trait]
impl ReadinessCheck for WorkersReady {
    fn name(&self) -> &'static str {
        "workers"
    }

    async fn check(&self) -> Result<(), String> {
        let down = self.0.down();
        if down.is_empty() {
            return Ok(());
        }
        Err(down
            .iter()
            .map(|(name, why)| format!("{name} {why}"))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn fast() -> Workers {
        Workers::new().with_backoff(Duration::from_millis(10), Duration::from_millis(20))
    }

    #[tokio::test]
    async fn a_worker_that_panics_or_ends_is_restarted_and_counted() {
        let workers = fast();
        let (stop, shutdown) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let watched = shutdown.clone();
        let task = workers.supervise("flaky", true, shutdown, move |_| {
            let runs = counted.clone();
            let mut stop = watched.clone();
            async move {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    panic!("first run panics");
                }
                if n == 1 {
                    return; // second run ends
                }
                // A worker stops when told to.
                let _ = stop.changed().await;
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(tokio::time::Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(workers.restarts("flaky"), 2);
        // Up again once the third run is going.
        let ready = workers.readiness();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ready.check().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("supervisor stops on shutdown")
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_critical_worker_down_makes_readiness_fail_naming_it() {
        let workers = fast();
        let (_stop, shutdown) = watch::channel(false);
        let (report, mut reported) = tokio::sync::mpsc::unbounded_channel();
        workers.supervise("dispatcher.fleet", true, shutdown.clone(), move |h| {
            let report = report.clone();
            async move {
                let _ = report.send(h);
                std::future::pending::<()>().await;
            }
        });
        workers.supervise("optional", false, shutdown, |h| async move {
            h.down("never mind");
            std::future::pending::<()>().await;
        });
        let handle = reported.recv().await.unwrap();
        let ready = workers.readiness();
        assert_eq!(ready.check().await, Ok(()));
        handle.down("reconnecting: queue unavailable");
        let err = ready.check().await.unwrap_err();
        assert_eq!(err, "dispatcher.fleet reconnecting: queue unavailable");
        handle.up();
        assert_eq!(ready.check().await, Ok(()));
    }
}
