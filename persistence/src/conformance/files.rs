//! Cases: uploaded files, their links to messages and the sweep's
//! candidates.

use std::collections::HashSet;
use std::sync::Arc;

use chat_protocol::Id;
use chat_protocol::id::now_ms;

use super::fixtures::*;
use crate::Store;

pub async fn files_round_trip_and_add_up_per_uploader(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let other = new_user(&*store, "other").await;
    let first = file_record(uploader.id, 1000);
    let second = file_record(uploader.id, 234);
    store.insert_file(first.clone()).await.expect("insert_file");
    store
        .insert_file(second.clone())
        .await
        .expect("insert_file");
    store
        .insert_file(first.clone())
        .await
        .expect("inserting again is harmless");
    assert_eq!(store.file(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.file(second.id).await.unwrap(), Some(second));
    assert_eq!(store.file(next_id()).await.unwrap(), None);
    assert_eq!(store.uploaded_bytes(uploader.id).await.unwrap(), 1234);
    assert_eq!(store.uploaded_bytes(other.id).await.unwrap(), 0);
}

pub async fn linked_files_name_their_rooms_until_unlinked(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let room_a = new_group(&*store, uploader.id, &[]).await;
    let room_b = new_group(&*store, uploader.id, &[]).await;
    let file = file_record(uploader.id, 10);
    store.insert_file(file.clone()).await.unwrap();
    assert!(store.file_rooms(file.id).await.unwrap().is_empty());

    let (in_a, in_b) = (next_id(), next_id());
    store
        .link_files(&room_a.id, in_a, &[file.id])
        .await
        .unwrap();
    store
        .link_files(&room_a.id, in_a, &[file.id])
        .await
        .unwrap();
    store
        .link_files(&room_b.id, in_b, &[file.id])
        .await
        .unwrap();
    let mut rooms = store.file_rooms(file.id).await.unwrap();
    rooms.sort_by_key(|room| room.to_string());
    let mut expected = vec![room_a.id, room_b.id];
    expected.sort_by_key(|room| room.to_string());
    assert_eq!(rooms, expected);

    store
        .unlink_files(&room_a.id, in_a, &[file.id], now_ms())
        .await
        .unwrap();
    assert_eq!(store.file_rooms(file.id).await.unwrap(), vec![room_b.id]);
    store
        .unlink_files(&room_a.id, in_a, &[file.id], now_ms())
        .await
        .expect("unlinking twice is harmless");
    store
        .unlink_files(&room_b.id, in_b, &[file.id], now_ms())
        .await
        .unwrap();
    assert!(store.file_rooms(file.id).await.unwrap().is_empty());
}

pub async fn unreferenced_files_are_the_sweeps_candidates(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let room = new_group(&*store, uploader.id, &[]).await;
    let never_sent = file_record(uploader.id, 1);
    let sent = file_record(uploader.id, 2);
    let sent_then_deleted = file_record(uploader.id, 3);
    for file in [&never_sent, &sent, &sent_then_deleted] {
        store.insert_file(file.clone()).await.unwrap();
    }
    let (message, doomed) = (next_id(), next_id());
    store
        .link_files(&room.id, message, &[sent.id])
        .await
        .unwrap();
    store
        .link_files(&room.id, doomed, &[sent_then_deleted.id])
        .await
        .unwrap();
    let deleted_at = now_ms() + 1000;
    store
        .unlink_files(&room.id, doomed, &[sent_then_deleted.id], deleted_at)
        .await
        .unwrap();

    let candidates = |before: u64| {
        let store = store.clone();
        async move {
            let files = store.unreferenced_files(before, 10_000).await.unwrap();
            files
                .into_iter()
                .map(|file| file.id)
                .collect::<HashSet<Id>>()
        }
    };
    // Unreferenced since its upload; the deleted one only since deleted_at.
    let early = candidates(deleted_at).await;
    assert!(early.contains(&never_sent.id));
    assert!(!early.contains(&sent.id));
    assert!(!early.contains(&sent_then_deleted.id));
    let late = candidates(deleted_at + 1).await;
    assert!(late.contains(&never_sent.id));
    assert!(late.contains(&sent_then_deleted.id));
    assert!(!late.contains(&sent.id));
    // Nothing is a candidate before it was uploaded.
    assert!(
        !candidates(never_sent.created_at)
            .await
            .contains(&never_sent.id)
    );
}

pub async fn deleting_a_file_forgets_it(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let room = new_group(&*store, uploader.id, &[]).await;
    let kept = file_record(uploader.id, 5);
    let doomed = file_record(uploader.id, 7);
    store.insert_file(kept.clone()).await.unwrap();
    store.insert_file(doomed.clone()).await.unwrap();
    store
        .link_files(&room.id, next_id(), &[doomed.id])
        .await
        .unwrap();
    store.delete_file(doomed.id).await.unwrap();
    store
        .delete_file(doomed.id)
        .await
        .expect("deleting twice is harmless");
    assert_eq!(store.file(doomed.id).await.unwrap(), None);
    assert!(store.file_rooms(doomed.id).await.unwrap().is_empty());
    assert_eq!(store.uploaded_bytes(uploader.id).await.unwrap(), 5);
    let candidates = store
        .unreferenced_files(u64::MAX >> 1, 10_000)
        .await
        .unwrap();
    assert!(candidates.iter().all(|file| file.id != doomed.id));
    assert!(candidates.iter().any(|file| file.id == kept.id));
}
