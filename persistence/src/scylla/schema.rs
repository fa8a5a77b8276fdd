//! The schema: one `CREATE KEYSPACE` and the tables, each shaped by the
//! queries that read it (docs/scylla.md explains every key). No query needs
//! `ALLOW FILTERING`: each one names a whole partition key.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so `migrate` can run at
//! every start and from several processes. Statements are append-only: a
//! later change is a new, equally idempotent statement at the end.
//!
//! Encodings, shared with `rows`: ids are `bigint` (the u64 Snowflake
//! bit-cast, order-preserving below 2^63, i.e. until about 2093), times are
//! `bigint` milliseconds since the Unix epoch, room ids their canonical
//! text, enums their wire names.

use scylla::client::session::Session;

use super::config::ScyllaOptions;
use super::errors::context;
use crate::Result;

/// Bumped when a statement is appended to [`TABLES`] or what the data
/// means changes; recorded in `settings`. Version 2 re-keyed
/// `username_prefixes` and added the bucket index, the member counters and
/// the file tables; version 3 moved the bucket window from the keyspace (a
/// `settings` row) to each room (`rooms.bucket_window_ms`); version 4 keys
/// `public_rooms` by the name folded beyond ASCII
/// ([`directory_name`](crate::directory_name)). Versions 1 and 2 never ran
/// against a live cluster, so there is no upgrade path from them: `migrate`
/// refuses a keyspace recorded with another version than this one or
/// [`UPGRADES_FROM`].
pub(crate) const SCHEMA_VERSION: u32 = 4;
/// The version `migrate` upgrades to [`SCHEMA_VERSION`] (by re-keying the
/// directory, `ScyllaStore::fold_directory_keys`).
pub(crate) const UPGRADES_FROM: u32 = 3;
/// The `settings` row holding [`SCHEMA_VERSION`].
pub(crate) const SCHEMA_VERSION_SETTING: &str = "schema_version";

/// `CREATE KEYSPACE` for `options`.
pub(crate) fn create_keyspace(options: &ScyllaOptions) -> String {
    let tablets = match options.tablets {
        Some(enabled) => format!(" AND tablets = {{'enabled': {enabled}}}"),
        None => String::new(),
    };
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {} AND durable_writes = true{tablets}",
        options.keyspace,
        options.replication.cql()
    )
}

/// The tables, created in the session's keyspace, in order.
pub(crate) const TABLES: &[&str] = &[
    // Store-wide facts that must never change under the data: the schema
    // version.
    "CREATE TABLE IF NOT EXISTS settings (
        name  text PRIMARY KEY,
        value text
    )",
    // A user by id: every lookup of a user by id (profiles, members,
    // search results) is one partition.
    "CREATE TABLE IF NOT EXISTS users (
        id            bigint PRIMARY KEY,
        username      text,
        display_name  text,
        password_hash text,
        created_at    bigint,
        last_seen_at  bigint
    )",
    // Lower-cased username -> user. Its partition key IS the uniqueness
    // rule: registration claims the name with INSERT ... IF NOT EXISTS (a
    // lightweight transaction), so two registrations of one name in any
    // case cannot both win. Also serves login and @mention lookups.
    "CREATE TABLE IF NOT EXISTS usernames (
        username_lower text PRIMARY KEY,
        user_id        bigint
    )",
    // Username prefix search. Partitioned by the first two characters of
    // the lower-cased name (the whole name if shorter), clustered by the
    // name, so a search for a prefix of two or more characters is one
    // slice of one partition, in order. Two characters of a 38-letter
    // alphabet make ~1,400 partitions: 100 M users average ~70 k rows
    // (~4 MB) each.
    "CREATE TABLE IF NOT EXISTS users_by_prefix (
        prefix         text,
        username_lower text,
        user_id        bigint,
        PRIMARY KEY (prefix, username_lower)
    )",
    // The non-empty partitions of users_by_prefix, in order, partitioned
    // by their first character (at most 39 rows each), so that
    // registrations spread over ~39 partitions instead of all writing one.
    // Searching for a prefix of 1 character reads one directory partition
    // and then only the users_by_prefix partitions that exist; an empty
    // prefix reads the directories in alphabet order until the page is full.
    "CREATE TABLE IF NOT EXISTS username_prefixes (
        directory text,
        prefix    text,
        PRIMARY KEY (directory, prefix)
    )",
    // A room by id. DM rooms live here too: a DM's id `dm:<lo>:<hi>` is
    // derived from its two users, so the row's key already is the DM
    // lookup, and INSERT ... IF NOT EXISTS on it makes opening a DM
    // create-once. member_count is the count at creation, written by the
    // same transaction (so a DM is never seen with fewer than two); later
    // joins and leaves move room_member_counts. Every write to this table
    // is a lightweight transaction (none mixes with plain writes).
    // creation_token is a random number per creation attempt: a creator
    // whose transaction timed out reads it to learn whether it won.
    // bucket_window_ms is the width of the room's message buckets, chosen
    // at creation from the configured default and never changed (it
    // addresses every message of the room), so each room keeps the width
    // it was created with when the default changes.
    "CREATE TABLE IF NOT EXISTS rooms (
        room_id        text PRIMARY KEY,
        kind           text,
        name           text,
        visibility     text,
        owner_id       bigint,
        created_at     bigint,
        member_count     int,
        creation_token   bigint,
        bucket_window_ms bigint
    )",
    // Members by room: membership checks, mention resolution and the
    // member list are one partition (clustered by user id, so a check is a
    // single row). Every write is a lightweight transaction on the row (a
    // new room's members: conditional single-partition batches), so
    // "already a member" answers are exact and no plain write mixes in.
    "CREATE TABLE IF NOT EXISTS room_members (
        room_id   text,
        user_id   bigint,
        role      text,
        joined_at bigint,
        PRIMARY KEY (room_id, user_id)
    )",
    // Rooms by user, with the read position: the room list of a user is
    // one partition. It is an index: room_members stays the one authority
    // on who is a member and in which role, and every row found here is
    // checked against it, so a half-done write can never grant access.
    // last_read is written with the message id's time (but never before
    // the join) as the write timestamp, so the newest position wins without
    // a read-modify-write race. Leaving deletes the row; a later rejoin's
    // read positions are stamped after the join, so that row tombstone
    // cannot shadow them.
    "CREATE TABLE IF NOT EXISTS user_rooms (
        user_id   bigint,
        room_id   text,
        joined_at bigint,
        last_read bigint,
        PRIMARY KEY (user_id, room_id)
    )",
    // History: partitioned by room and time bucket, clustered newest
    // first, so a page is one slice of one partition (or of a few
    // neighbouring ones). Mentions and attachments are frozen so that an
    // insert writes no collection tombstone, and absent values are sent
    // unset, never null, for the same reason.
    "CREATE TABLE IF NOT EXISTS messages (
        room_id     text,
        bucket      int,
        id          bigint,
        sender_id   bigint,
        content     text,
        mentions    frozen<list<bigint>>,
        attachments frozen<list<frozen<tuple<bigint, text, bigint, text>>>>,
        reply_to    bigint,
        client_id   text,
        created_at  bigint,
        edited_at   bigint,
        deleted     boolean,
        PRIMARY KEY ((room_id, bucket), id)
    ) WITH CLUSTERING ORDER BY (id DESC)",
    // The buckets of a room that hold messages, newest first: a history
    // page, the last message and an unread count read this one small
    // partition (one row per bucket the room was ever active in) and then
    // only buckets holding messages, instead of walking every bucket of
    // the room's lifetime. Written before the messages of a bucket, so a
    // stored message is always listed.
    "CREATE TABLE IF NOT EXISTS room_buckets (
        room_id text,
        bucket  int,
        PRIMARY KEY (room_id, bucket)
    ) WITH CLUSTERING ORDER BY (bucket DESC)",
    // Joins and leaves since a room's creation: the member count is
    // rooms.member_count plus this counter. Counter updates do not contend
    // (no Paxos) but are not idempotent, so they are never retried: a
    // timed-out update may or may not have counted (docs: drift bound).
    "CREATE TABLE IF NOT EXISTS room_member_counts (
        room_id text PRIMARY KEY,
        members counter
    )",
    // A room's membership version (Store::membership_version). A counter:
    // unlike the member count, counting a change twice (a retried update)
    // is harmless, since only growth matters.
    "CREATE TABLE IF NOT EXISTS membership_versions (
        room_id text PRIMARY KEY,
        version counter
    )",
    // (sender, client id) -> message, for the idempotency of sends. Rows
    // expire with the idempotency window (600 s is IDEMPOTENCY_WINDOW_MS;
    // a test checks; inserts also set their own TTL from the id's time); time-window compaction drops
    // whole expired SSTables instead of compacting tombstones.
    "CREATE TABLE IF NOT EXISTS messages_by_client_id (
        sender_id bigint,
        client_id text,
        id        bigint,
        room_id   text,
        PRIMARY KEY ((sender_id, client_id), id)
    ) WITH CLUSTERING ORDER BY (id DESC)
      AND default_time_to_live = 600
      AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'MINUTES', 'compaction_window_size': 10}",
    // Metadata of uploaded files, by file id: serving a download looks the
    // file up by id and checks its room's membership.
    "CREATE TABLE IF NOT EXISTS files (
        id           bigint PRIMARY KEY,
        room_id      text,
        uploader_id  bigint,
        name         text,
        size         bigint,
        content_type text,
        storage_key  text,
        created_at   bigint
    )",
    // Audit events, partitioned by hour (hours since the Unix epoch) so that
    // a partition stays small even at 100 events/s (~70 MB) and reading a
    // time range is a walk over hours, newest first by Snowflake id.
    "CREATE TABLE IF NOT EXISTS audit_events (
        hour      int,
        id        bigint,
        actor_id  bigint,
        action    text,
        room_id   text,
        target_id bigint,
        detail    text,
        PRIMARY KEY (hour, id)
    ) WITH CLUSTERING ORDER BY (id DESC)",
    // Uploaded files (version 2; the `files` table above was never
    // written and has no checksum), by id: a download is one row.
    "CREATE TABLE IF NOT EXISTS uploaded_files (
        id           bigint PRIMARY KEY,
        uploader     bigint,
        name         text,
        size         bigint,
        content_type text,
        checksum     text,
        created_at   bigint,
        thumbnail    boolean
    )",
    // Files by uploader with their sizes: the quota sum is one partition.
    "CREATE TABLE IF NOT EXISTS files_by_uploader (
        uploader bigint,
        id       bigint,
        size     bigint,
        PRIMARY KEY (uploader, id)
    )",
    // Which messages carry a file: the access check of a download reads the
    // rooms of one partition.
    "CREATE TABLE IF NOT EXISTS file_links (
        file_id    bigint,
        room_id    text,
        message_id bigint,
        PRIMARY KEY (file_id, room_id, message_id)
    )",
    // Files no message carries, since when: the sweep's candidates, in one
    // partition (they are few: uploads not yet sent, and files of deleted
    // messages within the grace period).
    "CREATE TABLE IF NOT EXISTS unreferenced_files (
        shard int,
        id    bigint,
        since bigint,
        PRIMARY KEY (shard, id)
    )",
    // ----- v1.1 notifications, directory, room size. Added without a version
    // bump, like the accounts tables: new tables only.
    // Stored mentions, by mentioned user, newest first: a page
    // of `GET /notifications` is one slice of one partition.
    "CREATE TABLE IF NOT EXISTS notifications (
        user_id    bigint,
        id         bigint,
        room_id    text,
        message_id bigint,
        sender_id  bigint,
        created_at bigint,
        PRIMARY KEY (user_id, id)
    ) WITH CLUSTERING ORDER BY (id DESC)",
    // Each user's notification read mark: everything up to it is read.
    "CREATE TABLE IF NOT EXISTS notification_reads (
        user_id bigint PRIMARY KEY,
        up_to   bigint
    )",
    // The room directory: public group rooms in one partition,
    // by folded name (`directory_name`), for prefix pages.
    "CREATE TABLE IF NOT EXISTS public_rooms (
        shard      int,
        name_lower text,
        room_id    text,
        PRIMARY KEY (shard, name_lower, room_id)
    )",
    // Each room's own member limit, when it has one.
    "CREATE TABLE IF NOT EXISTS room_limits (
        room_id     text PRIMARY KEY,
        max_members int
    )",
    // ----- accounts (see `accounts`). Added without a version bump: new
    // tables only, which older keyspaces gain at the next `migrate`.
    // A user's sessions, each row living until its tokens expire (TTL).
    "CREATE TABLE IF NOT EXISTS sessions_by_user (
        user_id    bigint,
        id         bigint,
        created_at bigint,
        expires_at bigint,
        revoked_at bigint,
        PRIMARY KEY (user_id, id)
    )",
    // Revoked sessions by the day their tokens expire (TTL): a starting
    // node reads today's and the next days' partitions.
    "CREATE TABLE IF NOT EXISTS session_revocations (
        day        int,
        session_id bigint,
        user_id    bigint,
        expires_at bigint,
        PRIMARY KEY (day, session_id)
    )",
    // Stored admin and ban flags, one row per user ever flagged.
    "CREATE TABLE IF NOT EXISTS account_flags (
        user_id bigint PRIMARY KEY,
        admin   boolean,
        banned  boolean
    )",
    // The audit log by day (days since the epoch), newest first; rows
    // expire with the configured retention (TTL).
    "CREATE TABLE IF NOT EXISTS audit_log (
        day       int,
        id        bigint,
        at        bigint,
        kind      text,
        actor_id  bigint,
        target_id bigint,
        room_id   text,
        ip        text,
        detail    text,
        PRIMARY KEY (day, id)
    ) WITH CLUSTERING ORDER BY (id DESC)",
];

/// Creates the keyspace (if missing) and every table, and records the
/// settings. The session must not be bound to the keyspace yet; it is
/// afterwards.
pub(crate) async fn migrate(session: &Session, options: &ScyllaOptions) -> Result<()> {
    session
        .query_unpaged(create_keyspace(options), ())
        .await
        .map_err(|error| context(error, "cannot create the keyspace"))?;
    session
        .use_keyspace(options.keyspace.as_str(), false)
        .await?;
    for table in TABLES {
        session
            .query_unpaged(*table, ())
            .await
            .map_err(|error| context(error, "cannot create a table"))?;
    }
    tracing::info!(keyspace = %options.keyspace, version = SCHEMA_VERSION, "ScyllaDB schema is up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scylla::config::Replication;

    #[test]
    fn the_client_id_ttl_is_the_idempotency_window() {
        let seconds = chat_protocol::limits::IDEMPOTENCY_WINDOW_MS / 1000;
        let table = TABLES
            .iter()
            .find(|table| table.contains("messages_by_client_id"))
            .unwrap();
        assert!(table.contains(&format!("default_time_to_live = {seconds}\n")));
    }

    #[test]
    fn keyspace_statement_carries_replication_and_tablets() {
        let options = ScyllaOptions {
            keyspace: "chat_test".into(),
            replication: Replication::Simple { factor: 1 },
            ..ScyllaOptions::default()
        };
        assert_eq!(
            create_keyspace(&options),
            "CREATE KEYSPACE IF NOT EXISTS chat_test WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1} AND durable_writes = true"
        );
        let options = ScyllaOptions {
            tablets: Some(false),
            ..options
        };
        assert!(create_keyspace(&options).ends_with(" AND tablets = {'enabled': false}"));
        // The default: three copies in every data centre.
        assert_eq!(
            create_keyspace(&ScyllaOptions::default()),
            "CREATE KEYSPACE IF NOT EXISTS chat WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'replication_factor': 3} AND durable_writes = true"
        );
    }

    #[test]
    fn every_statement_is_idempotent_and_filter_free() {
        for table in TABLES {
            assert!(table.starts_with("CREATE TABLE IF NOT EXISTS "), "{table}");
            assert!(!table.to_ascii_uppercase().contains("ALLOW FILTERING"));
        }
    }
}
