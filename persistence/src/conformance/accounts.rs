//! Cases: accounts (sessions and their revocation, profile and password,
//! flags, the audit log; v1.1).

use std::collections::HashSet;
use std::sync::Arc;

use chat_protocol::Id;
use chat_protocol::id::now_ms;

use super::fixtures::*;
use crate::Store;
use crate::records::*;

fn session_of(user: Id, lifetime_ms: u64) -> SessionRecord {
    let now = now_ms();
    SessionRecord {
        id: next_id(),
        user,
        created_at: now,
        expires_at: now + lifetime_ms,
    }
}

pub async fn sessions_are_revoked_one_or_all_but_one(store: Arc<dyn Store>) {
    let user = new_user(&*store, "sessions").await;
    let other = new_user(&*store, "bystander").await;
    let [a, b, c] = [(); 3].map(|()| session_of(user.id, 3_600_000));
    let theirs = session_of(other.id, 3_600_000);
    for session in [a, b, c, theirs] {
        store.create_session(session).await.expect("create_session");
    }
    let now = now_ms();
    let one = store
        .revoke_session(user.id, a.id, now)
        .await
        .expect("revoke_session");
    assert_eq!(
        one,
        Some(Revocation {
            session: a.id,
            user: user.id,
            expires_at: a.expires_at
        })
    );
    assert_eq!(
        store.revoke_session(user.id, theirs.id, now).await.unwrap(),
        None,
        "another user's session is not the caller's to revoke"
    );
    assert_eq!(
        store.revoke_session(user.id, a.id, now).await.unwrap(),
        one,
        "revoking twice is harmless"
    );
    let mut all = store
        .revoke_sessions(user.id, Some(c.id), now)
        .await
        .expect("revoke_sessions");
    all.sort_by_key(|r| r.session);
    let mut expected: Vec<Id> = vec![a.id, b.id];
    expected.sort();
    assert_eq!(
        all.iter().map(|r| r.session).collect::<Vec<_>>(),
        expected,
        "all but the kept session, already revoked ones included"
    );
    let outstanding = store.revocations(now).await.expect("revocations");
    let revoked: HashSet<Id> = outstanding.iter().map(|r| r.session).collect();
    assert!(revoked.contains(&a.id) && revoked.contains(&b.id));
    assert!(!revoked.contains(&c.id), "the kept session is not revoked");
    assert!(!revoked.contains(&theirs.id), "other users are untouched");
}

pub async fn revocations_list_only_unexpired_revoked_sessions(store: Arc<dyn Store>) {
    let user = new_user(&*store, "expiring").await;
    let short = session_of(user.id, 2_000);
    let long = session_of(user.id, 3_600_000);
    store.create_session(short).await.unwrap();
    store.create_session(long).await.unwrap();
    let now = now_ms();
    store.revoke_session(user.id, short.id, now).await.unwrap();
    store.revoke_session(user.id, long.id, now).await.unwrap();
    let later: HashSet<Id> = store
        .revocations(short.expires_at + 1)
        .await
        .unwrap()
        .iter()
        .map(|r| r.session)
        .collect();
    assert!(later.contains(&long.id));
    assert!(
        !later.contains(&short.id),
        "an expired session needs no revocation"
    );
}

pub async fn profile_and_password_changes_stick(store: Arc<dyn Store>) {
    let user = new_user(&*store, "profile").await;
    let renamed = store
        .set_display_name(user.id, "New Name")
        .await
        .expect("set_display_name")
        .expect("a known user");
    assert_eq!(renamed.display_name, "New Name");
    assert_eq!(renamed.username, user.username);
    assert_eq!(
        store.user(user.id).await.unwrap().unwrap().display_name,
        "New Name"
    );
    assert!(
        store
            .set_password_hash(user.id, "$argon2id$new")
            .await
            .unwrap()
    );
    let credentials = store.credentials(&user.username).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, "$argon2id$new");
    let unknown = next_id();
    assert_eq!(store.set_display_name(unknown, "x").await.unwrap(), None);
    assert!(!store.set_password_hash(unknown, "x").await.unwrap());
}

pub async fn account_flags_start_off_and_toggle(store: Arc<dyn Store>) {
    let user = new_user(&*store, "flags").await;
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags::default()
    );
    store.set_admin(user.id, true).await.unwrap();
    store.set_banned(user.id, true).await.unwrap();
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags {
            admin: true,
            banned: true
        }
    );
    store.set_banned(user.id, false).await.unwrap();
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags {
            admin: true,
            banned: false
        },
        "flags change independently"
    );
    store.set_admin(user.id, false).await.unwrap();
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags::default()
    );
}

pub async fn audit_events_page_newest_first_and_filter(store: Arc<dyn Store>) {
    let actor = new_user(&*store, "auditor").await;
    let target = new_user(&*store, "audited").await;
    let mut events = Vec::new();
    for (i, kind) in ["login", "logout", "login", "ban", "login"]
        .iter()
        .enumerate()
    {
        let id = next_id();
        events.push(AuditEvent {
            id,
            at: id.unix_ms(),
            kind: (*kind).to_owned(),
            actor_id: Some(actor.id),
            target_id: (*kind == "ban").then_some(target.id),
            room_id: None,
            ip: Some(format!("10.0.0.{i}")),
            detail: None,
        });
    }
    let day = 24 * 60 * 60 * 1000;
    store
        .insert_audit(&events, day)
        .await
        .expect("insert_audit");
    store
        .insert_audit(&events[..1], day)
        .await
        .expect("inserting again is harmless");
    let filter = |before: Option<Id>, limit: u32, kind: Option<&str>, user: Id| AuditFilter {
        before,
        limit,
        kind: kind.map(str::to_owned),
        user: Some(user),
        since: now_ms() - day,
    };
    let (first, more) = store
        .audit_events(filter(None, 3, None, actor.id))
        .await
        .expect("audit_events");
    let newest: Vec<Id> = events.iter().rev().map(|e| e.id).collect();
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), newest[..3]);
    assert!(more);
    assert_eq!(first[0], events[4], "events round trip");
    let (rest, more) = store
        .audit_events(filter(Some(first[2].id), 3, None, actor.id))
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), newest[3..]);
    assert!(!more);
    let (logins, _) = store
        .audit_events(filter(None, 10, Some("login"), actor.id))
        .await
        .unwrap();
    assert_eq!(logins.len(), 3);
    let (of_target, _) = store
        .audit_events(filter(None, 10, None, target.id))
        .await
        .unwrap();
    assert_eq!(
        of_target.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![events[3].id]
    );
}
