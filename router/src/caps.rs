//! Caps on room creation and member adding, against a hostile client that
//! would fill the store with rooms or pull thousands of users into rooms
//! they never asked for (each add is a store write and an announcement to
//! the added user).
//!
//! Three caps: rooms a user may create per hour and members a user may add
//! per minute (token buckets in the bus's shared state, as
//! [`crate::budget`] keeps, so they hold across a cluster; 429
//! `rate_limited` with `retry_after_ms`), and members one `POST /rooms` may
//! list (400 `bad_request` naming the limit). Every refusal is counted in
//! `chat_caps_refused_total{cap}`.

use chat_bus::{Bucket, RateDecision};
use chat_protocol::Id;

use crate::limits::bus_error;
use crate::{Chat, Error, Result};

/// Metric label of the rooms-per-hour cap.
const ROOMS_PER_HOUR: &str = "rooms_per_hour";
/// Metric label of the members-per-call cap.
const MEMBERS_PER_CALL: &str = "members_per_call";
/// Metric label of the members-per-minute cap.
const MEMBERS_PER_MINUTE: &str = "members_per_minute";
/// Every cap's label, registered at zero at start.
pub(crate) const CAPS: [&str; 3] = [ROOMS_PER_HOUR, MEMBERS_PER_CALL, MEMBERS_PER_MINUTE];

impl Chat {
    /// `bad_request` naming the limit when one call adds more than
    /// `rooms.members_per_call` members.
    pub(crate) fn check_members_per_call(&self, count: usize) -> Result<()> {
        let limit = self.room_limits.members_per_call;
        if count > limit as usize {
            count_refusal(MEMBERS_PER_CALL);
            return Err(Error::bad_request(format!(
                "member_ids lists more than {limit} users (rooms.members_per_call)"
            )));
        }
        Ok(())
    }

    /// Takes one token of `user`'s room-creation bucket
    /// (`rates.rooms_created_per_hour`, also the burst).
    pub(crate) async fn charge_room_created(&self, user: Id) -> Result<()> {
        let per_hour = self.rates.rooms_created_per_hour;
        self.take_cap_token(
            &format!("caps:rooms:{user}"),
            f64::from(per_hour) / 3600.0,
            per_hour,
            ROOMS_PER_HOUR,
        )
        .await
    }

    /// Takes `count` tokens of `user`'s member-adding bucket
    /// (`rates.members_added_per_minute`, also the burst), one per member,
    /// in one bus call: all of them or none (a refused call adds nobody and
    /// costs nothing; its `retry_after_ms` says when that many are there).
    pub(crate) async fn charge_members_added(&self, user: Id, count: usize) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let per_minute = self.rates.members_added_per_minute;
        self.take_cap_tokens(
            &format!("caps:members:{user}"),
            u32::try_from(count).unwrap_or(u32::MAX),
            f64::from(per_minute) / 60.0,
            per_minute,
            MEMBERS_PER_MINUTE,
        )
        .await
    }

    /// Takes a token from the bucket `key`; `rate_limited`, counted under
    /// `cap`, when it is empty.
    async fn take_cap_token(
        &self,
        key: &str,
        per_second: f64,
        burst: u32,
        cap: &'static str,
    ) -> Result<()> {
        self.take_cap_tokens(key, 1, per_second, burst, cap).await
    }

    /// Takes `count` tokens from the bucket `key`, all or none;
    /// `rate_limited`, counted under `cap`, when fewer are there.
    async fn take_cap_tokens(
        &self,
        key: &str,
        count: u32,
        per_second: f64,
        burst: u32,
        cap: &'static str,
    ) -> Result<()> {
        let decision = self
            .bus
            .state
            .take_tokens(&Bucket::new(key, per_second, burst), count)
            .await
            .map_err(bus_error)?;
        match decision {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => {
                count_refusal(cap);
                Err(Error::RateLimited {
                    retry_after_ms: u64::try_from(retry_after.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                })
            }
        }
    }
}

fn count_refusal(cap: &'static str) {
    crate::metrics::CAPS_REFUSED.with_label_values(&[cap]).inc();
}
