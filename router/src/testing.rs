//! A chat for unit tests of the chat logic: a real SQLite store in a
//! temporary directory and the in-process bus, one partition.

use std::sync::Arc;
use std::time::Duration;

use chat_bus::Bus;
use chat_persistence::Store;
use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
use chat_protocol::IdGenerator;

use crate::writer::WriteStage;
use crate::{Chat, RateLimits, RoomLimits, Settings};

/// The chat, its store, and the directory the store lives in (removed
/// when this is dropped).
pub(crate) struct TestChat {
    pub chat: Chat,
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// A chat with these rate limits and the defaults otherwise.
pub(crate) fn chat_with(rates: RateLimits) -> TestChat {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("chat.db"), SqliteOptions::default())
        .expect("a SQLite store");
    let store: Arc<dyn Store> = Arc::new(store);
    let settings = Settings {
        rates,
        presence_ttl: Duration::from_secs(30),
        presence_max_room_members: 1000,
        partitions: 1,
        persist_partitions: 1,
        write_stage: WriteStage::Persist,
        rooms: RoomLimits::default(),
        hash_queue: 1,
    };
    let ids = Arc::new(IdGenerator::new(1));
    let chat = Chat::new(store.clone(), Bus::local(64), ids, settings);
    TestChat {
        chat,
        store,
        _dir: dir,
    }
}
