//! The router crate's roles as units: [`start`] runs the router (the
//! consumer of the inbound stream, [`worker`](crate::worker), and the
//! presence sweep); [`start_writer`] runs the persistence writer
//! ([`writer`](crate::writer), the `persist` role). The [`RoleHandle`] each
//! answers stops it after draining the partitions it holds (the writer
//! also flushes its batch).

use std::sync::Arc;

use chat_bus::Bus;
use chat_persistence::Store;
use chat_shutdown::{RoleHandle, Supervisor};

use crate::Chat;
use crate::worker::RouterOptions;
use crate::writer::WorkerOptions;

/// Starts a router in the routers' group.
pub fn start(supervisor: &Supervisor, chat: Chat, options: RouterOptions) -> RoleHandle {
    let role = supervisor.role("router");
    role.spawn_until_stopped("presence sweep", sweep_presence(chat.clone()));
    let stopping = role.stopping();
    role.spawn(
        "inbound consumer",
        crate::worker::run(chat, options, stopping),
    );
    role
}

/// Starts a persistence writer storing to `store`.
pub fn start_writer(
    supervisor: &Supervisor,
    store: Arc<dyn Store>,
    bus: Bus,
    options: WorkerOptions,
) -> RoleHandle {
    let role = supervisor.role("persist");
    let stopping = role.stopping();
    role.spawn("writer", crate::writer::run(store, bus, options, stopping));
    role
}

/// Announces offline the users of connections that expired (their gateway
/// died). Every router sweeps; the shared state answers each user once.
async fn sweep_presence(chat: Chat) {
    let mut every = tokio::time::interval(chat.presence_ttl() / 4);
    loop {
        every.tick().await;
        if let Err(error) = chat.expire_presence().await {
            tracing::warn!(%error, "presence sweep failed");
        }
    }
}
