//! Cases: users, their lookup by id and by name, credentials, search and
//! last-seen times.

use std::sync::Arc;

use chat_protocol::id::now_ms;

use super::fixtures::*;
use crate::records::*;
use crate::{Store, StoreError};

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
}

pub async fn created_users_can_be_looked_up(store: Arc<dyn Store>) {
    let new = new_user_record(format!("Look_{}", unique_suffix()));
    let created = store.create_user(new.clone()).await.expect("create_user");
    let expected = UserRecord {
        id: new.id,
        username: new.username.clone(),
        display_name: new.display_name.clone(),
        created_at: new.created_at,
        last_seen_at: None,
    };
    assert_eq!(created, expected, "create_user answers the stored user");
    assert_eq!(
        store.user(new.id).await.expect("user"),
        Some(expected.clone())
    );
    assert_eq!(store.user(next_id()).await.expect("user"), None);

    let other = new_user(&*store, "look2").await;
    let found = store
        .users(&[new.id, next_id(), other.id])
        .await
        .expect("users");
    assert_eq!(sorted_by_id(found), sorted_by_id(vec![expected, other]));
    assert_eq!(store.users(&[]).await.expect("users"), Vec::new());
}

pub async fn usernames_are_unique_case_insensitively(store: Arc<dyn Store>) {
    let original = new_user(&*store, "Case").await;
    for clash in [
        original.username.clone(),
        original.username.to_ascii_uppercase(),
        original.username.to_ascii_lowercase(),
    ] {
        let attempt = new_user_record(clash.clone());
        let outcome = store.create_user(attempt.clone()).await;
        assert!(
            is_conflict(&outcome),
            "{clash} after {}: {outcome:?}",
            original.username
        );
        assert_eq!(
            store.user(attempt.id).await.expect("user"),
            None,
            "nothing of a refused user is stored"
        );
    }
    let credentials = store
        .credentials(&original.username)
        .await
        .expect("credentials")
        .expect("the original user");
    assert_eq!(credentials.user, original);
}

pub async fn concurrent_registrations_of_one_name_create_one_user(store: Arc<dyn Store>) {
    let base = format!("race_{}", unique_suffix());
    // Eight spellings differing only in the case of the first three letters.
    let spellings: Vec<String> = (0..8u8)
        .map(|variant| {
            base.chars()
                .enumerate()
                .map(|(position, letter)| {
                    if position < 3 && variant & (1 << position) != 0 {
                        letter.to_ascii_uppercase()
                    } else {
                        letter
                    }
                })
                .collect()
        })
        .collect();
    let attempts: Vec<_> = spellings
        .iter()
        .map(|spelling| {
            let store = store.clone();
            let new = new_user_record(spelling.clone());
            tokio::spawn(async move { (new.id, store.create_user(new).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        let (id, outcome) = attempt.await.expect("registration task");
        match outcome {
            Ok(user) => winners.push(user),
            Err(StoreError::Conflict(_)) => {
                assert_eq!(
                    store.user(id).await.expect("user"),
                    None,
                    "a refused user is not stored"
                );
            }
            Err(other) => panic!("a registration failed with {other:?} instead of a conflict"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration wins: {winners:?}"
    );
    let found = store
        .credentials(&base.to_ascii_uppercase())
        .await
        .expect("credentials")
        .expect("the winner");
    assert_eq!(found.user, winners[0]);
}

pub async fn credentials_match_usernames_case_insensitively(store: Arc<dyn Store>) {
    let new = new_user_record(format!("Cred_{}", unique_suffix()));
    let user = store.create_user(new.clone()).await.expect("create_user");
    for spelling in [
        new.username.clone(),
        new.username.to_ascii_uppercase(),
        new.username.to_ascii_lowercase(),
    ] {
        let credentials = store
            .credentials(&spelling)
            .await
            .expect("credentials")
            .unwrap_or_else(|| panic!("credentials of {spelling}"));
        assert_eq!(credentials.user, user);
        assert_eq!(credentials.password_hash, new.password_hash);
    }
    let unknown = format!("nobody_{}", unique_suffix());
    assert_eq!(
        store.credentials(&unknown).await.expect("credentials"),
        None
    );
}

pub async fn users_by_username_ignore_case_and_skip_unknown_names(store: Arc<dyn Store>) {
    let first = new_user(&*store, "ByName").await;
    let second = new_user(&*store, "byname").await;
    let found = store
        .users_by_username(&[
            first.username.to_ascii_uppercase(),
            format!("nobody_{}", unique_suffix()),
            second.username.to_ascii_lowercase(),
        ])
        .await
        .expect("users_by_username");
    assert_eq!(sorted_by_id(found), sorted_by_id(vec![first, second]));
    assert_eq!(
        store
            .users_by_username(&[])
            .await
            .expect("users_by_username"),
        Vec::new()
    );
}

pub async fn search_users_finds_prefixes_case_insensitively_in_order(store: Arc<dyn Store>) {
    let prefix = format!("srch{}", unique_suffix());
    // Byte order would put "B" before "a"; lower-cased order does not.
    let bob = create_user_named(&*store, &format!("{prefix}_Bob")).await;
    let alice = create_user_named(&*store, &format!("{}_alice", prefix.to_ascii_uppercase())).await;
    let carol = create_user_named(&*store, &format!("{prefix}_carol")).await;
    // Contains the prefix, but does not start with it.
    create_user_named(&*store, &format!("x{prefix}")).await;

    let found = store
        .search_users(&prefix.to_ascii_uppercase(), 10)
        .await
        .expect("search_users");
    assert_eq!(found, vec![alice.clone(), bob.clone(), carol.clone()]);
    let found = store.search_users(&prefix, 2).await.expect("search_users");
    assert_eq!(
        found,
        vec![alice, bob.clone()],
        "the limit keeps the first in order"
    );
    let found = store
        .search_users(&bob.username.to_ascii_lowercase(), 10)
        .await
        .expect("search_users");
    assert_eq!(found, vec![bob], "a whole username is a prefix of itself");
    assert_eq!(
        store.search_users(&prefix, 0).await.expect("search_users"),
        Vec::new()
    );
}

pub async fn search_users_treats_wildcards_literally(store: Arc<dyn Store>) {
    let prefix = format!("wild{}", unique_suffix());
    let underscored = create_user_named(&*store, &format!("{prefix}_one")).await;
    // Would match "<prefix>_" if `_` were a single-character wildcard.
    create_user_named(&*store, &format!("{prefix}xtwo")).await;

    let found = store
        .search_users(&format!("{prefix}_"), 10)
        .await
        .expect("search_users");
    assert_eq!(found, vec![underscored]);
    let found = store
        .search_users(&format!("{prefix}%"), 10)
        .await
        .expect("search_users");
    assert_eq!(found, Vec::new(), "% is not a wildcard");
}

pub async fn last_seen_is_recorded(store: Arc<dyn Store>) {
    let user = new_user(&*store, "seen").await;
    let first = now_ms();
    store
        .set_last_seen(user.id, first)
        .await
        .expect("set_last_seen");
    let stored = store.user(user.id).await.expect("user").expect("the user");
    assert_eq!(stored.last_seen_at, Some(first));
    store
        .set_last_seen(user.id, first + 1_000)
        .await
        .expect("set_last_seen");
    let stored = store.user(user.id).await.expect("user").expect("the user");
    assert_eq!(stored.last_seen_at, Some(first + 1_000));
    assert_eq!(stored.username, user.username, "only the presence changed");
}
