//! The persistence role as a unit: [`start`] runs the persistence worker
//! ([`worker`](crate::worker)); the [`RoleHandle`] it answers stops it once
//! it has drained its partitions of the persist stream and flushed its
//! batch.

use std::sync::Arc;

use chat_bus::Bus;
use chat_shutdown::{RoleHandle, Supervisor};

use crate::Store;
use crate::worker::WorkerOptions;

/// Starts a persistence worker writing to `store`.
pub fn start(
    supervisor: &Supervisor,
    store: Arc<dyn Store>,
    bus: Bus,
    options: WorkerOptions,
) -> RoleHandle {
    let role = supervisor.role("persist");
    let stopping = role.stopping_watch();
    role.spawn("writer", crate::worker::run(store, bus, options, stopping));
    role
}
