//! What the user has seen, per room: where to resume after a reconnect,
//! which messages were already shown (a resume may replay a message that
//! also arrived live), and which read positions the server has not been
//! told yet.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chat_protocol::{Id, Message, RoomId};

/// How many shown message ids are remembered for de-duplication; replays
/// only overlap with the last moments before a disconnect.
const REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub struct Seen {
    /// Newest id per room that needs no replay: shown, or older than the
    /// client's start.
    resume_from: HashMap<RoomId, Id>,
    /// Newest id per room shown to the user.
    shown_newest: HashMap<RoomId, Id>,
    /// Newest id per room the server was told is read.
    reported: HashMap<RoomId, Id>,
    shown: HashSet<Id>,
    shown_order: VecDeque<Id>,
}

impl Seen {
    /// Messages up to `id` in `room` predate this client: never replay them
    /// (nor count them as read).
    pub fn start_after(&mut self, room: RoomId, id: Id) {
        raise(&mut self.resume_from, room, id);
    }

    /// Records that `message` is shown now; answers false when it was
    /// shown before (then it should not be shown again).
    pub fn show(&mut self, message: &Message) -> bool {
        raise(&mut self.resume_from, message.room_id, message.id);
        raise(&mut self.shown_newest, message.room_id, message.id);
        if !self.shown.insert(message.id) {
            return false;
        }
        self.shown_order.push_back(message.id);
        if self.shown_order.len() > REMEMBERED
            && let Some(oldest) = self.shown_order.pop_front()
        {
            self.shown.remove(&oldest);
        }
        true
    }

    /// Where to resume each of `rooms`: after the newest message seen, or
    /// from the start for a room the client knows nothing of.
    pub fn resume_points(&self, rooms: impl IntoIterator<Item = RoomId>) -> BTreeMap<RoomId, Id> {
        rooms
            .into_iter()
            .map(|room| (room, self.resume_from.get(&room).copied().unwrap_or(Id(0))))
            .collect()
    }

    /// Read positions shown to the user but not yet reported.
    pub fn reads_due(&self) -> Vec<(RoomId, Id)> {
        self.shown_newest
            .iter()
            .filter(|(room, id)| self.reported.get(room).is_none_or(|told| told < id))
            .map(|(room, id)| (*room, *id))
            .collect()
    }

    /// The server was told that `room` is read up to `id`.
    pub fn reported(&mut self, room: RoomId, id: Id) {
        raise(&mut self.reported, room, id);
    }
}

/// Sets `map[room]` to `id` unless it already holds a newer one.
fn raise(map: &mut HashMap<RoomId, Id>, room: RoomId, id: Id) {
    let entry = map.entry(room).or_insert(id);
    if *entry < id {
        *entry = id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the server sends it (decoded, so that fields added
    /// later with defaults need no change here).
    fn message(room: RoomId, id: u64) -> Message {
        serde_json::from_value(serde_json::json!({
            "id": id.to_string(),
            "room_id": room.to_string(),
            "sender_id": "1",
            "content": format!("message {id}"),
            "created_at": 0,
        }))
        .expect("a message")
    }

    #[test]
    fn a_message_is_shown_once_and_moves_the_resume_point() {
        let (room, other) = (RoomId::Group(Id(100)), RoomId::Group(Id(200)));
        let mut seen = Seen::default();
        seen.start_after(room, Id(5));
        assert!(seen.show(&message(room, 7)));
        assert!(!seen.show(&message(room, 7)), "a replay of a shown message");
        assert!(seen.show(&message(room, 6)), "an older one not shown yet");
        let points = seen.resume_points([room, other]);
        assert_eq!(points[&room], Id(7));
        assert_eq!(points[&other], Id(0), "unknown rooms resume from the start");
    }

    #[test]
    fn reads_are_due_until_reported() {
        let room = RoomId::Group(Id(100));
        let mut seen = Seen::default();
        seen.start_after(room, Id(5));
        assert!(seen.reads_due().is_empty(), "nothing shown, nothing read");
        seen.show(&message(room, 9));
        assert_eq!(seen.reads_due(), vec![(room, Id(9))]);
        seen.reported(room, Id(9));
        assert!(seen.reads_due().is_empty());
        seen.show(&message(room, 8));
        assert!(
            seen.reads_due().is_empty(),
            "read positions only move forward"
        );
    }
}
