//! What the store keeps, in the shapes its callers need. Where a protocol
//! object already has the right shape (`Room`, `Message`) the store uses it
//! directly; these records add what clients never see (password hashes) or
//! what only one member sees (role, read position).

use std::collections::HashMap;

use chat_protocol::{Id, Role, Room, RoomId, RoomKind, User, Visibility};

/// The membership version ([`Store::membership_version`]) of each room of
/// a batch of messages, as [`Store::insert_messages`] answers them.
///
/// [`Store::membership_version`]: crate::Store::membership_version
/// [`Store::insert_messages`]: crate::Store::insert_messages
pub type MembershipVersions = HashMap<RoomId, u64>;

/// A user to create. The username is kept as given; uniqueness is
/// case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub id: Id,
    pub username: String,
    pub display_name: String,
    /// A PHC string (argon2id); never logged, never sent to clients.
    pub password_hash: String,
    pub created_at: u64,
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Id,
    pub username: String,
    pub display_name: String,
    pub created_at: u64,
    /// When the user was last seen online (set when their last connection closes).
    pub last_seen_at: Option<u64>,
}

impl UserRecord {
    /// The user as other users see it, without presence.
    pub fn to_user(&self) -> User {
        User {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            created_at: self.created_at,
            online: None,
            last_seen_at: None,
        }
    }
}

/// A user with their password hash, for login only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: UserRecord,
    pub password_hash: String,
}

/// A room to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRoom {
    pub id: RoomId,
    pub kind: RoomKind,
    pub name: String,
    pub visibility: Visibility,
    pub owner_id: Option<Id>,
    pub created_at: u64,
    /// The room's own member limit; `None`: the server's default.
    pub max_members: Option<u32>,
}

/// One user's membership of one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub role: Role,
    /// The newest message the user has read; read positions only move forward.
    pub last_read: Option<Id>,
    pub joined_at: u64,
}

/// A room the user belongs to, with their membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRoom {
    pub room: Room,
    pub membership: Membership,
}

/// A member of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub user: UserRecord,
    pub role: Role,
}

/// Which page of a room's history to read. `limit` is at least 1.
///
/// - neither cursor: the newest `limit` messages;
/// - `before`: the `limit` messages just older than `before`;
/// - `after`: the `limit` messages just newer than `after`;
/// - both: the oldest `limit` messages strictly between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub before: Option<Id>,
    pub after: Option<Id>,
    pub limit: u32,
}

/// A page of history, ascending by id. `has_more` says whether more messages
/// lie beyond the page in the direction of travel: older ones when walking
/// back (no cursor or `before` only), newer ones when walking forward
/// (`after`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<chat_protocol::Message>,
    pub has_more: bool,
}

/// An uploaded file's metadata. The bytes live in the object store under a
/// key derived from `id`; `created_at` is the time of `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub id: chat_protocol::Id,
    pub uploader: chat_protocol::Id,
    /// The file name as shown and offered for download (already made safe).
    pub name: String,
    pub size: u64,
    /// Sniffed from the bytes, never taken from the client.
    pub content_type: String,
    /// SHA-256 of the bytes, lower-case hex; the download's ETag.
    pub checksum: String,
    pub created_at: u64,
    /// Whether a preview is stored next to the bytes.
    pub thumbnail: bool,
}

impl FileRecord {
    /// The file as clients see it.
    pub fn to_file(&self) -> chat_protocol::File {
        chat_protocol::File {
            id: self.id,
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            created_at: self.created_at,
            thumbnail_url: self
                .thumbnail
                .then(|| format!("/api/v1/files/{}/thumbnail", self.id)),
        }
    }
}

/// A page of one user's notifications, newest first; `has_more` says
/// whether older ones exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationPage {
    pub notifications: Vec<chat_protocol::Notification>,
    pub has_more: bool,
}

/// Where a page of the room directory ends: the last room's folded name
/// ([`directory_name`]) and id (the directory's order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryCursor {
    pub name_lower: String,
    pub room_id: RoomId,
}

/// A room name as the directory orders and matches it, the same in every
/// store: each letter in Unicode lower case, one at a time (so a prefix
/// folds the way the whole name does), and the final sigma `ς` as `σ`, as
/// Unicode's case folding has it. Folding twice changes nothing.
pub fn directory_name(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect()
}

/// What [`Store::add_member_within`](crate::Store::add_member_within) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberAdded {
    /// The user is now a member.
    Added,
    /// The user already was one; nothing changed.
    AlreadyMember,
    /// The room has its most members; nothing changed.
    Full,
}

// ----- accounts: sessions, flags, audit ---------------------------------------

pub use chat_protocol::accounts::AuditEvent;
pub use chat_protocol::internal::Revocation;

/// A login session: every token names one, and revoking it refuses them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: Id,
    pub user: Id,
    pub created_at: u64,
    /// When its tokens expire (ms); nothing needs to be remembered after it.
    pub expires_at: u64,
}

/// What an account may do beyond chatting, and whether it may log in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountFlags {
    /// Granted with `chatd admin grant` (admins named in the configuration
    /// are not stored).
    pub admin: bool,
    /// Banned users cannot log in.
    pub banned: bool,
}

/// Which audit events to read, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events with a smaller id.
    pub before: Option<Id>,
    /// At most this many (the answer says whether there were more).
    pub limit: u32,
    pub kind: Option<String>,
    /// Only events whose actor or target is this user.
    pub user: Option<Id>,
    /// No event older than this (ms) is looked at: the retention horizon,
    /// which bounds how far a store walks back.
    pub since: u64,
}

#[cfg(test)]
mod tests {
    use super::directory_name;

    #[test]
    fn directory_names_fold_case_beyond_ascii() {
        assert_eq!(directory_name("Äpfel & BIRNEN"), "äpfel & birnen");
        assert_eq!(directory_name("ÄPFEL"), directory_name("äpfel"));
        assert_eq!(directory_name("ΟΔΟΣ"), directory_name("οδος"));
        // A prefix folds as the start of the whole name does.
        assert!(directory_name("ΟΔΟΣΑ").starts_with(&directory_name("ΟΔΟΣ")));
        assert!(directory_name("İstanbul").starts_with(&directory_name("İ")));
        for name in ["Äpfel", "ΟΔΟΣ", "İstanbul", "Straße", "ǅemal", "general"] {
            let folded = directory_name(name);
            assert_eq!(directory_name(&folded), folded, "idempotent: {name}");
            // What a store folded with ASCII rules alone folds the same way
            // again (ScyllaDB's schema upgrade relies on it).
            assert_eq!(directory_name(&name.to_ascii_lowercase()), folded);
        }
    }
}
