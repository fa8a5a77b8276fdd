//! Rate limits and `client_id` idempotency, both kept in the bus's shared
//! state so that they hold across every router of a cluster.

use std::time::Duration;

use chat_bus::{Bucket, Claim, RateDecision};
use chat_protocol::limits::IDEMPOTENCY_WINDOW_MS;
use chat_protocol::{Id, Message, RoomId};
use serde::{Deserialize, Serialize};

use crate::{Chat, Error, Result};

/// How fast a user may act.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Sustained `send`s per second per user.
    pub send_per_second: f64,
    /// `send`s a user may make in a burst.
    pub send_burst: u32,
    /// Least time between two `typing` frames of a user in a room, in
    /// milliseconds; more are dropped silently.
    pub typing_interval_ms: u64,
    /// Sustained actions per second per user, of every kind (WebSocket
    /// frames and authenticated REST calls): the action budget.
    pub actions_per_second: f64,
    /// Actions a user may make in a burst.
    pub action_burst: u32,
    /// Login and register attempts per minute from one client address
    /// (also the burst).
    pub login_per_address_per_minute: u32,
    /// Login and register attempts per minute for one username (also the
    /// burst).
    pub login_per_username_per_minute: u32,
    /// Group rooms a user may create per hour (also the burst).
    pub rooms_created_per_hour: u32,
    /// Members a user may add to rooms per minute, by `POST /rooms`
    /// `member_ids` and by adds (also the burst).
    pub members_added_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            send_per_second: 10.0,
            send_burst: 20,
            typing_interval_ms: 2000,
            actions_per_second: 30.0,
            action_burst: 200,
            login_per_address_per_minute: 100,
            login_per_username_per_minute: 10,
            rooms_created_per_hour: 50,
            members_added_per_minute: 200,
        }
    }
}

/// Where a `client_id` was first used.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FirstUse {
    pub room_id: RoomId,
    pub message_id: Id,
}

impl Chat {
    /// The bucket of `user`'s send rate: a lane of their limits' key,
    /// beside their action budget, which every WebSocket `send` also
    /// charges.
    pub(crate) fn send_bucket(&self, user: Id) -> Bucket {
        Bucket::lane(
            crate::budget::limits_key(user),
            "send",
            self.rates.send_per_second,
            self.rates.send_burst,
        )
    }

    /// Whether a `typing` of `user` in `room` may go out now.
    pub(crate) async fn typing_allowed(&self, user: Id, room: &RoomId) -> Result<bool> {
        let per_second = 1000.0 / self.rates.typing_interval_ms.max(1) as f64;
        let bucket = Bucket::new(format!("rate:typing:{user}:{room}"), per_second, 1);
        let decision = self
            .bus
            .state
            .take_token(&bucket)
            .await
            .map_err(bus_error)?;
        if decision != RateDecision::Allowed {
            crate::metrics::RATE_LIMITED
                .with_label_values(&[crate::metrics::action::TYPING])
                .inc();
            return Ok(false);
        }
        Ok(true)
    }

    /// The claim of `key` by `user` for `message_id` in `room_id`, kept for
    /// as long as the key needs it ([`SendKey`]); a later claim of the same
    /// key answers this first use.
    pub(crate) fn send_claim(
        &self,
        user: Id,
        key: &SendKey,
        room_id: RoomId,
        message_id: Id,
    ) -> Result<Claim> {
        let value = chat_protocol::internal::encode(&FirstUse {
            room_id,
            message_id,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Claim {
            key: key.state_key(user),
            value: value.into(),
            ttl: key.kept_for(),
        })
    }

    /// Points the claim of `client_id`, just made for a new message, at
    /// `stored`, the message the store says it was first used for (the
    /// shared state had forgotten it): a later retry must find the
    /// original, not the id of a message never stored. The claim lives as
    /// long as the original's window has left.
    pub(crate) async fn repoint_client_id(&self, user: Id, client_id: &str, stored: &Message) {
        let ran = self.now_ms().saturating_sub(stored.created_at);
        let left = IDEMPOTENCY_WINDOW_MS.saturating_sub(ran).max(1);
        let key = SendKey::ClientId(client_id.to_owned());
        let claim = match self.send_claim(user, &key, stored.room_id, stored.id) {
            Ok(claim) => claim,
            Err(error) => {
                tracing::warn!(%error, "could not encode a client_id claim");
                return;
            }
        };
        let state = &self.bus.state;
        let repointed = match state.remove(&claim.key).await {
            Ok(()) => state
                .put_if_absent(&claim.key, claim.value, Duration::from_millis(left))
                .await
                .map(drop),
            Err(error) => Err(error),
        };
        if let Err(error) = repointed {
            tracing::warn!(%error, "could not point a client_id at its stored message");
        }
    }

    /// Gives back the claim of `key` by `user` (the message it was
    /// claimed for was never accepted).
    pub(crate) async fn release_claim(&self, user: Id, key: &SendKey) {
        if let Err(error) = self.bus.state.remove(&key.state_key(user)).await {
            tracing::warn!(%error, "could not release a send's claim");
        }
    }
}

/// What a send is claimed by, so that it is posted once however often it
/// is handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendKey {
    /// The client's `client_id`: a retry by the client is answered with
    /// the original, within the idempotency window.
    ClientId(String),
    /// For a send without a `client_id`, the work-stream entry that
    /// carried it (`<partition>:<entry id>`): a router that takes over a
    /// partition handles again what its predecessor handled but had not
    /// acknowledged yet (`chat_bus::consumer`), and must not post it a
    /// second time. Kept for [`ENTRY_CLAIM`].
    Entry(String),
}

/// How long the claim of a send by its work-stream entry is kept: far
/// longer than a partition's lease (10 s by default), after which a dead
/// router's entries are handled again.
const ENTRY_CLAIM: Duration = Duration::from_secs(120);

impl SendKey {
    /// The send's key in the shared state; the two kinds never meet.
    fn state_key(&self, user: Id) -> String {
        match self {
            SendKey::ClientId(client_id) => format!("cid:{user}:{client_id}"),
            SendKey::Entry(entry) => format!("eid:{user}:{entry}"),
        }
    }

    /// How long its claim is kept.
    fn kept_for(&self) -> Duration {
        match self {
            SendKey::ClientId(_) => Duration::from_millis(IDEMPOTENCY_WINDOW_MS),
            SendKey::Entry(_) => ENTRY_CLAIM,
        }
    }
}

pub(crate) fn bus_error(error: chat_bus::BusError) -> Error {
    Error::Unavailable(error.to_string())
}
