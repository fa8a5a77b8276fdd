//! Starting and stopping the roles of a process.
//!
//! A process runs one or more roles (gateway, router, persistence writer).
//! Each role's start function answers a [`RoleHandle`]: the role's tasks are
//! spawned through it, so the handle owns them. [`RoleHandle::shutdown`]
//! asks them to finish (each drains what it holds: WebSockets closed with
//! 1012, streams read empty, batches flushed) and [`RoleHandle::join`]
//! waits until they have; no polling, no `abort()`.
//!
//! The [`Supervisor`] is the process's one view of its roles' health: a
//! role task that panics (or ends while its role is still meant to run) is
//! logged with its role and task name and marks the process failed, so that
//! `/readyz` answers 503 and the process stops and exits non-zero instead of
//! running on without the role. A supervisor (Kubernetes, systemd) then
//! restarts it whole.
//!
//! Built on tokio-util's [`CancellationToken`] (the stop signal, cheap to
//! clone into every task) and [`TaskTracker`] (knows when every task it
//! spawned has ended).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The process-wide record of whether a role has failed. Cheap to clone;
/// clones share it.
#[derive(Clone, Debug, Default)]
pub struct Supervisor {
    failed: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// A handle for a role about to start, named `role` in logs.
    pub fn role(&self, role: &'static str) -> RoleHandle {
        RoleHandle {
            role,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            supervisor: self.clone(),
        }
    }

    /// Marks the process failed: it is no longer ready and should stop.
    /// The first reason is kept.
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        match self.reason.get() {
            None => {
                tracing::error!(%reason, "a role failed; the process is not ready and will exit")
            }
            // Often a consequence of the first (a task whose peer is gone).
            Some(_) => tracing::warn!(%reason, "another role task failed"),
        }
        let _ = self.reason.set(reason);
        self.failed.cancel();
    }

    /// Why the process failed, if it has.
    pub fn failure(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// Resolves once the process has failed, with the reason.
    pub async fn failed(&self) -> String {
        self.failed.cancelled().await;
        self.failure().unwrap_or("a role failed").to_owned()
    }
}

/// One role's tasks and their stop signal. Dropping the handle does not
/// stop them (they run until the runtime ends): call
/// [`RoleHandle::shutdown`], then [`RoleHandle::join`].
#[derive(Debug)]
pub struct RoleHandle {
    role: &'static str,
    stop: CancellationToken,
    tasks: TaskTracker,
    supervisor: Supervisor,
}

impl RoleHandle {
    /// The role's name.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The role's stop signal, for tasks that drain when it fires.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// The process's supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Runs `task` (named `name` in logs) as part of this role, until it
    /// ends by itself; it should watch [`RoleHandle::stopping`] and drain.
    /// If it panics, or ends before the role is stopped, the process fails.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (role, stop, supervisor) = (self.role, self.stop.clone(), self.supervisor.clone());
        let task = test_panic::inject(role, name, task);
        self.tasks.spawn(async move {
            match AssertUnwindSafe(task).catch_unwind().await {
                Ok(()) if stop.is_cancelled() => {}
                Ok(()) => supervisor.fail(format!("{role} task {name} ended unexpectedly")),
                Err(panic) => {
                    let message = panic_message(&*panic);
                    supervisor.fail(format!("{role} task {name} panicked: {message}"));
                }
            }
        });
    }

    /// Runs `task` as part of this role until the role is stopped, then
    /// drops it: for loops that hold nothing worth draining (sweeps,
    /// refreshes), which are safe to cut short between two awaits.
    pub fn spawn_until_stopped<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.spawn(name, async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Asks the role to stop: its tasks drain and end. Returns at once.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until every task of the role has ended.
    pub async fn join(self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The text of a panic's payload, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Test-only: makes one role task panic, so that tests can see the process
/// fail as it would on a real bug. Compiled only into debug builds (the
/// test suite's); release builds ignore the variable.
mod test_panic {
    use std::future::Future;

    /// `<role>/<task>`: the task that panics, one second after it starts.
    #[cfg(debug_assertions)]
    pub const VARIABLE: &str = "CHATD_TEST_PANIC_TASK";

    #[cfg(debug_assertions)]
    pub fn inject<F>(role: &str, name: &str, task: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let doomed = std::env::var(VARIABLE).is_ok_and(|wanted| wanted == format!("{role}/{name}"));
        async move {
            if !doomed {
                return task.await;
            }
            tokio::select! {
                () = task => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            panic!("test-only panic requested by {VARIABLE}");
        }
    }

    #[cfg(not(debug_assertions))]
    pub fn inject<F>(_role: &str, _name: &str, task: F) -> F
    where
        F: Future<Output = ()> + Send + 'static,
    {
        task
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn join_waits_for_draining_tasks() {
        let supervisor = Supervisor::new();
        let role = supervisor.role("test");
        let stop = role.stopping();
        let (drained, mut seen) = tokio::sync::oneshot::channel();
        role.spawn("drainer", async move {
            stop.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = drained.send(());
        });
        role.spawn_until_stopped("looper", std::future::pending());
        assert!(seen.try_recv().is_err());
        role.shutdown();
        role.join().await;
        assert!(seen.try_recv().is_ok(), "join returned before the drain");
        assert!(supervisor.failure().is_none());
    }

    #[tokio::test]
    async fn a_panicking_task_fails_the_process_with_its_name() {
        let supervisor = Supervisor::new();
        let role = supervisor.role("router");
        role.spawn("consumer", async { panic!("boom") });
        let reason = tokio::time::timeout(Duration::from_secs(5), supervisor.failed())
            .await
            .expect("failure reported");
        assert!(
            reason.contains("router task consumer panicked: boom"),
            "{reason}"
        );
        role.shutdown();
        role.join().await;
    }

    #[tokio::test]
    async fn a_task_ending_before_its_role_stops_fails_the_process() {
        let supervisor = Supervisor::new();
        let role = supervisor.role("gateway");
        role.spawn("dispatcher", async {});
        let reason = tokio::time::timeout(Duration::from_secs(5), supervisor.failed())
            .await
            .expect("failure reported");
        assert!(reason.contains("gateway task dispatcher ended unexpectedly"));
    }
}
