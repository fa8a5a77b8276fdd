//! Finding `@username` tokens in message content.
//!
//! Parsing is pure; resolving the names to room members happens in
//! [`crate::messages`]. A token starts at an `@` that does not follow a
//! username character (so `bob@example.com` mentions nobody) and runs over
//! the username charset `[A-Za-z0-9_.-]`. A trailing `.` or `-` is often
//! punctuation ("thanks @bob."), so the token without it is a candidate too.

use chat_protocol::limits::{USERNAME_MAX, USERNAME_MIN, is_username_byte};

/// Most distinct candidate names looked up for one message. Bounds the
/// lookup work a single message can cause; far above the 50 mentions kept.
pub const MAX_CANDIDATES: usize = 200;

/// The lower-cased usernames that `content` may mention, de-duplicated, in
/// order of first appearance.
pub fn candidates(content: &str) -> Vec<String> {
    let bytes = content.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        if (USERNAME_MIN..=USERNAME_MAX).contains(&name.len())
            && found.len() < MAX_CANDIDATES
            && !found.iter().any(|f| f == name)
        {
            found.push(name.to_owned());
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let starts_token = bytes[i] == b'@' && (i == 0 || !is_username_byte(bytes[i - 1]));
        if !starts_token {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && is_username_byte(bytes[end]) {
            end += 1;
        }
        // Username bytes are ASCII, so these are valid char boundaries.
        let token = content[start..end].to_ascii_lowercase();
        push(&token);
        let trimmed = token.trim_end_matches(['.', '-']);
        if trimmed.len() != token.len() {
            push(trimmed);
        }
        i = end.max(start);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens_case_insensitively_in_order() {
        assert_eq!(candidates("hi @Bob and @alice, @BOB"), ["bob", "alice"]);
        assert_eq!(candidates("@carol"), ["carol"]);
    }

    #[test]
    fn ignores_emails_and_short_or_empty_tokens() {
        assert!(candidates("mail bob@example.com").is_empty());
        assert!(candidates("@ @@ @a @ab").is_empty());
        assert!(candidates(&format!("@{}", "x".repeat(33))).is_empty());
    }

    #[test]
    fn trailing_punctuation_is_also_tried_without() {
        assert_eq!(candidates("thanks @dave."), ["dave.", "dave"]);
        assert_eq!(candidates("@eve-- ok"), ["eve--", "eve"]);
        assert_eq!(candidates("@j.r.r"), ["j.r.r"]);
    }

    #[test]
    fn non_ascii_neighbours_do_not_break_parsing() {
        assert_eq!(candidates("ça va @zoë? @zo"), Vec::<String>::new());
        assert_eq!(candidates("€@frank"), ["frank"]);
    }

    #[test]
    fn candidates_are_bounded() {
        let content: String = (0..500).map(|i| format!("@user{i:03} ")).collect();
        assert_eq!(candidates(&content).len(), MAX_CANDIDATES);
    }
}
