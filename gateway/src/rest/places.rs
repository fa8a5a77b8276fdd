//! Places for file transfers to stream, uploads and downloads from a
//! bucket each with their own: at most so many at once per process (an
//! upload holds up to a few parts of memory; a download from a bucket holds
//! a connection to it, a descriptor, for as long as its client is slow)
//! and per user (so that one user's transfers, however slowly they go,
//! cannot take every place and stall everyone else's). A transfer without
//! a place waits its turn: first for one of its user's own places, then
//! for one of the process's.
//!
//! While an upload waits, its body is not read, so to its client the
//! server looks stalled: the wait is bounded like a stalled body
//! (`limits.body_idle_timeout_ms`), and a download's wait the same, then
//! refused with a hint to retry, 429 `rate_limited` when the user's own
//! transfers held the places and 503 `unavailable` when everyone's did.
//! Refusals are counted in `chat_file_{uploads,downloads}_refused_total{by}`,
//! places held in `chat_file_{uploads,downloads}_streaming`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_protocol::{ErrorCode, Id};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ApiError;
use crate::metrics::{
    DOWNLOADS_REFUSED, DOWNLOADS_STREAMING, UPLOADS_REFUSED, UPLOADS_STREAMING, transfer_refusal,
};

/// What a 429 for too many of a user's own transfers tells the client to
/// wait: about the time one takes.
const RETRY_OWN_TRANSFER_MS: u64 = 5_000;

/// What the places are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    Uploads,
    /// Downloads from a bucket (one from a directory holds no descriptor
    /// while it waits on its client, and needs no place).
    Downloads,
}

impl Traffic {
    fn name(self) -> &'static str {
        match self {
            Traffic::Uploads => "uploads",
            Traffic::Downloads => "downloads",
        }
    }

    fn streaming(self) -> &'static prometheus::IntGauge {
        match self {
            Traffic::Uploads => &UPLOADS_STREAMING,
            Traffic::Downloads => &DOWNLOADS_STREAMING,
        }
    }

    fn refused(self, by: &str) {
        let refused = match self {
            Traffic::Uploads => &UPLOADS_REFUSED,
            Traffic::Downloads => &DOWNLOADS_REFUSED,
        };
        refused.with_label_values(&[by]).inc();
    }
}

/// The places and who waits for them.
#[derive(Debug)]
pub struct Places {
    traffic: Traffic,
    in_process: Arc<Semaphore>,
    per_user: usize,
    /// Each user with a transfer streaming or waiting, and their places.
    users: Mutex<HashMap<Id, Lane>>,
    max_wait: Duration,
}

#[derive(Debug)]
struct Lane {
    places: Arc<Semaphore>,
    /// Transfers streaming or waiting in this lane: the lane is forgotten
    /// when none is left.
    transfers: usize,
}

/// A transfer's place to stream; given back when dropped.
#[derive(Debug)]
pub struct Place {
    _in_process: OwnedSemaphorePermit,
    own: OwnPlace,
}

/// A transfer in its user's lane: waiting, or holding one of the user's
/// places.
#[derive(Debug)]
struct OwnPlace {
    places: Arc<Places>,
    user: Id,
    permit: Option<OwnedSemaphorePermit>,
}

impl Places {
    /// Places for `traffic`: `in_process` in all, `per_user` for each user
    /// (each at least 1); a transfer waits at most `max_wait` for its place.
    pub fn new(traffic: Traffic, in_process: usize, per_user: usize, max_wait: Duration) -> Places {
        Places {
            traffic,
            in_process: Arc::new(Semaphore::new(in_process.max(1))),
            per_user: per_user.max(1),
            users: Mutex::default(),
            max_wait,
        }
    }

    /// A place for a transfer of `user`, once one is free, or an error to
    /// answer if none comes within the wait.
    pub async fn wait_for_place(self: &Arc<Self>, user: Id) -> Result<Place, ApiError> {
        let deadline = Instant::now() + self.max_wait;
        let (mut own, lane) = self.join_lane(user);
        let Ok(permit) = tokio::time::timeout_at(deadline, lane.acquire_owned()).await else {
            return Err(self.own_transfers_held_the_places());
        };
        own.permit = Some(permit.map_err(|_| shutting_down())?);
        let Ok(in_process) =
            tokio::time::timeout_at(deadline, self.in_process.clone().acquire_owned()).await
        else {
            return Err(self.every_place_held());
        };
        let place = Place {
            _in_process: in_process.map_err(|_| shutting_down())?,
            own,
        };
        self.traffic.streaming().inc();
        Ok(place)
    }

    /// Enters `user`'s lane (made if it is new): the transfer's place in it,
    /// not yet held, and the lane's places to wait for.
    fn join_lane(self: &Arc<Self>, user: Id) -> (OwnPlace, Arc<Semaphore>) {
        let mut users = self.users();
        let lane = users.entry(user).or_insert_with(|| Lane {
            places: Arc::new(Semaphore::new(self.per_user)),
            transfers: 0,
        });
        lane.transfers += 1;
        let own = OwnPlace {
            places: self.clone(),
            user,
            permit: None,
        };
        (own, lane.places.clone())
    }

    fn own_transfers_held_the_places(&self) -> ApiError {
        self.traffic.refused(transfer_refusal::USER);
        let what = self.traffic.name();
        ApiError::Refused {
            code: ErrorCode::RateLimited,
            message: format!("too many of your {what} at once: wait for one to finish"),
            retry_after_ms: Some(RETRY_OWN_TRANSFER_MS),
        }
    }

    fn every_place_held(&self) -> ApiError {
        self.traffic.refused(transfer_refusal::SERVER);
        let what = self.traffic.name();
        ApiError::Unavailable(format!("too many {what} at once on this server"))
    }

    fn users(&self) -> MutexGuard<'_, HashMap<Id, Lane>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Users with a transfer streaming or waiting.
    #[cfg(test)]
    fn lanes(&self) -> usize {
        self.users().len()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.own.places.traffic.streaming().dec();
    }
}

impl Drop for OwnPlace {
    fn drop(&mut self) {
        let mut users = self.places.users();
        self.permit = None;
        if let Some(lane) = users.get_mut(&self.user) {
            lane.transfers -= 1;
            if lane.transfers == 0 {
                users.remove(&self.user);
            }
        }
    }
}

/// The semaphores are never closed; if one were, the process is stopping.
fn shutting_down() -> ApiError {
    ApiError::Unavailable("the server is shutting down".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_user_waits_behind_their_own_uploads_and_others_do_not() {
        let places = Arc::new(Places::new(Traffic::Uploads, 3, 2, Duration::from_secs(30)));
        let (alice, bob) = (Id(1), Id(2));
        let first = places.wait_for_place(alice).await.unwrap();
        let _second = places.wait_for_place(alice).await.unwrap();

        // Alice's third waits for one of her own to end; Bob's does not.
        let third = tokio::spawn({
            let places = places.clone();
            async move { places.wait_for_place(alice).await }
        });
        let _bob = places.wait_for_place(bob).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!third.is_finished());
        drop(first);
        assert!(third.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_is_bounded_and_says_whose_transfers_held_the_places() {
        let places = Arc::new(Places::new(
            Traffic::Downloads,
            2,
            1,
            Duration::from_secs(30),
        ));
        let (alice, bob, carol) = (Id(1), Id(2), Id(3));
        let _alice = places.wait_for_place(alice).await.unwrap();
        let again = places.wait_for_place(alice).await.unwrap_err();
        assert_eq!(again.code(), ErrorCode::RateLimited);
        assert!(format!("{again:?}").contains("your downloads"), "{again:?}");
        let _bob = places.wait_for_place(bob).await.unwrap();
        let carol_waited = places.wait_for_place(carol).await.unwrap_err();
        assert_eq!(carol_waited.code(), ErrorCode::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_is_forgotten_once_nothing_streams_or_waits_in_it() {
        let places = Arc::new(Places::new(Traffic::Uploads, 1, 1, Duration::from_secs(30)));
        let alice = Id(1);
        let streaming = places.wait_for_place(alice).await.unwrap();
        // A wait given up half-way (the client went away) leaves nothing.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), places.wait_for_place(alice));
        assert!(gave_up.await.is_err());
        assert!(places.wait_for_place(alice).await.is_err());
        assert_eq!(places.lanes(), 1);
        drop(streaming);
        assert_eq!(places.lanes(), 0);
        // Waiting for the process's place, then refused: nothing left.
        let _bob = places.wait_for_place(Id(2)).await.unwrap();
        assert!(places.wait_for_place(alice).await.is_err());
        assert_eq!(places.lanes(), 1);
    }
}
