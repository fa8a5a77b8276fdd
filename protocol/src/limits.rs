//! Limits that are part of the contract, the same for every client and
//! server. Operational limits (rates, queue lengths) are configuration.

/// Most Unicode characters in a message, after trimming.
pub const MAX_CONTENT_CHARS: usize = 4000;
/// Most resolved mentions kept on one message.
pub const MAX_MENTIONS: usize = 50;
/// Usernames are 3 to 32 characters of `[A-Za-z0-9_.-]`.
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
/// Passwords are at least this many characters.
pub const PASSWORD_MIN: usize = 8;
/// and at most this many bytes (hashing cost and memory stay bounded).
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Most characters of a display name or a room name.
pub const NAME_MAX_CHARS: usize = 64;
/// Most characters of a `client_id` or a frame `ref`.
pub const CLIENT_ID_MAX: usize = 64;
/// History page size: default and maximum.
pub const HISTORY_DEFAULT_LIMIT: u32 = 50;
pub const HISTORY_MAX_LIMIT: u32 = 100;
/// How long a `client_id` makes a send idempotent, in milliseconds.
pub const IDEMPOTENCY_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Unread counts stop counting here; a client shows this as "N+".
pub const UNREAD_COUNT_CAP: u32 = 1000;
/// `GET /notifications` page size: default and maximum.
pub const NOTIFICATIONS_DEFAULT_LIMIT: u32 = 50;
pub const NOTIFICATIONS_MAX_LIMIT: u32 = 100;
/// `GET /rooms/{id}/members` page size: default and maximum.
pub const MEMBERS_DEFAULT_LIMIT: u32 = 200;
pub const MEMBERS_MAX_LIMIT: u32 = 1000;
/// Most rooms in one page of `GET /rooms?limit=` (paging is optional there).
pub const ROOMS_MAX_LIMIT: u32 = 1000;
/// `GET /rooms/public` page size: default and maximum.
pub const DIRECTORY_DEFAULT_LIMIT: u32 = 50;
pub const DIRECTORY_MAX_LIMIT: u32 = 100;
/// Mention counts stop counting here, like unread counts.
pub const MENTION_COUNT_CAP: u32 = 1000;
/// Most members listed with `member_ids` when creating a room.
pub const MAX_INITIAL_MEMBERS: usize = 1000;

/// Whether `name` is a valid username.
pub fn is_valid_username(name: &str) -> bool {
    (USERNAME_MIN..=USERNAME_MAX).contains(&name.len()) && name.bytes().all(is_username_byte)
}

/// Whether `b` may appear in a username.
pub fn is_username_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b-c_d", "ABC123", &"x".repeat(32)] {
            assert!(is_valid_username(ok), "{ok}");
        }
        for bad in ["ab", &"x".repeat(33), "a b", "é_abc", "a@b", ""] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }
}
