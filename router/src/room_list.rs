//! A user's room list in pages: `GET /rooms?limit=&cursor=` and the
//! bounded `ready` frame.
//!
//! Summaries are what costs (an unread count and a last-message read per
//! room), so a page summarizes only the rooms it shows. Reading which rooms
//! the user belongs to stays one store read of the whole list: the
//! connection is attached to every one of them (live events flow for all),
//! whatever the `ready` frame lists.
//!
//! A list that fits in one page keeps the store's order (the order of
//! `GET /rooms` without paging); a list cut into pages is ordered by room
//! id, and the cursor is the last room id of the previous page, never an
//! offset, so a room joined or left between pages shifts nothing.

use futures_util::{StreamExt, TryStreamExt};

use chat_protocol::limits::ROOMS_MAX_LIMIT;
use chat_protocol::{Id, RoomId, RoomSummary};

use crate::rooms::SUMMARY_CONCURRENCY;
use crate::{Chat, Error, Result};

/// One page of a user's rooms.
#[derive(Clone, Debug)]
pub struct RoomPage {
    /// The summaries of this page's rooms.
    pub rooms: Vec<RoomSummary>,
    /// Every room the user belongs to, on this page or not.
    pub member_of: Vec<RoomId>,
    /// The cursor of the next page (the last room id of this one); `None`
    /// on the last page.
    pub next_cursor: Option<String>,
}

impl Chat {
    /// The page of `user`'s rooms after `cursor` (a room id), at most
    /// `limit` (1 to [`ROOMS_MAX_LIMIT`]); without either, every room.
    pub async fn rooms_page(
        &self,
        user: Id,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<RoomPage> {
        if let Some(limit) = limit
            && !(1..=ROOMS_MAX_LIMIT).contains(&limit)
        {
            return Err(Error::bad_request(format!(
                "limit must be 1 to {ROOMS_MAX_LIMIT}"
            )));
        }
        let after = cursor
            .map(|cursor| {
                cursor
                    .parse::<RoomId>()
                    .map_err(|_| Error::bad_request("invalid cursor"))
            })
            .transpose()?;
        self.rooms_page_after(user, limit.map(|l| l as usize), after)
            .await
    }

    /// [`rooms_page`](Chat::rooms_page) with the limit and cursor checked:
    /// the `ready` frame's bound comes from the configuration, not a client.
    pub async fn rooms_page_after(
        &self,
        user: Id,
        limit: Option<usize>,
        after: Option<RoomId>,
    ) -> Result<RoomPage> {
        let mut rooms = self.store.rooms_of(user).await?;
        let member_of = rooms.iter().map(|r| r.room.id).collect();
        let mut next_cursor = None;
        let paged = after.is_some() || limit.is_some_and(|limit| rooms.len() > limit);
        if paged {
            rooms.sort_by_key(|r| r.room.id);
            if let Some(after) = after {
                rooms.retain(|r| r.room.id > after);
            }
            if let Some(limit) = limit
                && rooms.len() > limit
            {
                rooms.truncate(limit);
                next_cursor = rooms.last().map(|r| r.room.id.to_string());
            }
        }
        let mentions = self.unread_mentions(user).await?;
        let mentions = &mentions;
        let rooms = futures_util::stream::iter(rooms)
            .map(|room| self.summarize(user, room, mentions))
            .buffered(SUMMARY_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(RoomPage {
            rooms,
            member_of,
            next_cursor,
        })
    }
}
