//! Forwarding actions to the routers and routing their answers back.
//!
//! Every action leaves with an [`Origin`] naming this gateway and a request
//! number; answers arrive on this gateway's reply channel. A REST call waits
//! for its answer here; answers for WebSocket connections are handed to the
//! hub, which turns them into `ack` and `error` frames.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_bus::{Bus, names, partitions};
use chat_protocol::frames::ClientAction;
use chat_protocol::internal::{Inbound, MemberAction, Origin, Outcome, Reply, Work};
use chat_protocol::{Id, Message};
use tokio::sync::oneshot;

use crate::ApiError;

/// Most REST calls waiting for an answer at once; more are refused with
/// `unavailable` rather than queued without bound.
const MAX_WAITING: usize = 10_000;

/// This gateway's side of the inbound stream and the reply channel.
pub struct Relay {
    gateway: String,
    bus: Bus,
    next_request: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    reply_timeout: Duration,
    /// How many partitions the inbound stream has.
    partitions: u16,
}

impl Relay {
    /// A relay for the gateway named `gateway`, forwarding to an inbound
    /// stream of `partitions` partitions.
    pub fn new(gateway: String, bus: Bus, reply_timeout: Duration, partitions: u16) -> Relay {
        Relay {
            gateway,
            bus,
            next_request: AtomicU64::new(1),
            waiting: Mutex::default(),
            reply_timeout,
            partitions: partitions.max(1),
        }
    }

    /// How long an answer to this gateway may take before its caller gives
    /// up (`realtime.reply_timeout_ms`).
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout
    }

    /// This gateway's name.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The cluster-wide name of one of this gateway's connections (for
    /// presence).
    pub fn connection_key(&self, connection: u64) -> String {
        format!("{}:{connection}", self.gateway)
    }

    /// The channel on which this gateway hears answers.
    pub fn reply_channel(&self) -> String {
        names::gateway_channel(&self.gateway)
    }

    /// A fresh origin for an action of a connection (or of a REST call),
    /// carrying the current span's trace context to the roles downstream.
    pub fn origin(&self, connection: Option<u64>, reference: Option<String>) -> Origin {
        Origin {
            gateway: self.gateway.clone(),
            request: self.next_request.fetch_add(1, Ordering::Relaxed),
            connection,
            reference,
            trace: chat_bus::trace::current(),
            hears_room: false,
        }
    }

    /// Appends an action to its partition of the inbound stream (its
    /// room's, see [`Inbound::partition_key`]), so that the actions of one
    /// room, and so those of one connection in it, keep their order.
    pub async fn forward(&self, user: Id, work: Work, origin: Origin) -> Result<(), ApiError> {
        let inbound = Inbound { origin, user, work };
        let partition = partitions::partition_of(&inbound.partition_key(), self.partitions);
        self.bus
            .append(
                &partitions::stream(names::INBOUND_STREAM, partition),
                &inbound,
            )
            .await
            .map(|_| ())
            .map_err(|error| ApiError::Unavailable(error.to_string()))
    }

    /// Forwards an action and waits for its answer (REST): the message a
    /// `send` posted, nothing for an action that is done, and a refusal as
    /// the error the REST caller gets.
    pub async fn call(&self, user: Id, work: Work) -> Result<Option<Message>, ApiError> {
        let origin = self.origin(None, None);
        let request = origin.request;
        let (sender, answer) = oneshot::channel();
        {
            let mut waiting = self.waiting();
            if waiting.len() >= MAX_WAITING {
                crate::metrics::CAP_REFUSALS
                    .with_label_values(&[crate::metrics::fixed_cap::REQUESTS_IN_FLIGHT])
                    .inc();
                return Err(ApiError::Unavailable("too many requests in flight".into()));
            }
            waiting.insert(request, sender);
        }
        // Gone however the call ends, its future dropped (the client hung
        // up) included: an answer that never comes must not hold a place.
        let _waiting = Waiting {
            relay: self,
            request,
        };
        let outcome = async {
            self.forward(user, work, origin).await?;
            tokio::time::timeout(self.reply_timeout, answer)
                .await
                .map_err(|_| {
                    ApiError::Unavailable("no answer in time; retry with the same client_id".into())
                })?
                .map_err(|_| ApiError::Unavailable("the answer was lost".into()))
        }
        .await;
        match outcome? {
            Outcome::Posted(message) => Ok(Some(message)),
            Outcome::Done => Ok(None),
            Outcome::Failed {
                code,
                message,
                retry_after_ms,
                ..
            } => Err(ApiError::Refused {
                code,
                message,
                retry_after_ms,
            }),
        }
    }

    /// Forwards an action that answers nothing but done or refused (REST
    /// `join`, `leave`, `read`), the same way a WebSocket action goes, and
    /// turns a refusal into the error the REST caller gets.
    pub async fn call_action(&self, user: Id, action: ClientAction) -> Result<(), ApiError> {
        self.call_done(user, Work::Client(action)).await
    }

    /// Forwards a room or membership action that only REST offers (create
    /// a room, add, kick, open a DM) to the routers, like
    /// [`Relay::call_action`].
    pub async fn call_member(&self, user: Id, action: MemberAction) -> Result<(), ApiError> {
        self.call_done(user, Work::Member(action)).await
    }

    /// Forwards work that is answered done or refused, and waits.
    async fn call_done(&self, user: Id, work: Work) -> Result<(), ApiError> {
        match self.call(user, work).await? {
            None => Ok(()),
            Some(_) => Err(ApiError::Internal(
                "an action was answered with a message".into(),
            )),
        }
    }

    /// Hands an answer to the REST call waiting for it; answers it back when
    /// nobody here waits (it belongs to a WebSocket connection).
    pub fn complete(&self, reply: Reply) -> Option<Reply> {
        if reply.origin.connection.is_some() {
            return Some(reply);
        }
        if let Some(waiter) = self.waiting().remove(&reply.origin.request) {
            // The caller may have timed out and gone; nothing to do then.
            let _ = waiter.send(reply.outcome);
        }
        None
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A REST call's place among those waiting for an answer, given up when
/// dropped.
struct Waiting<'a> {
    relay: &'a Relay,
    request: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.relay.waiting().remove(&self.request);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A REST call whose future is dropped before its answer comes (the
    /// client hung up) gives its place back: answers that never come must
    /// not fill the places one by one until every call is refused.
    #[tokio::test]
    async fn a_call_given_up_leaves_no_place_behind() {
        // Nothing reads the inbound stream: no answer ever comes.
        let relay = Arc::new(Relay::new(
            "gw-test".into(),
            Bus::local(16),
            Duration::from_secs(60),
            1,
        ));
        let calling = tokio::spawn({
            let relay = Arc::clone(&relay);
            async move {
                let connected = Work::Connected {
                    connection: "c1".into(),
                };
                relay.call(Id(1), connected).await
            }
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            while relay.waiting().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the call waits for its answer");
        calling.abort();
        assert!(calling.await.is_err_and(|error| error.is_cancelled()));
        assert!(relay.waiting().is_empty());
    }
}
