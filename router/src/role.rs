//! The router role as a unit: [`start`] runs the consumer of the inbound
//! stream ([`worker`](crate::worker)) and the presence sweep; the
//! [`RoleHandle`] it answers stops them, the consumer after draining the
//! partitions it holds.

use std::time::Duration;

use chat_shutdown::{RoleHandle, Supervisor};

use crate::Chat;

/// Starts a router named `consumer` in the routers' group, holding its
/// partitions with leases of `lease`.
pub fn start(supervisor: &Supervisor, chat: Chat, consumer: String, lease: Duration) -> RoleHandle {
    let role = supervisor.role("router");
    role.spawn_until_stopped("presence sweep", sweep_presence(chat.clone()));
    let stopping = role.stopping();
    role.spawn(
        "inbound consumer",
        crate::worker::run(chat, consumer, lease, stopping),
    );
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
