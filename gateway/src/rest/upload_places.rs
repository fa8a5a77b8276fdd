//! Places for uploads to stream: at most so many at once per process (each
//! holds up to a few parts of memory) and per user (so that one user's
//! uploads, however slowly they are sent, cannot take every place and
//! stall everyone else's). An upload without a place waits its turn: first
//! for one of its user's own places, then for one of the process's.
//!
//! While an upload waits, its body is not read, so to its client the server
//! looks stalled: the wait is bounded like a stalled body
//! (`limits.body_idle_timeout_ms`) and then refused with a hint to retry,
//! 429 `rate_limited` when the user's own uploads held the places and 503
//! `unavailable` when everyone's did. Refusals are counted in
//! `chat_file_uploads_refused_total{by}`, places held in
//! `chat_file_uploads_streaming`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_protocol::{ErrorCode, Id};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ApiError;
use crate::metrics::{UPLOADS_REFUSED, UPLOADS_STREAMING, upload_refusal};

/// What a 429 for too many of a user's own uploads tells the client to
/// wait: about the time one upload takes.
const RETRY_OWN_UPLOAD_MS: u64 = 5_000;

/// The places and who waits for them.
#[derive(Debug)]
pub struct UploadPlaces {
    in_process: Arc<Semaphore>,
    per_user: usize,
    /// Each user with an upload streaming or waiting, and their places.
    users: Mutex<HashMap<Id, Lane>>,
    max_wait: Duration,
}

#[derive(Debug)]
struct Lane {
    places: Arc<Semaphore>,
    /// Uploads streaming or waiting in this lane: the lane is forgotten
    /// when none is left.
    uploads: usize,
}

/// An upload's place to stream; given back when dropped.
#[derive(Debug)]
pub struct Place {
    _in_process: OwnedSemaphorePermit,
    _own: OwnPlace,
}

/// An upload in its user's lane: waiting, or holding one of the user's
/// places.
#[derive(Debug)]
struct OwnPlace {
    places: Arc<UploadPlaces>,
    user: Id,
    permit: Option<OwnedSemaphorePermit>,
}

impl UploadPlaces {
    /// `in_process` places in all, `per_user` for each user (each at least
    /// 1); an upload waits at most `max_wait` for its place.
    pub fn new(in_process: usize, per_user: usize, max_wait: Duration) -> UploadPlaces {
        UploadPlaces {
            in_process: Arc::new(Semaphore::new(in_process.max(1))),
            per_user: per_user.max(1),
            users: Mutex::default(),
            max_wait,
        }
    }

    /// A place for an upload of `user`, once one is free, or an error to
    /// answer if none comes within the wait.
    pub async fn wait_for_place(self: &Arc<Self>, user: Id) -> Result<Place, ApiError> {
        let deadline = Instant::now() + self.max_wait;
        let (mut own, lane) = self.join_lane(user);
        let Ok(permit) = tokio::time::timeout_at(deadline, lane.acquire_owned()).await else {
            return Err(own_uploads_held_the_places());
        };
        own.permit = Some(permit.map_err(|_| shutting_down())?);
        let Ok(in_process) =
            tokio::time::timeout_at(deadline, self.in_process.clone().acquire_owned()).await
        else {
            return Err(every_place_held());
        };
        let place = Place {
            _in_process: in_process.map_err(|_| shutting_down())?,
            _own: own,
        };
        UPLOADS_STREAMING.inc();
        Ok(place)
    }

    /// Enters `user`'s lane (made if it is new): the upload's place in it,
    /// not yet held, and the lane's places to wait for.
    fn join_lane(self: &Arc<Self>, user: Id) -> (OwnPlace, Arc<Semaphore>) {
        let mut users = self.users();
        let lane = users.entry(user).or_insert_with(|| Lane {
            places: Arc::new(Semaphore::new(self.per_user)),
            uploads: 0,
        });
        lane.uploads += 1;
        let own = OwnPlace {
            places: self.clone(),
            user,
            permit: None,
        };
        (own, lane.places.clone())
    }

    fn users(&self) -> MutexGuard<'_, HashMap<Id, Lane>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Users with an upload streaming or waiting.
    #[cfg(test)]
    fn lanes(&self) -> usize {
        self.users().len()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        UPLOADS_STREAMING.dec();
    }
}

impl Drop for OwnPlace {
    fn drop(&mut self) {
        let mut users = self.places.users();
        self.permit = None;
        if let Some(lane) = users.get_mut(&self.user) {
            lane.uploads -= 1;
            if lane.uploads == 0 {
                users.remove(&self.user);
            }
        }
    }
}

fn own_uploads_held_the_places() -> ApiError {
    UPLOADS_REFUSED
        .with_label_values(&[upload_refusal::USER])
        .inc();
    ApiError::Refused {
        code: ErrorCode::RateLimited,
        message: "too many of your uploads at once: wait for one to finish".into(),
        retry_after_ms: Some(RETRY_OWN_UPLOAD_MS),
    }
}

fn every_place_held() -> ApiError {
    UPLOADS_REFUSED
        .with_label_values(&[upload_refusal::SERVER])
        .inc();
    ApiError::Unavailable("too many uploads at once on this server".into())
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
        let places = Arc::new(UploadPlaces::new(3, 2, Duration::from_secs(30)));
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
    async fn a_wait_is_bounded_and_says_whose_uploads_held_the_places() {
        let places = Arc::new(UploadPlaces::new(2, 1, Duration::from_secs(30)));
        let (alice, bob, carol) = (Id(1), Id(2), Id(3));
        let _alice = places.wait_for_place(alice).await.unwrap();
        let again = places.wait_for_place(alice).await.unwrap_err();
        assert_eq!(again.code(), ErrorCode::RateLimited);
        let _bob = places.wait_for_place(bob).await.unwrap();
        let carol_waited = places.wait_for_place(carol).await.unwrap_err();
        assert_eq!(carol_waited.code(), ErrorCode::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_is_forgotten_once_nothing_streams_or_waits_in_it() {
        let places = Arc::new(UploadPlaces::new(1, 1, Duration::from_secs(30)));
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
