//! The per-user action budget and the login limits.
//!
//! Every WebSocket action and every authenticated REST call charges one
//! token of its user's budget through [`Chat::charge_budget`], whoever
//! calls (the WebSocket session or the REST layer), so that no action is
//! free to flood: an abusive user is refused with `rate_limited` before
//! their work reaches the inbound stream, the routers or the store. Login
//! and register are limited per client address and per username
//! (`Chat::check_login_rate`) against online password guessing and
//! hashing floods. The buckets live in the bus's shared state, so the
//! limits hold across every gateway of a cluster.

use chat_bus::{Bucket, RateDecision, SharedState};
use chat_protocol::Id;

use crate::limits::bus_error;
use crate::metrics::login_limited_by;
use crate::sessions::Client;
use crate::{Chat, Error, Result};

/// Longest part of a username kept in a login-limit key: enough to tell
/// real usernames apart, bounded whatever a client sends.
const MAX_KEYED_USERNAME: usize = 64;

impl Chat {
    /// Takes one token of `user`'s action budget for `action` (its protocol
    /// name, for the metric); `rate_limited` when the budget is spent.
    /// A WebSocket `send` is not charged here but by its router, with its
    /// send rate, in one call per batch ([`Chat::admit_sends`]).
    pub async fn charge_budget(&self, user: Id, action: &'static str) -> Result<()> {
        let decision = self
            .bus
            .state
            .take_token(&self.budget_bucket(user))
            .await
            .map_err(bus_error)?;
        refuse_if_limited(decision, || {
            crate::metrics::BUDGET_REFUSED
                .with_label_values(&[action])
                .inc();
        })
    }

    /// Takes one token of `user`'s action budget in this process only, for
    /// a WebSocket `send`: its router charges the budget cluster-wide (with
    /// the send rate, a batch at a time), and this check with the same
    /// numbers stops a flood at the gateway, before the inbound stream.
    pub async fn charge_budget_here(&self, user: Id) -> Result<()> {
        let decision = self
            .gate
            .take_token(&self.budget_bucket(user))
            .await
            .map_err(bus_error)?;
        refuse_if_limited(decision, || {
            crate::metrics::BUDGET_REFUSED
                .with_label_values(&[crate::metrics::action::SEND])
                .inc();
        })
    }

    /// The bucket of `user`'s action budget: a lane of their limits' key
    /// ([`limits_key`]), beside their send rate.
    pub(crate) fn budget_bucket(&self, user: Id) -> Bucket {
        Bucket::lane(
            limits_key(user),
            "budget",
            self.rates.actions_per_second,
            self.rates.action_burst,
        )
    }

    /// `rate_limited` when `client`'s address or `username` has tried to
    /// log in or register too often. Every attempt counts, good or bad:
    /// each costs a password hash.
    pub(crate) async fn check_login_rate(&self, client: &Client, username: &str) -> Result<()> {
        if let Some(ip) = &client.ip {
            let limit = self.rates.login_per_address_per_minute;
            self.take_login_token(
                &format!("login:addr:{ip}"),
                limit,
                login_limited_by::ADDRESS,
            )
            .await?;
        }
        let name: String = username
            .chars()
            .take(MAX_KEYED_USERNAME)
            .flat_map(char::to_lowercase)
            .collect();
        let limit = self.rates.login_per_username_per_minute;
        self.take_login_token(
            &format!("login:user:{name}"),
            limit,
            login_limited_by::USERNAME,
        )
        .await
    }

    /// Takes a token from the login bucket `key` (`per_minute` a minute, as
    /// many in a burst); `rate_limited`, counted under `by`, when empty.
    async fn take_login_token(&self, key: &str, per_minute: u32, by: &str) -> Result<()> {
        let bucket = Bucket::new(key, f64::from(per_minute) / 60.0, per_minute);
        let decision = self
            .bus
            .state
            .take_token(&bucket)
            .await
            .map_err(bus_error)?;
        refuse_if_limited(decision, || {
            crate::metrics::LOGIN_LIMITED.with_label_values(&[by]).inc();
        })
    }
}

/// The key of `user`'s per-user limits: the action budget and the send
/// rate are lanes of it, so that a `send`, which takes from both, writes
/// one key ([`chat_bus::Bucket`]).
pub(crate) fn limits_key(user: Id) -> String {
    format!("limits:{user}")
}

/// `rate_limited` with the bucket's wait when `decision` says so (after
/// counting it with `count`).
fn refuse_if_limited(decision: RateDecision, count: impl FnOnce()) -> Result<()> {
    match decision {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after } => {
            count();
            Err(Error::RateLimited {
                retry_after_ms: retry_after.as_millis().max(1) as u64,
            })
        }
    }
}
