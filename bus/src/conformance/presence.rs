//! Cases: presence in [`SharedState`](crate::SharedState), a user online
//! from their first live connection to their last, transitions answered
//! once, connections kept alive in batches and expired once.

use std::time::Duration;

use super::helpers::{concurrently, only_mine, unique};
use crate::{Bus, SharedState};

/// Presence: a user is online while they have a live connection;
/// [`SharedState::connection_opened`] answers `true` only for the first
/// one (opening one again does not), and
/// [`SharedState::connection_closed`] only for the last one (closing twice
/// does not).
pub async fn presence_turns_on_with_the_first_connection_and_off_with_the_last(
    state: &dyn SharedState,
) {
    let [u, v] = ["u", "v"].map(unique);
    let ttl = Duration::from_secs(60);
    assert!(state.connection_opened(&u, "c1", ttl).await.unwrap());
    assert!(!state.connection_opened(&u, "c2", ttl).await.unwrap());
    assert!(!state.connection_opened(&u, "c2", ttl).await.unwrap());
    assert_eq!(
        state.online(&[u.clone(), v.clone()]).await.unwrap(),
        [true, false]
    );
    assert!(!state.connection_closed(&u, "c1").await.unwrap());
    assert!(
        !state.connection_closed(&u, "c1").await.unwrap(),
        "closing twice"
    );
    assert!(state.connection_closed(&u, "c2").await.unwrap());
    assert!(!state.connection_closed(&u, "c2").await.unwrap());
    assert_eq!(
        state.online(std::slice::from_ref(&u)).await.unwrap(),
        [false]
    );
    assert!(state.online(&[]).await.unwrap().is_empty());
}

/// Each presence transition is answered once, to one caller, however many
/// processes open and close a user's connections concurrently; closed
/// connections are never reported by an expiry sweep.
pub async fn presence_transitions_are_answered_once_under_concurrency(one: &Bus, other: &Bus) {
    let ttl = Duration::from_secs(60);
    let users: Vec<String> = (0..5).map(|_| unique("user")).collect();
    for user in &users {
        let opened = concurrently(one, other, 20, |state, c| {
            let user = user.clone();
            async move {
                let connection = format!("conn{c}");
                state
                    .connection_opened(&user, &connection, ttl)
                    .await
                    .unwrap()
            }
        })
        .await;
        let online = opened.iter().filter(|made_online| **made_online).count();
        assert_eq!(online, 1, "one online transition");
        let closed = concurrently(one, other, 20, |state, c| {
            let user = user.clone();
            async move {
                let connection = format!("conn{c}");
                state.connection_closed(&user, &connection).await.unwrap()
            }
        })
        .await;
        let offline = closed.iter().filter(|made_offline| **made_offline).count();
        assert_eq!(offline, 1, "one offline transition");
    }
    let mine: Vec<&String> = users.iter().collect();
    assert!(
        only_mine(one.state.expired_connections(100).await.unwrap(), &mine).is_empty(),
        "closed connections never expire"
    );
}

/// One [`SharedState::connections_alive`] call keeps alive every live
/// connection it names, of many users and of one user with hundreds of
/// connections (more than one Redis script takes), and neither revives an
/// expired connection nor creates one that was never opened.
pub async fn many_connections_are_kept_alive_in_one_call(state: &dyn SharedState) {
    let [busy, gone, never] = ["busy", "gone", "never"].map(unique);
    let others: Vec<String> = (0..40).map(|i| unique(&format!("other{i}"))).collect();
    let short = Duration::from_millis(100);
    let brief = Duration::from_secs(2);
    let long = Duration::from_secs(60);
    assert!(state.connection_opened(&gone, "g1-1", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut batch = vec![(gone.clone(), "g1-1".to_string())];
    for i in 0..600 {
        let connection = format!("g1-{i}");
        state
            .connection_opened(&busy, &connection, brief)
            .await
            .unwrap();
        batch.push((busy.clone(), connection));
    }
    for user in &others {
        assert!(state.connection_opened(user, "g2-1", brief).await.unwrap());
        batch.push((user.clone(), "g2-1".to_string()));
    }
    batch.push((never.clone(), "g3-1".to_string()));
    let not_live = state.connections_alive(&batch, long).await.unwrap();
    assert_eq!(
        not_live,
        [0, batch.len() - 1],
        "gone and never reported, to be opened again"
    );
    tokio::time::sleep(brief + Duration::from_millis(200)).await;

    let mut users = vec![busy.clone(), gone.clone(), never.clone()];
    users.extend(others.iter().cloned());
    let online = state.online(&users).await.unwrap();
    assert_eq!(
        &online[..3],
        [true, false, false],
        "busy kept alive; gone not revived; never not created"
    );
    assert!(
        online[3..].iter().all(|live| *live),
        "every other user kept alive: {online:?}"
    );
    // The sweep reports only the expired connection's user, and the busy
    // user's connections all outlived their first life.
    let mut mine = vec![&busy, &gone, &never];
    mine.extend(others.iter());
    let mut expired = Vec::new();
    for _ in 0..20 {
        expired.extend(only_mine(
            state.expired_connections(1000).await.unwrap(),
            &mine,
        ));
    }
    assert_eq!(expired, std::slice::from_ref(&gone));
    for i in 0..600 {
        state
            .connection_closed(&busy, &format!("g1-{i}"))
            .await
            .unwrap();
    }
    assert_eq!(
        state.online(std::slice::from_ref(&busy)).await.unwrap(),
        [false]
    );
}

/// Connections that are not kept alive expire: they stop counting at once
/// (even before a sweep), a late [`SharedState::connections_alive`] does not
/// revive them, and [`SharedState::expired_connections`] answers each user
/// this made offline once, to one of the processes sweeping concurrently,
/// never a user with a live connection left. Closing an expired connection
/// before any sweep answers the transition instead of the sweep; opening a
/// new one does too, and the old one's expiry is not reported afterwards.
pub async fn connections_that_are_not_kept_alive_expire_once(one: &Bus, other: &Bus) {
    let state = &*one.state;
    let [crashed, kept, stayed, late, back] =
        ["crashed", "kept", "stayed", "late", "back"].map(unique);
    let mine = [&crashed, &kept, &stayed, &late, &back];
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);
    // "crashed": two connections on a dead gateway.
    assert!(
        state
            .connection_opened(&crashed, "g1-1", short)
            .await
            .unwrap()
    );
    assert!(
        !state
            .connection_opened(&crashed, "g1-2", short)
            .await
            .unwrap()
    );
    // "kept": one connection kept alive, one dead.
    assert!(state.connection_opened(&kept, "g2-1", short).await.unwrap());
    assert!(!state.connection_opened(&kept, "g1-3", short).await.unwrap());
    // "stayed": a long-lived connection.
    assert!(
        state
            .connection_opened(&stayed, "g2-2", long)
            .await
            .unwrap()
    );
    let alive = |user: &str, connection: &str| (user.to_string(), connection.to_string());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state
            .connections_alive(&[alive(&kept, "g2-1")], short)
            .await
            .unwrap();
    }
    state
        .connections_alive(&[alive(&kept, "g2-1")], long)
        .await
        .unwrap();
    assert_eq!(
        state
            .online(&[crashed.clone(), kept.clone(), stayed.clone()])
            .await
            .unwrap(),
        [false, true, true],
        "expired connections do not count, even before a sweep"
    );
    // An expired connection is not revived by a late heartbeat, and is
    // reported for its gateway to open again.
    let not_live = state
        .connections_alive(&[alive(&crashed, "g1-1")], long)
        .await
        .unwrap();
    assert_eq!(not_live, [0]);
    assert_eq!(
        state.online(std::slice::from_ref(&crashed)).await.unwrap(),
        [false]
    );

    // Two processes sweep at once; "crashed" is answered once, by one.
    let sweeps = [one.state.clone(), other.state.clone()].map(|state| {
        tokio::spawn(async move {
            // One connection per call, more calls than connections.
            let mut users = Vec::new();
            for _ in 0..10 {
                users.extend(state.expired_connections(1).await.unwrap());
            }
            users
        })
    });
    let mut offline = Vec::new();
    for s in sweeps {
        offline.extend(s.await.unwrap());
    }
    assert_eq!(only_mine(offline, &mine), std::slice::from_ref(&crashed));
    assert!(only_mine(state.expired_connections(100).await.unwrap(), &mine).is_empty());
    // Closing what was swept answers nothing more.
    assert!(!state.connection_closed(&crashed, "g1-1").await.unwrap());
    assert_eq!(
        state
            .online(&[crashed.clone(), kept.clone()])
            .await
            .unwrap(),
        [false, true]
    );

    // A connection that expired but was closed before any sweep: the close
    // answers the transition, the sweep does not.
    assert!(state.connection_opened(&late, "x", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(state.connection_closed(&late, "x").await.unwrap());
    assert!(only_mine(state.expired_connections(100).await.unwrap(), &mine).is_empty());

    // Re-opening after an unswept expiry answers online again, and the old
    // connection's expiry is not reported afterwards.
    assert!(state.connection_opened(&back, "old", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(state.connection_opened(&back, "new", long).await.unwrap());
    assert!(only_mine(state.expired_connections(100).await.unwrap(), &mine).is_empty());
    assert_eq!(
        state.online(std::slice::from_ref(&back)).await.unwrap(),
        [true]
    );
}
