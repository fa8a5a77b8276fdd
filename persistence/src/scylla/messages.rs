//! Messages: idempotent batch inserts, lookups, history pages, edits,
//! tombstones, the client-id lookup and unread counts.
//!
//! A message's row is addressed by `(room_id, bucket(id), id)`, the bucket
//! taken with the room's own window (`ScyllaStore::buckets_of`, read once per
//! room and process), so every single-message operation is one partition,
//! one row. Reads of many
//! messages (pages, the last message, unread counts) find the buckets that
//! hold messages in the room's `room_buckets` index first (see `paging`),
//! and inserts list a bucket there before writing into it. Inserts are
//! idempotent by that key and do not overwrite: a batch first asks each
//! partition which of its ids are stored (one small read per room and
//! bucket) and writes only the others. The insert is stamped with the id's
//! own time, so even a duplicate insert racing past that check rewrites the
//! same values, and never undoes an edit or a deletion (stamped later).

use std::collections::{HashMap, HashSet};

use chat_protocol::limits::IDEMPOTENCY_WINDOW_MS;
use chat_protocol::{Id, Message, RoomId};

use super::buckets::Buckets;
use super::paging::{self, BucketQuery, Direction, IndexQuery, Span, UnreadRow};
use super::rooms::MAX_IN;
use super::rows::{
    MessageRow, MessageValues, UnreadColumns, bound_to_cql, id_from_cql, id_to_cql,
    mentions_to_cql, room_id_from_cql, time_to_cql,
};
use super::{ScyllaStore, after_insert_timestamp};
use crate::Result;
use crate::records::{Page, PageRequest};

/// Extra life given to a client-id row beyond the idempotency window, for
/// clock differences between the node that minted the id and this one.
const CLIENT_ID_TTL_SLACK_MS: u64 = 60_000;

/// Seconds a client-id row must live so that it outlasts the idempotency
/// window measured from the message's id; `None` when the window has
/// already passed (a very late write needs no lookup row).
pub(super) fn client_id_ttl(id: Id, now_ms: u64) -> Option<i32> {
    let expires = id
        .unix_ms()
        .saturating_add(IDEMPOTENCY_WINDOW_MS)
        .saturating_add(CLIENT_ID_TTL_SLACK_MS);
    let remaining_ms = expires.checked_sub(now_ms).filter(|ms| *ms > 0)?;
    let longest = IDEMPOTENCY_WINDOW_MS + CLIENT_ID_TTL_SLACK_MS;
    i32::try_from(remaining_ms.min(longest).div_ceil(1000)).ok()
}

impl ScyllaStore {
    pub(super) async fn insert_messages_impl(&self, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        // Within one batch, the first of two messages with one id wins.
        let mut seen = HashSet::new();
        let messages: Vec<Message> = messages
            .iter()
            .filter(|message| seen.insert((message.room_id, message.id)))
            .cloned()
            .collect();
        // Each room's window, read once per room and process.
        let rooms: HashSet<RoomId> = messages.iter().map(|message| message.room_id).collect();
        let windows: HashMap<RoomId, Buckets> = self
            .concurrently(rooms, |room| async move {
                Ok((room, self.buckets_of(&room).await?))
            })
            .await?
            .into_iter()
            .collect();
        let buckets_of = |room: &RoomId| windows.get(room).copied().unwrap_or(self.default_buckets);
        let encoded: Vec<MessageValues> = messages
            .iter()
            .map(|message| MessageValues::encode(message, &buckets_of(&message.room_id)))
            .collect();

        // Which are stored already: one read per partition (and per 100 ids).
        // (Owned values throughout: the futures must be `Send` for any
        // lifetime, which borrowed closure arguments trip up.)
        let mut partitions: HashMap<(String, i32), Vec<i64>> = HashMap::new();
        for values in &encoded {
            partitions
                .entry((values.room_id.clone(), values.bucket))
                .or_default()
                .push(values.id);
        }
        let lookups: Vec<(String, i32, Vec<i64>)> = partitions
            .into_iter()
            .flat_map(|((room, bucket), ids)| {
                ids.chunks(MAX_IN)
                    .map(|chunk| (room.clone(), bucket, chunk.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let stored = self
            .concurrently(lookups, |(room, bucket, ids)| async move {
                let rows: Vec<(i64,)> = self
                    .rows(
                        &self.statements.select_existing_ids,
                        (room.as_str(), bucket, ids),
                    )
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id,)| (room.clone(), id))
                    .collect::<Vec<_>>())
            })
            .await?;
        let stored: HashSet<(String, i64)> = stored.into_iter().flatten().collect();

        let missing: Vec<MessageValues> = encoded
            .into_iter()
            .filter(|values| !stored.contains(&(values.room_id.clone(), values.id)))
            .collect();

        // The index before the messages, so that a stored message is always
        // listed (an index row whose messages then fail is harmless: a walk
        // reads that bucket, finds nothing and moves on).
        let unindexed: HashSet<(RoomId, i32)> = messages
            .iter()
            .map(|message| (message.room_id, buckets_of(&message.room_id).of(message.id)))
            .filter(|partition| !self.indexed_buckets.contains(partition))
            .collect();
        self.concurrently(unindexed, |(room, bucket)| async move {
            self.execute(&self.statements.index_bucket, (room.to_string(), bucket))
                .await?;
            self.indexed_buckets.insert((room, bucket));
            Ok(())
        })
        .await?;

        self.concurrently(missing, |values| async move {
            self.execute(&self.statements.insert_message, values.into_insert())
                .await
                .map(drop)
        })
        .await?;

        // The client-id rows after the messages, so that a row found always
        // leads to a stored message; for every message, as an earlier attempt
        // may have stopped between the two.
        let now = chat_protocol::id::now_ms();
        let lookups: Vec<(i64, String, i64, String, i32)> = messages
            .iter()
            .filter_map(|message| {
                let client_id = message.client_id.clone()?;
                let ttl = client_id_ttl(message.id, now)?;
                Some((
                    id_to_cql(message.sender_id),
                    client_id,
                    id_to_cql(message.id),
                    message.room_id.to_string(),
                    ttl,
                ))
            })
            .collect();
        self.concurrently(lookups, |values| async move {
            self.execute(&self.statements.insert_client_id, values)
                .await
                .map(drop)
        })
        .await?;
        Ok(())
    }

    pub(super) async fn message_impl(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        let bucket = self.buckets_of(room).await?.of(id);
        let row: Option<MessageRow> = self
            .first_row(
                &self.statements.select_message,
                (room.to_string(), bucket, id_to_cql(id)),
            )
            .await?;
        row.map(MessageRow::decode).transpose()
    }

    pub(super) async fn message_by_client_id_impl(
        &self,
        sender: Id,
        client_id: &str,
        since: Id,
    ) -> Result<Option<Message>> {
        let found: Option<(i64, String)> = self
            .first_row(
                &self.statements.select_client_id,
                (id_to_cql(sender), client_id, bound_to_cql(since)),
            )
            .await?;
        let Some((id, room)) = found else {
            return Ok(None);
        };
        let message = self
            .message_impl(&room_id_from_cql(&room)?, id_from_cql(id))
            .await?;
        Ok(message.filter(|message| {
            message.sender_id == sender && message.client_id.as_deref() == Some(client_id)
        }))
    }

    /// One slice of one bucket, as the page walk asks for it.
    async fn message_slice(&self, room: &str, query: BucketQuery) -> Result<Vec<MessageRow>> {
        let statement = match query.direction {
            Direction::Backward => &self.statements.page_backward,
            Direction::Forward => &self.statements.page_forward,
        };
        self.rows(statement, slice_values(room, query)).await
    }

    /// One read of the room's bucket index.
    async fn listed_buckets(&self, room: &str, query: IndexQuery) -> Result<Vec<i32>> {
        let statement = match query.direction {
            Direction::Backward => &self.statements.buckets_backward,
            Direction::Forward => &self.statements.buckets_forward,
        };
        let rows: Vec<(i32,)> = self.rows(statement, index_values(room, query)).await?;
        Ok(rows.into_iter().map(|(bucket,)| bucket).collect())
    }

    /// The buckets a walk over a room of `buckets` may visit now.
    fn span(buckets: &Buckets) -> Span {
        Span::until(chat_protocol::id::now_ms(), buckets)
    }

    pub(super) async fn messages_impl(&self, room: &RoomId, request: PageRequest) -> Result<Page> {
        let buckets = self.buckets_of(room).await?;
        let key = room.to_string();
        let key = key.as_str();
        let (rows, has_more) = paging::page(
            request,
            Self::span(&buckets),
            &buckets,
            paging::PAGE_SLICE,
            |query| self.listed_buckets(key, query),
            |query| self.message_slice(key, query),
        )
        .await?;
        let messages = rows
            .into_iter()
            .map(MessageRow::decode)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { messages, has_more })
    }

    pub(super) async fn last_message_impl(&self, room: &RoomId) -> Result<Option<Message>> {
        let buckets = self.buckets_of(room).await?;
        let key = room.to_string();
        let key = key.as_str();
        let row = paging::newest(
            Self::span(&buckets),
            &buckets,
            |query| self.listed_buckets(key, query),
            |query| self.message_slice(key, query),
        )
        .await?;
        row.map(MessageRow::decode).transpose()
    }

    /// Tombstones are not edited. The update is stamped after the insert,
    /// so a late retry of the insert cannot bring the old text back; an
    /// edit racing a deletion loses, as a deleted row reads as a tombstone
    /// whatever its other cells hold.
    pub(super) async fn edit_message_impl(
        &self,
        room: &RoomId,
        id: Id,
        content: &str,
        mentions: &[Id],
        edited_at: u64,
    ) -> Result<Option<Message>> {
        let Some(message) = self.message_impl(room, id).await? else {
            return Ok(None);
        };
        if message.deleted {
            return Ok(None);
        }
        self.execute(
            &self.statements.edit_message,
            (
                after_insert_timestamp(id),
                content,
                mentions_to_cql(mentions),
                time_to_cql(edited_at),
                room.to_string(),
                self.buckets_of(room).await?.of(id),
                id_to_cql(id),
            ),
        )
        .await?;
        Ok(Some(Message {
            content: content.to_owned(),
            mentions: mentions.to_vec(),
            edited_at: Some(edited_at),
            ..message
        }))
    }

    /// Read first, so that no row is ever created for a message that does
    /// not exist (CQL updates would); deleting twice writes the same cells.
    pub(super) async fn delete_message_impl(
        &self,
        room: &RoomId,
        id: Id,
    ) -> Result<Option<Message>> {
        let Some(message) = self.message_impl(room, id).await? else {
            return Ok(None);
        };
        self.execute(
            &self.statements.delete_message,
            (
                after_insert_timestamp(id),
                room.to_string(),
                self.buckets_of(room).await?.of(id),
                id_to_cql(id),
            ),
        )
        .await?;
        Ok(Some(Message {
            content: String::new(),
            mentions: Vec::new(),
            attachments: Vec::new(),
            deleted: true,
            ..message
        }))
    }

    async fn unread_slice(&self, room: &str, query: BucketQuery) -> Result<Vec<UnreadRow>> {
        let rows: Vec<UnreadColumns> = self
            .rows(&self.statements.unread_scan, slice_values(room, query))
            .await?;
        Ok(rows.into_iter().map(UnreadRow::from).collect())
    }

    pub(super) async fn unread_count_impl(
        &self,
        room: &RoomId,
        user: Id,
        after: Option<Id>,
        cap: u32,
    ) -> Result<u32> {
        let buckets = self.buckets_of(room).await?;
        let key = room.to_string();
        let key = key.as_str();
        paging::count_unread(
            after,
            user,
            cap,
            Self::span(&buckets),
            &buckets,
            paging::UNREAD_CHUNK,
            |query| self.listed_buckets(key, query),
            |query| self.unread_slice(key, query),
        )
        .await
    }
}

/// The bound values of a bucket slice: room, bucket, the exclusive id
/// bounds (open ones as the extremes of `bigint`) and the limit.
fn slice_values(room: &str, query: BucketQuery) -> (&str, i32, i64, i64, i32) {
    (
        room,
        query.bucket,
        query.after.map_or(i64::MIN, bound_to_cql),
        query.before.map_or(i64::MAX, bound_to_cql),
        i32::try_from(query.limit).unwrap_or(i32::MAX),
    )
}

/// The bound values of an index read: room, lowest and highest bucket,
/// limit.
fn index_values(room: &str, query: IndexQuery) -> (&str, i32, i32, i32) {
    (
        room,
        query.low,
        query.high,
        i32::try_from(query.limit).unwrap_or(i32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use chat_protocol::id::EPOCH_MS;

    use super::*;

    #[test]
    fn client_id_rows_outlive_the_window_from_the_id() {
        let minted = EPOCH_MS + 1_000_000;
        let id = Id::first_at(minted);
        let full = ((IDEMPOTENCY_WINDOW_MS + CLIENT_ID_TTL_SLACK_MS) / 1000) as i32;
        assert_eq!(client_id_ttl(id, minted), Some(full));
        // Written nine minutes late: the row lives out the rest of the window.
        let late = minted + 9 * 60 * 1000;
        assert_eq!(client_id_ttl(id, late), Some(full - 9 * 60));
        // Written after the window (and its slack): no row at all.
        assert_eq!(
            client_id_ttl(id, minted + IDEMPOTENCY_WINDOW_MS + CLIENT_ID_TTL_SLACK_MS),
            None
        );
        // A clock behind the id's: capped at the full life, never longer.
        assert_eq!(client_id_ttl(id, minted - 5_000), Some(full));
    }

    #[test]
    fn slices_bind_open_bounds_as_extremes() {
        let query = BucketQuery {
            bucket: 3,
            after: None,
            before: None,
            direction: Direction::Backward,
            limit: 51,
        };
        assert_eq!(slice_values("7", query), ("7", 3, i64::MIN, i64::MAX, 51));
        let query = BucketQuery {
            after: Some(Id(10)),
            before: Some(Id(u64::MAX)),
            ..query
        };
        assert_eq!(slice_values("7", query), ("7", 3, 10, i64::MAX, 51));
    }
}
